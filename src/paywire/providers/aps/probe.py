"""Does APS take a merchant account's settings? One CHECK_STATUS, read even when it fails.

A CHECK_STATUS is a read-only query. APS checks the access code, the merchant identifier and
the request signature before it looks the reference up, and signs every answer with the
response phrase, so one query for a reference nobody made tells which setting is wrong: the
response code names a refused access code, merchant identifier or request signature, and
whether the answer verifies tells whether the response phrase (and SHA type) are right. The
probe reports both, and the code even when the answer does not verify (`ResponseSignatureError`
carries it); reading them into a fix is the caller's (`paywire doctor`).
"""

from __future__ import annotations

from dataclasses import dataclass

from paywire.domain.errors import ProviderError
from paywire.providers.aps.client import ApsClient, ResponseSignatureError
from paywire.providers.aps.codes import ResponseCode


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    """What one CHECK_STATUS got: APS's response code (as read, even unverified), whether the
    answer's signature verified, and the error when APS could not be asked."""

    code: str | None
    verified: bool
    error: ProviderError | None = None

    @property
    def message(self) -> str | None:
        """The response code's 3-digit message part."""
        rc = ResponseCode.parse(self.code)
        return rc.message if rc is not None else None

    @property
    def said(self) -> str:
        """`<code> "<status text>: <message text>"`."""
        rc = ResponseCode.parse(self.code)
        return f'{self.code} "{rc.text}"' if rc is not None else repr(self.code)


async def check_status_probe(client: ApsClient, reference: str, currency: str) -> ProbeAnswer:
    """One CHECK_STATUS for `reference` through `client`, as an answer (never raises
    ProviderError: an unreachable or refusing API is the answer's `error`)."""
    try:
        status = await client.check_status(reference, currency=currency)
    except ResponseSignatureError as exc:
        code = exc.details.get("response_code")
        return ProbeAnswer(code if isinstance(code, str) else None, verified=False)
    except ProviderError as exc:
        return ProbeAnswer(None, verified=False, error=exc)
    return ProbeAnswer(status.query.response_code, verified=True)
