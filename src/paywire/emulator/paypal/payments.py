"""Payments v2 captures and refunds, plus the control API that moves captures on PayPal's side.

Authorizations live in `authorizations.py`; their routes are served from this module's `routes`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.emulator.paypal import authorizations, orders
from paywire.emulator.paypal.control import control_error, read_json
from paywire.emulator.paypal.currencies import MoneyFormatError, parse_value
from paywire.emulator.paypal.errors import issue
from paywire.emulator.paypal.events import publish
from paywire.emulator.paypal.http import Ctx, route, state_of
from paywire.emulator.paypal.payment_request import (
    body_of,
    not_found,
    optional_amount,
    optional_str,
    shaped,
)
from paywire.emulator.paypal.resources import capture_json, refund_json
from paywire.emulator.paypal.state import Capture, EmulatorState, Refund, new_id

# PayPal accepts refunds for 180 days after the capture.
REFUND_WINDOW_SECONDS = 180 * 86400.0


def _capture(ctx: Ctx) -> Capture:
    capture_id = ctx.request.path_params["capture_id"]
    cap = ctx.emu.captures.get(capture_id)
    if cap is None or cap.client_id != ctx.client_id:
        raise not_found("capture_id", capture_id)
    return cap


@route("/v2/payments/captures/{capture_id}", ["GET"], "captures.get")
async def get_capture(ctx: Ctx) -> Response:
    """Show a captured payment."""
    return ctx.json(capture_json(ctx.emu, _capture(ctx), ctx.base_url))


def _has_open_dispute(emu: EmulatorState, cap: Capture) -> bool:
    return any(emu.disputes[d].status != "RESOLVED" for d in cap.dispute_ids
               if d in emu.disputes)


def _check_refundable(ctx: Ctx, cap: Capture) -> None:
    if cap.reversed:
        raise issue(422, "REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK", "capture_id", cap.id, "path")
    if cap.status == "REFUNDED":
        raise issue(422, "CAPTURE_FULLY_REFUNDED", "capture_id", cap.id, "path")
    if cap.status == "PENDING":
        raise issue(422, "PENDING_CAPTURE", "capture_id", cap.id, "path")
    if cap.status not in ("COMPLETED", "PARTIALLY_REFUNDED"):
        raise issue(422, "REFUND_NOT_ALLOWED", "capture_id", cap.id, "path")
    if ctx.now - cap.create_time > REFUND_WINDOW_SECONDS:
        raise issue(422, "REFUND_TIME_LIMIT_EXCEEDED", "capture_id", cap.id, "path")


@route("/v2/payments/captures/{capture_id}/refund", ["POST"], "captures.refund")
async def refund_capture(ctx: Ctx) -> Response:
    """Refund all that is left of a capture, or `amount` of it (201)."""

    async def produce() -> Response:
        # No await from here on: the checks and the money movement are one atomic step.
        cap = _capture(ctx)
        body = body_of(ctx)
        amount = optional_amount(body, too_large="REFUND_AMOUNT_EXCEEDED")
        invoice_id = optional_str(body, "invoice_id", 127)
        custom_id = optional_str(body, "custom_id", 127)
        note = optional_str(body, "note_to_payer", 255)
        _check_refundable(ctx, cap)
        remaining = cap.amount_minor - cap.refunded_minor
        minor = remaining
        if amount is not None:
            currency, minor = amount
            if currency != cap.currency:
                raise issue(422, "CURRENCY_MISMATCH", "/amount/currency_code", currency)
            if minor > remaining:
                raise issue(422, "REFUND_AMOUNT_EXCEEDED", "/amount/value",
                            body["amount"]["value"])
        if minor < remaining and _has_open_dispute(ctx.emu, cap):
            raise issue(422, "TRANSACTION_DISPUTED", "capture_id", cap.id, "path")
        if invoice_id and any(r.client_id == ctx.client_id and r.invoice_id == invoice_id
                              for r in ctx.emu.refunds.values()):
            raise issue(422, "DUPLICATE_INVOICE_ID", "/invoice_id", invoice_id)
        now = ctx.now
        refund = Refund(id=new_id(17), client_id=cap.client_id, capture_id=cap.id,
                        currency=cap.currency, amount_minor=minor, status="COMPLETED",
                        create_time=now, update_time=now, invoice_id=invoice_id,
                        custom_id=custom_id or cap.custom_id, note_to_payer=note)
        ctx.emu.refunds[refund.id] = refund
        cap.refund_ids.append(refund.id)
        cap.refunded_minor += minor
        cap.status = "REFUNDED" if cap.refunded_minor >= cap.amount_minor else (
            "PARTIALLY_REFUNDED")
        cap.update_time = now
        full = refund_json(ctx.emu, refund, ctx.base_url)
        publish(ctx.emu, cap.client_id, "PAYMENT.CAPTURE.REFUNDED", "refund", full, ctx.base_url)
        return shaped(ctx, full, 201)

    return await ctx.idempotent("refunds", produce, replay_status=None)


@route("/v2/payments/refunds/{refund_id}", ["GET"], "refunds.get")
async def get_refund(ctx: Ctx) -> Response:
    """Show a refund."""
    refund_id = ctx.request.path_params["refund_id"]
    refund = ctx.emu.refunds.get(refund_id)
    if refund is None or refund.client_id != ctx.client_id:
        raise not_found("refund_id", refund_id)
    return ctx.json(refund_json(ctx.emu, refund, ctx.base_url))


def reverse_capture(emu: EmulatorState, cap: Capture, minor: int, base_url: str) -> Refund:
    """A chargeback takes `minor` back from the merchant; emits PAYMENT.CAPTURE.REVERSED.

    The Payments v2 capture statuses have no REVERSED, so the capture reads REFUNDED (or
    PARTIALLY_REFUNDED) with `status_details.reason` CHARGEBACK. PayPal's sample event for
    PAYMENT.CAPTURE.REVERSED carries a refund-shaped resource (resource_type "refund",
    note_to_payer "Payment reversed", an `up` link to the capture), so the reversal is stored
    as a refund and that is what the event carries.
    """
    now = emu.clock.now()
    refund = Refund(id=new_id(17), client_id=cap.client_id, capture_id=cap.id,
                    currency=cap.currency, amount_minor=minor, status="COMPLETED",
                    create_time=now, update_time=now, custom_id=cap.custom_id,
                    note_to_payer="Payment reversed")
    emu.refunds[refund.id] = refund
    cap.refund_ids.append(refund.id)
    cap.refunded_minor += minor
    cap.reversed = True
    cap.status = "REFUNDED" if cap.refunded_minor >= cap.amount_minor else "PARTIALLY_REFUNDED"
    cap.status_reason = "CHARGEBACK"
    cap.update_time = now
    publish(emu, cap.client_id, "PAYMENT.CAPTURE.REVERSED", "refund",
            refund_json(emu, refund, base_url), base_url)
    return refund


# --- control API (emulator-only; plain JSON errors) ---------------------------------------


def origin(request: Request) -> str:
    """Where links in events point: the configured public URL, else this request's origin."""
    configured = state_of(request).config.public_base_url
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def _pending_capture(emu: EmulatorState, capture_id: str) -> Capture | JSONResponse:
    cap = emu.captures.get(capture_id)
    if cap is None:
        return control_error(404, "not_found", f"no capture {capture_id}")
    if cap.status != "PENDING":
        return control_error(409, "invalid_state", f"capture is {cap.status}, not PENDING")
    return cap


async def complete_capture(request: Request) -> Response:
    """PENDING → COMPLETED, emitting PAYMENT.CAPTURE.COMPLETED.

    The order capture call withholds CHECKOUT.ORDER.COMPLETED while a capture is pending (the
    order reads COMPLETED, but the money has not arrived), so it is sent here, once, when the
    last pending capture of a CAPTURE-intent order completes; never a second time.
    """
    emu = state_of(request)
    cap = _pending_capture(emu, request.path_params["capture_id"])
    if isinstance(cap, JSONResponse):
        return cap
    cap.status, cap.status_reason, cap.update_time = "COMPLETED", None, emu.clock.now()
    base = origin(request)
    body = capture_json(emu, cap, base)
    publish(emu, cap.client_id, "PAYMENT.CAPTURE.COMPLETED", "capture", body, base)
    order = emu.orders.get(cap.order_id)
    if order is not None and cap.authorization_id is None and all(
            emu.captures[c].status == "COMPLETED" for u in order.units for c in u.capture_ids):
        publish(emu, order.client_id, "CHECKOUT.ORDER.COMPLETED", "checkout-order",
                orders.order_json(emu, order, base), base)
    return JSONResponse(body)


async def deny_capture(request: Request) -> Response:
    """PENDING → DECLINED (PayPal's status for a denied capture); emits PAYMENT.CAPTURE.DENIED."""
    emu = state_of(request)
    cap = _pending_capture(emu, request.path_params["capture_id"])
    if isinstance(cap, JSONResponse):
        return cap
    cap.status, cap.status_reason, cap.update_time = "DECLINED", None, emu.clock.now()
    # The money never arrived, so the invoice id is free for another payment.
    if cap.invoice_id and emu.paid_invoices.get((cap.client_id, cap.invoice_id)) == cap.id:
        del emu.paid_invoices[(cap.client_id, cap.invoice_id)]
    base = origin(request)
    body = capture_json(emu, cap, base)
    publish(emu, cap.client_id, "PAYMENT.CAPTURE.DENIED", "capture", body, base)
    return JSONResponse(body)


async def reverse(request: Request) -> Response:
    """A chargeback on a capture: body `{amount?: {currency_code, value}}` (default: all left)."""
    emu = state_of(request)
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    cap = emu.captures.get(request.path_params["capture_id"])
    if cap is None:
        return control_error(404, "not_found", f"no capture {request.path_params['capture_id']}")
    remaining = cap.amount_minor - cap.refunded_minor
    if cap.status not in ("COMPLETED", "PARTIALLY_REFUNDED") or remaining <= 0:
        return control_error(409, "invalid_state", f"capture is {cap.status}; nothing to reverse")
    minor = remaining
    amount = body.get("amount")
    if amount is not None:
        try:
            if not isinstance(amount, dict) or amount.get("currency_code") != cap.currency:
                raise MoneyFormatError("CURRENCY_MISMATCH")
            minor = parse_value(cap.currency, str(amount.get("value")))
        except MoneyFormatError as exc:
            return control_error(400, "invalid_amount", f"amount refused: {exc.issue}")
        if not 0 < minor <= remaining:
            return control_error(400, "invalid_amount", "amount must be within what is left")
    refund = reverse_capture(emu, cap, minor, origin(request))
    return JSONResponse(refund_json(emu, refund, origin(request)))


async def reverse_approval(request: Request) -> Response:
    """The buyer's approval of an APPROVED order is reversed (CHECKOUT.PAYMENT-APPROVAL.REVERSED).

    PayPal sends this when something fails after approval and before capture; the order cannot
    be paid with that approval any more, so `approval_reversed` is set for the capture call.
    """
    emu = state_of(request)
    order = emu.orders.get(request.path_params["order_id"])
    if order is None:
        return control_error(404, "not_found", f"no order {request.path_params['order_id']}")
    if order.status != "APPROVED":
        return control_error(409, "invalid_state", f"order is {order.status}, not APPROVED")
    order.approval_reversed = True
    order.update_time = emu.clock.now()
    base = origin(request)
    body = orders.order_json(emu, order, base)
    publish(emu, order.client_id, "CHECKOUT.PAYMENT-APPROVAL.REVERSED", "checkout-order", body,
            base)
    return JSONResponse(body)


routes: list[Route] = [
    get_capture, refund_capture, get_refund, *authorizations.routes,
    Route("/_emulator/captures/{capture_id}/complete", complete_capture, methods=["POST"]),
    Route("/_emulator/captures/{capture_id}/deny", deny_capture, methods=["POST"]),
    Route("/_emulator/captures/{capture_id}/reverse", reverse, methods=["POST"]),
    Route("/_emulator/orders/{order_id}/reverse-approval", reverse_approval, methods=["POST"]),
]
