"""The emulator-only control API under `/_emulator/`: act as the buyer, move time, inject faults.

Answers are plain JSON; bad input is a 4xx `{"error": ..., "message": ...}`, never a crash.
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.emulator.faults import FaultRule, RuleError
from paywire.emulator.paypal.errors import PayPalError
from paywire.emulator.paypal.http import state_of, strict_json
from paywire.emulator.paypal.orders import (
    SCENARIOS,
    approve_order,
    expire_due,
    find_order,
    order_json,
)

MAX_BODY = 100_000


def control_error(status: int, error: str, message: str) -> JSONResponse:
    """A control-API error answer."""
    return JSONResponse({"error": error, "message": message}, status_code=status)


async def read_json(request: Request) -> dict[str, Any] | JSONResponse:
    """The JSON object body (empty body = {}), or the error answer to send instead."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return control_error(413, "too_large", "body too large")
    if not raw.strip():
        return {}
    try:
        data = strict_json(raw)
    except (ValueError, RecursionError):
        return control_error(400, "malformed_json", "the body is not valid JSON")
    if not isinstance(data, dict):
        return control_error(400, "malformed_json", "the body must be a JSON object")
    return data


def _base(request: Request) -> str:
    configured = state_of(request).config.public_base_url
    return configured.rstrip("/") if configured else f"{request.url.scheme}://{request.url.netloc}"


async def approve(request: Request) -> Response:
    """Approve an order as the test buyer, optionally choosing a capture scenario."""
    emu = state_of(request)
    data = await read_json(request)
    if isinstance(data, JSONResponse):
        return data
    scenario = data.get("scenario", "approve")
    if scenario not in SCENARIOS:
        return control_error(400, "invalid_scenario",
                             f"scenario must be one of {', '.join(SCENARIOS)}")
    order = find_order(emu, request.path_params["id"])
    if order is None:
        return control_error(404, "not_found", "no such order (or it expired)")
    try:
        approve_order(emu, order, scenario, _base(request))
    except PayPalError as err:
        return control_error(409, "not_approvable", f"order is {order.status}: {err}")
    body = order_json(emu, order, _base(request))
    body["payer_id"] = order.payer["payer_id"] if order.payer else None
    return JSONResponse(body)


async def expire(request: Request) -> Response:
    """Expire an open order now (as if its approval window had passed)."""
    emu = state_of(request)
    order = emu.orders.get(request.path_params["id"])
    if order is None:
        return control_error(404, "not_found", "no such order")
    if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED") or order.expired:
        return control_error(409, "not_open", f"order is {order.status}")
    order.create_time = order.approve_time = emu.clock.now() - emu.config.order_expiry_seconds
    expire_due(emu)
    return JSONResponse({"id": order.id, "status": order.status, "expired": order.expired})


async def clock(request: Request) -> Response:
    """Show the emulator clock."""
    emu = state_of(request)
    return JSONResponse({"now": emu.clock.now(), "offset_seconds": emu.clock.offset})


async def advance(request: Request) -> Response:
    """Advance the clock by `seconds`, then run what became due (order expiry)."""
    emu = state_of(request)
    data = await read_json(request)
    if isinstance(data, JSONResponse):
        return data
    seconds = data.get("seconds")
    if (not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0
            or seconds > 10 * 365 * 86400):
        return control_error(400, "invalid_seconds", "seconds must be a number in [0, 10 years]")
    emu.clock.advance(float(seconds))
    expire_due(emu)
    return JSONResponse({"now": emu.clock.now(), "offset_seconds": emu.clock.offset})


async def list_faults(request: Request) -> Response:
    """Active fault rules and how often each fired."""
    return JSONResponse({"rules": [r.to_json() for r in state_of(request).faults.rules]})


async def add_fault(request: Request) -> Response:
    """Add a fault rule (see `faults.FaultRule.from_json`)."""
    data = await read_json(request)
    if isinstance(data, JSONResponse):
        return data
    try:
        rule = FaultRule.from_json(data)
    except RuleError as exc:
        return control_error(400, "invalid_rule", str(exc))
    state_of(request).faults.add(rule)
    return JSONResponse(rule.to_json(), status_code=201)


async def delete_fault(request: Request) -> Response:
    """Remove one fault rule."""
    if not state_of(request).faults.remove(request.path_params["id"]):
        return control_error(404, "not_found", "no such rule")
    return Response(status_code=204)


async def clear_faults(request: Request) -> Response:
    """Remove every fault rule."""
    state_of(request).faults.clear()
    return Response(status_code=204)


async def requests_log(request: Request) -> Response:
    """Every request received (newest last); `?path=` filters by path prefix."""
    emu = state_of(request)
    prefix = request.query_params.get("path", "")
    out = []
    for e in emu.request_log:
        if not e.path.startswith(prefix):
            continue
        item: dict[str, Any] = {"at": e.at, "method": e.method, "path": e.path, "query": e.query,
                                "status": e.status, "debug_id": e.debug_id,
                                "paypal_request_id": e.request_id, "client_id": e.client_id,
                                "traceparent": e.traceparent}
        if e.response_body is not None:
            item["response_body_base64"] = base64.b64encode(e.response_body).decode()
        out.append(item)
    return JSONResponse({"requests": out})


async def reset(request: Request) -> Response:
    """Forget every resource, token, rule and log (apps stay); the clock returns to wall time."""
    emu = state_of(request)
    emu.reset()
    emu.clock.reset()
    return Response(status_code=204)


async def index(request: Request) -> Response:
    """What the control API offers."""
    return JSONResponse({"routes": [f"{' '.join(sorted(r.methods or []))} {r.path}"
                                    for r in routes if isinstance(r, Route)]})


routes = [
    Route("/_emulator/", index, methods=["GET"]),
    Route("/_emulator/orders/{id}/approve", approve, methods=["POST"]),
    Route("/_emulator/orders/{id}/expire", expire, methods=["POST"]),
    Route("/_emulator/clock", clock, methods=["GET"]),
    Route("/_emulator/clock/advance", advance, methods=["POST"]),
    Route("/_emulator/faults", list_faults, methods=["GET"]),
    Route("/_emulator/faults", add_fault, methods=["POST"]),
    Route("/_emulator/faults", clear_faults, methods=["DELETE"]),
    Route("/_emulator/faults/{id}", delete_fault, methods=["DELETE"]),
    Route("/_emulator/requests", requests_log, methods=["GET"]),
    Route("/_emulator/reset", reset, methods=["POST"]),
]
