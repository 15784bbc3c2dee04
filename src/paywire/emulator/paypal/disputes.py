"""Customer Disputes v1: show and list disputes; the control API opens and resolves them."""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.emulator.paypal.control import control_error, read_json
from paywire.emulator.paypal.currencies import MoneyFormatError, parse_value
from paywire.emulator.paypal.errors import issue
from paywire.emulator.paypal.events import publish
from paywire.emulator.paypal.http import Ctx, route, state_of
from paywire.emulator.paypal.payments import origin, reverse_capture
from paywire.emulator.paypal.resources import (
    BUYER_REFUNDED,
    DISPUTE_STATES,
    dispute_json,
    dispute_summary_json,
)
from paywire.emulator.paypal.state import Dispute, EmulatorState

REASONS = ("MERCHANDISE_OR_SERVICE_NOT_RECEIVED", "MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED",
           "UNAUTHORISED", "CREDIT_NOT_PROCESSED", "DUPLICATE_TRANSACTION", "INCORRECT_AMOUNT",
           "PAYMENT_BY_OTHER_MEANS", "CANCELED_RECURRING_BILLING", "PROBLEM_WITH_REMITTANCE",
           "OTHER")
OUTCOMES = ("RESOLVED_BUYER_FAVOUR", "RESOLVED_SELLER_FAVOUR", "RESOLVED_WITH_PAYOUT",
            "CANCELED_BY_BUYER", "ACCEPTED", "DENIED", "NONE")
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 10, 50


@route("/v1/customer/disputes/{id}", ["GET"], "disputes.get")
async def get_dispute(ctx: Ctx) -> Response:
    """Show a dispute."""
    dispute_id = ctx.request.path_params["id"]
    dispute = ctx.emu.disputes.get(dispute_id)
    if dispute is None or dispute.client_id != ctx.client_id:
        raise issue(404, "INVALID_RESOURCE_ID", "id", dispute_id, location="path")
    return ctx.json(dispute_json(ctx.emu, dispute, ctx.base_url))


def _query_time(ctx: Ctx, name: str) -> float | None:
    raw = ctx.request.query_params.get(name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise issue(400, "INVALID_PARAMETER_SYNTAX", name, raw, location="query") from exc
    if parsed.tzinfo is None:
        raise issue(400, "INVALID_PARAMETER_SYNTAX", name, raw, location="query")
    return parsed.timestamp()


def _page(ctx: Ctx) -> tuple[int, int]:
    """(offset, page size) from `next_page_token` and `page_size`."""
    q = ctx.request.query_params
    size_raw = q.get("page_size", str(PAGE_SIZE_DEFAULT))
    if not size_raw.isdigit() or not 1 <= int(size_raw) <= PAGE_SIZE_MAX:
        raise issue(400, "INVALID_PARAMETER_VALUE", "page_size", size_raw, location="query")
    token = q.get("next_page_token")
    offset = 0
    if token is not None:
        try:
            offset = int(base64.b64decode(token, validate=True).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise issue(400, "INVALID_PARAMETER_VALUE", "next_page_token", token,
                        location="query") from exc
    return max(offset, 0), int(size_raw)


@route("/v1/customer/disputes", ["GET"], "disputes.list")
async def list_disputes(ctx: Ctx) -> Response:
    """List this app's disputes, newest first, filtered as PayPal's list call filters them."""
    q = ctx.request.query_params
    tx = q.get("disputed_transaction_id")
    states = q.get("dispute_state")
    wanted = set(states.split(",")) if states else None
    if wanted and not wanted <= set(DISPUTE_STATES.values()) | {"APPEALABLE"}:
        raise issue(400, "INVALID_PARAMETER_VALUE", "dispute_state", states, location="query")
    after, before = _query_time(ctx, "update_time_after"), _query_time(ctx, "update_time_before")
    start = _query_time(ctx, "start_time")
    offset, size = _page(ctx)
    found = [d for d in ctx.emu.disputes.values()
             if d.client_id == ctx.client_id
             and (tx is None or d.capture_id == tx)
             and (wanted is None or DISPUTE_STATES.get(d.status) in wanted)
             and (after is None or d.update_time >= after)
             and (before is None or d.update_time <= before)
             and (start is None or d.create_time >= start)]
    found.sort(key=lambda d: (d.create_time, d.id), reverse=True)
    page = found[offset:offset + size]
    base = ctx.base_url
    self_href = f"{base}{ctx.request.url.path}"
    if ctx.request.url.query:
        self_href += f"?{ctx.request.url.query}"
    links = [{"href": self_href, "rel": "self", "method": "GET"}]
    if offset + size < len(found):
        token = base64.b64encode(str(offset + size).encode()).decode()
        links.append({"href": f"{base}/v1/customer/disputes?page_size={size}"
                              f"&next_page_token={token}", "rel": "next", "method": "GET"})
    body: dict[str, object] = {}
    # The schema demands at least one item when `items` is present, so an empty page omits it.
    if page:
        body["items"] = [dispute_summary_json(ctx.emu, d, base) for d in page]
    body["links"] = links
    return ctx.json(body)


def _new_dispute_id(emu: EmulatorState) -> str:
    while True:
        candidate = f"PP-D-{secrets.randbelow(10**8):08d}"
        if candidate not in emu.disputes:
            return candidate


async def open_dispute(request: Request) -> Response:
    """Control: the buyer opens a dispute on a capture (CUSTOMER.DISPUTE.CREATED).

    Body `{capture_id, reason?, amount?}`; `amount` is a money object or a value string in the
    capture's currency, by default all of the capture not yet refunded.
    """
    emu = state_of(request)
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    cap = emu.captures.get(str(body.get("capture_id")))
    if cap is None:
        return control_error(404, "not_found", f"no capture {body.get('capture_id')}")
    reason = body.get("reason", "MERCHANDISE_OR_SERVICE_NOT_RECEIVED")
    if reason not in REASONS:
        return control_error(400, "invalid_reason", f"reason must be one of {', '.join(REASONS)}")
    remaining = cap.amount_minor - cap.refunded_minor
    if cap.status not in ("COMPLETED", "PARTIALLY_REFUNDED") or remaining <= 0:
        return control_error(409, "invalid_state", f"capture is {cap.status}; nothing to dispute")
    minor = remaining
    amount = body.get("amount")
    if amount is not None:
        value = amount.get("value") if isinstance(amount, dict) else amount
        currency = amount.get("currency_code") if isinstance(amount, dict) else cap.currency
        try:
            if currency != cap.currency:
                raise MoneyFormatError("CURRENCY_MISMATCH")
            minor = parse_value(cap.currency, str(value))
        except MoneyFormatError as exc:
            return control_error(400, "invalid_amount", f"amount refused: {exc.issue}")
        if not 0 < minor <= remaining:
            return control_error(400, "invalid_amount", "amount must be within what is left")
    now = emu.clock.now()
    dispute = Dispute(id=_new_dispute_id(emu), client_id=cap.client_id, capture_id=cap.id,
                      currency=cap.currency, amount_minor=minor, reason=reason,
                      status="WAITING_FOR_SELLER_RESPONSE", create_time=now, update_time=now)
    emu.disputes[dispute.id] = dispute
    cap.dispute_ids.append(dispute.id)
    base = origin(request)
    resource = dispute_json(emu, dispute, base)
    publish(emu, dispute.client_id, "CUSTOMER.DISPUTE.CREATED", "dispute", resource, base)
    return JSONResponse(resource, status_code=201)


async def resolve_dispute(request: Request) -> Response:
    """Control: PayPal decides a dispute (CUSTOMER.DISPUTE.RESOLVED).

    Body `{outcome}`. When the buyer gets the money back (`BUYER_REFUNDED` outcomes) the
    disputed amount is first reversed on the capture (PAYMENT.CAPTURE.REVERSED), as PayPal
    moves the funds before it reports the dispute closed.
    """
    emu = state_of(request)
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    dispute = emu.disputes.get(request.path_params["dispute_id"])
    if dispute is None:
        return control_error(404, "not_found", f"no dispute {request.path_params['dispute_id']}")
    outcome = body.get("outcome")
    if outcome not in OUTCOMES:
        return control_error(400, "invalid_outcome",
                             f"outcome must be one of {', '.join(OUTCOMES)}")
    if dispute.status == "RESOLVED":
        return control_error(409, "invalid_state", "dispute is already resolved")
    base = origin(request)
    cap = emu.captures.get(dispute.capture_id)
    if outcome in BUYER_REFUNDED and outcome != "RESOLVED_WITH_PAYOUT" and cap is not None:
        # RESOLVED_WITH_PAYOUT is paid by PayPal's seller protection, not the merchant.
        minor = min(dispute.amount_minor, cap.amount_minor - cap.refunded_minor)
        if minor > 0:
            reverse_capture(emu, cap, minor, base)
    dispute.status, dispute.outcome, dispute.update_time = "RESOLVED", outcome, emu.clock.now()
    resource = dispute_json(emu, dispute, base)
    publish(emu, dispute.client_id, "CUSTOMER.DISPUTE.RESOLVED", "dispute", resource, base)
    return JSONResponse(resource)


routes: list[Route] = [
    list_disputes, get_dispute,
    Route("/_emulator/disputes", open_dispute, methods=["POST"]),
    Route("/_emulator/disputes/{dispute_id}/resolve", resolve_dispute, methods=["POST"]),
]
