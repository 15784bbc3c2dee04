"""Amazon Payment Services (APS, formerly PayFort): signed parameters, codes, S2S flows, forms.

- `signature`: the SHA phrase signature (request and response phrases), pure.
- `codes`: APS's published status and message code tables.
- `mapping`: response code -> outcome in domain terms (total, ends in an explicit unknown).
- `amounts`: money in ISO minor units and the references APS keys transactions on.
- `results`: verified answers and feedback parsed into typed results (pure).
- `client`: the server-to-server API over an injected `httpx.AsyncClient`.
- `forms`: the hosted payment page / tokenization form builder and the feedback verifier.
"""
