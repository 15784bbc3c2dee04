"""The server-to-server API: `POST /FortAPI/paymentApi` (JSON in, signed JSON out).

PURCHASE / AUTHORIZATION on a `token_name`, CAPTURE, VOID_AUTHORIZATION, REFUND and
`query_command=CHECK_STATUS`. Every answer is HTTP 200 with a `response_code` and is signed with
the response phrase. A payment's result also goes out as direct feedback; a maintenance
operation APS processed (success or failure status) as notification feedback.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.emulator.aps import ledger
from paywire.emulator.aps.http import (
    BadBody,
    base_url,
    check_credentials,
    parse_json,
    read_body,
    state_of,
)
from paywire.emulator.aps.state import ApsState, RequestEntry, message_for

_PAYMENT_FIELDS = ("merchant_reference", "amount", "currency", "language", "customer_email",
                   "token_name")


def _refused(params: dict[str, str], code: str) -> dict[str, str]:
    out = ledger.echo_of(params)
    out.update({"response_code": code, "response_message": message_for(code),
                "status": code[:2]})
    return out


def _handle(state: ApsState, params: dict[str, str], base: str) -> dict[str, str]:
    command = params.get("command", "")
    query = params.get("query_command", "")
    try:
        check_credentials(state, params)
        if params.get("language") and params["language"] not in ("en", "ar"):
            raise ledger.Refusal("00002")
        if query:
            if query != "CHECK_STATUS":
                raise ledger.Refusal("00004")
            return ledger.check_status(state, params)
        if command in ledger.PAYMENT_COMMANDS:
            ledger.require(params, *_PAYMENT_FIELDS)
            token = state.tokens.get(params["token_name"])
            if token is None:
                raise ledger.Refusal("00044")
            tx, code = ledger.start_payment(state, params, token, "api")
            out = ledger.answer(state, tx, base, code)
            ledger.send_feedback(state, "direct", out)
            return out
        if command in ledger.MAINTENANCE_COMMANDS:
            out, _changed = ledger.maintain(state, params)
            if out["status"] != "00":
                ledger.send_feedback(state, "notification", out)
            return out
        raise ledger.Refusal("00004")
    except ledger.Refusal as refusal:
        return _refused(params, refusal.code)


async def payment_api(request: Request) -> Response:
    """One S2S call."""
    state = state_of(request)
    try:
        params = parse_json(await read_body(request))
    except BadBody:
        return JSONResponse(ledger.sign_answer(state, _refused({}, "00073")))
    out = _handle(state, params, base_url(request))
    with state.lock:
        state.requests.append(RequestEntry(
            at=state.clock.now(), command=params.get("command") or params.get(
                "query_command", ""), merchant_reference=params.get("merchant_reference"),
            response_code=out["response_code"], signature_valid=out["response_code"] != "00008",
            params={k: v for k, v in params.items() if k not in ("signature", "access_code")},
            traceparent=request.headers.get("traceparent")))
    return JSONResponse(ledger.sign_answer(state, out))


routes = [Route("/FortAPI/paymentApi", payment_api, methods=["POST"], name="aps.api")]
