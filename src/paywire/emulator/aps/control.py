"""The APS emulator's control API under `/_aps/`: inspect, act as buyer or back office, faults.

Answers are plain JSON; bad input is a 4xx `{"error": ..., "message": ...}`, never a crash. The
SHA phrases are never shown here (tests read them from the config object).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.emulator.aps import cards, ledger
from paywire.emulator.aps.http import BadBody, base_url, read_body, state_of
from paywire.emulator.aps.state import Transaction
from paywire.emulator.faults import FaultRule, RuleError


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        raw = await read_body(request)
    except BadBody:
        return _error(413, "too_large", "body too large")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return _error(400, "malformed_json", "the body is not valid JSON")
    if not isinstance(data, dict):
        return _error(400, "malformed_json", "the body must be a JSON object")
    return data


def _tx(request: Request) -> Transaction | None:
    state = state_of(request)
    ref = request.path_params["ref"]
    with state.lock:
        return state.find(ref, None) or state.find(None, ref)


async def index(request: Request) -> Response:
    """What the control API offers, and the account's identifier (no access code, no phrase)."""
    cred = state_of(request).config.credentials
    return JSONResponse({
        "merchant_identifier": cred.merchant_identifier, "sha_type": cred.sha_type,
        "routes": [f"{' '.join(sorted(r.methods or []))} {r.path}" for r in routes]})


async def list_transactions(request: Request) -> Response:
    """Every transaction, oldest first."""
    state = state_of(request)
    with state.lock:
        return JSONResponse({"transactions": [t.to_json()
                                              for t in state.transactions.values()]})


async def get_transaction(request: Request) -> Response:
    """One transaction by merchant reference or fort id."""
    tx = _tx(request)
    if tx is None:
        return _error(404, "not_found", "no such transaction")
    return JSONResponse(tx.to_json())


async def three_ds(request: Request) -> Response:
    """Answer a transaction's 3-D Secure challenge as the buyer: {"action": approve|fail}."""
    state = state_of(request)
    data = await _json(request)
    if isinstance(data, JSONResponse):
        return data
    tx = _tx(request)
    if tx is None:
        return _error(404, "not_found", "no such transaction")
    if data.get("action") not in ("approve", "fail"):
        return _error(400, "invalid_action", "action must be approve or fail")
    try:
        ledger.complete_challenge(state, tx, data["action"] == "approve")
    except ledger.Refusal:
        return _error(409, "not_on_hold", "the transaction awaits no 3-D Secure answer")
    out = ledger.answer(state, tx, base_url(request))
    ledger.send_feedback(state, "direct", out)
    return JSONResponse({"transaction": tx.to_json(), "return_params":
                         ledger.sign_answer(state, out)})


async def resolve(request: Request) -> Response:
    """Decide a pending (19) transaction offline: {"result": success|decline}; notifies."""
    state = state_of(request)
    data = await _json(request)
    if isinstance(data, JSONResponse):
        return data
    tx = _tx(request)
    if tx is None:
        return _error(404, "not_found", "no such transaction")
    if data.get("result") not in ("success", "decline"):
        return _error(400, "invalid_result", "result must be success or decline")
    try:
        ledger.resolve_pending(state, tx, data["result"] == "success")
    except ledger.Refusal:
        return _error(409, "not_pending", "the transaction is not pending")
    ledger.send_feedback(state, "notification", ledger.answer(state, tx, base_url(request)))
    return JSONResponse(tx.to_json())


async def offline_refund(request: Request) -> Response:
    """A refund made in APS's back office: {"amount": minor units}; notifies."""
    state = state_of(request)
    data = await _json(request)
    if isinstance(data, JSONResponse):
        return data
    tx = _tx(request)
    if tx is None:
        return _error(404, "not_found", "no such transaction")
    amount = data.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return _error(400, "invalid_amount", "amount must be a positive integer (minor units)")
    out = ledger.offline_refund(state, tx, amount)
    ledger.send_feedback(state, "notification", out)
    return JSONResponse({"transaction": tx.to_json(), "response_code": out["response_code"]})


async def resend(request: Request) -> Response:
    """Deliver a transaction's latest feedback again, byte for byte, as a new feedback:
    {"channel": direct|notification} (default: the channel of the latest one)."""
    state = state_of(request)
    data = await _json(request)
    if isinstance(data, JSONResponse):
        return data
    tx = _tx(request)
    if tx is None:
        return _error(404, "not_found", "no such transaction")
    channel = data.get("channel")
    if channel not in (None, "direct", "notification"):
        return _error(400, "invalid_channel", "channel must be direct or notification")
    sent = [f for f in state.deliverer.feedback if f.merchant_reference == tx.merchant_reference
            and channel in (None, f.channel)]
    if not sent:
        return _error(409, "nothing_sent", "no feedback was sent for this transaction")
    fb = state.deliverer.send(sent[-1].channel, dict(sent[-1].params))
    if fb is None:
        return _error(409, "no_url", f"no {sent[-1].channel} feedback URL is configured")
    return JSONResponse(fb.to_json(), status_code=202)


async def tokenize(request: Request) -> Response:
    """Tokenize a test card without the browser: {"card_number", "expiry_date", ...}."""
    state = state_of(request)
    data = await _json(request)
    if isinstance(data, JSONResponse):
        return data
    number, expiry = str(data.get("card_number", "")), str(data.get("expiry_date", ""))
    problem = cards.card_problem(number, expiry, None, state.clock.now_dt())
    if problem is not None:
        return _error(400, "invalid_card", f"APS would answer 17{problem}")
    token = state.new_token(number, expiry, str(data.get("card_holder_name", "")),
                            cards.BY_NUMBER[number].brand)
    return JSONResponse({"token_name": token.name, "card_number": cards.masked(number),
                         "expiry_date": expiry}, status_code=201)


async def deliveries(request: Request) -> Response:
    """Every feedback and delivery attempt; `?channel=` filters."""
    state = state_of(request)
    channel = request.query_params.get("channel")
    fbs = [f.to_json() for f in state.deliverer.feedback if channel in (None, f.channel)]
    attempts = [a.to_json() for a in state.deliverer.attempts if channel in (None, a.channel)]
    return JSONResponse({"feedback": fbs, "attempts": attempts})


async def requests_log(request: Request) -> Response:
    """Every S2S request received (parameters without the signature and access code)."""
    state = state_of(request)
    with state.lock:
        return JSONResponse({"requests": [
            {"at": e.at, "command": e.command, "merchant_reference": e.merchant_reference,
             "response_code": e.response_code, "signature_valid": e.signature_valid,
             "params": e.params, "traceparent": e.traceparent} for e in state.requests]})


async def list_faults(request: Request) -> Response:
    """Active fault rules and how often each fired."""
    return JSONResponse({"rules": [r.to_json() for r in state_of(request).faults.rules]})


async def add_fault(request: Request) -> Response:
    """Add a rule: http (error/latency/timeout on a path) or webhook (feedback drop/duplicate/
    delay/reorder; `event_type` matches `<channel>:<command>`)."""
    data = await _json(request)
    if isinstance(data, JSONResponse):
        return data
    try:
        rule = FaultRule.from_json(data)
    except RuleError as exc:
        return _error(400, "invalid_rule", str(exc))
    state = state_of(request)
    with state.lock:
        state.faults.add(rule)
    return JSONResponse(rule.to_json(), status_code=201)


async def delete_fault(request: Request) -> Response:
    """Remove one rule."""
    state = state_of(request)
    with state.lock:
        removed = state.faults.remove(request.path_params["id"])
    return Response(status_code=204) if removed else _error(404, "not_found", "no such rule")


async def clear_faults(request: Request) -> Response:
    """Remove every rule."""
    state = state_of(request)
    with state.lock:
        state.faults.clear()
    return Response(status_code=204)


async def reset(request: Request) -> Response:
    """Forget every transaction, token, rule and log (the credentials stay)."""
    state_of(request).reset()
    return Response(status_code=204)


routes = [
    Route("/_aps/", index, methods=["GET"]),
    Route("/_aps/transactions", list_transactions, methods=["GET"]),
    Route("/_aps/transactions/{ref}", get_transaction, methods=["GET"]),
    Route("/_aps/transactions/{ref}/3ds", three_ds, methods=["POST"]),
    Route("/_aps/transactions/{ref}/resolve", resolve, methods=["POST"]),
    Route("/_aps/transactions/{ref}/refund", offline_refund, methods=["POST"]),
    Route("/_aps/transactions/{ref}/feedback", resend, methods=["POST"]),
    Route("/_aps/tokens", tokenize, methods=["POST"]),
    Route("/_aps/deliveries", deliveries, methods=["GET"]),
    Route("/_aps/requests", requests_log, methods=["GET"]),
    Route("/_aps/faults", list_faults, methods=["GET"]),
    Route("/_aps/faults", add_fault, methods=["POST"]),
    Route("/_aps/faults", clear_faults, methods=["DELETE"]),
    Route("/_aps/faults/{id}", delete_fault, methods=["DELETE"]),
    Route("/_aps/reset", reset, methods=["POST"]),
]
