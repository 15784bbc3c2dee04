"""Payments v2 authorizations: show, capture (partial or final), void, reauthorize."""

from __future__ import annotations

from starlette.responses import Response

from paywire.emulator.paypal.errors import issue
from paywire.emulator.paypal.events import publish
from paywire.emulator.paypal.http import Ctx, route
from paywire.emulator.paypal.payment_request import (
    body_of,
    not_found,
    optional_amount,
    optional_bool,
    optional_str,
    shaped,
)
from paywire.emulator.paypal.resources import authorization_json, capture_json
from paywire.emulator.paypal.state import (
    Authorization,
    Capture,
    EmulatorState,
    PurchaseUnit,
    new_id,
)

# PayPal lets a merchant split an authorization into at most this many captures.
MAX_CAPTURES = 10
# A reauthorization may ask for up to 115% of the original amount, but no more than USD 75
# over it, whichever is lower (PayPal's reauthorize reference). The USD limb is applied to USD
# authorizations only: the emulator converts no currencies.
REAUTHORIZE_MAX_PERCENT = 115
REAUTHORIZE_MAX_INCREASE_USD_MINOR = 7500


def over_reauthorization_cap(currency: str, original_minor: int, asked_minor: int) -> bool:
    """Whether a reauthorization of `asked_minor` exceeds what PayPal allows of the original."""
    if asked_minor * 100 > original_minor * REAUTHORIZE_MAX_PERCENT:
        return True
    return currency == "USD" and asked_minor - original_minor > REAUTHORIZE_MAX_INCREASE_USD_MINOR


def _authorization(ctx: Ctx) -> Authorization:
    auth_id = ctx.request.path_params["authorization_id"]
    auth = ctx.emu.authorizations.get(auth_id)
    if auth is None or auth.client_id != ctx.client_id:
        raise not_found("authorization_id", auth_id)
    return auth


def _unit_of(emu: EmulatorState, auth: Authorization) -> PurchaseUnit | None:
    """The purchase unit the authorization (or the one it reauthorized) was made for."""
    order = emu.orders.get(auth.order_id)
    if order is None:
        return None
    wanted = {auth.id, auth.parent_id}
    return next((u for u in order.units if wanted & set(u.authorization_ids)), None)


@route("/v2/payments/authorizations/{authorization_id}", ["GET"], "authorizations.get")
async def get_authorization(ctx: Ctx) -> Response:
    """Show an authorization."""
    return ctx.json(authorization_json(ctx.emu, _authorization(ctx), ctx.base_url))


def _check_capturable(ctx: Ctx, auth: Authorization) -> None:
    where = ("authorization_id", auth.id, "path")
    if auth.status == "VOIDED":
        raise issue(422, "AUTHORIZATION_VOIDED", *where)
    if auth.status == "CAPTURED":
        raise issue(422, "AUTHORIZATION_ALREADY_CAPTURED", *where)
    if auth.status == "DENIED":
        raise issue(422, "AUTHORIZATION_DENIED", *where)
    if ctx.now >= auth.expiration_time:
        raise issue(422, "AUTHORIZATION_EXPIRED", *where)
    if auth.status == "PENDING":
        # Funds under review cannot move yet; the capture table has no closer issue.
        raise issue(422, "TRANSACTION_REFUSED", *where)


@route("/v2/payments/authorizations/{authorization_id}/capture", ["POST"],
       "authorizations.capture")
async def capture_authorization(ctx: Ctx) -> Response:
    """Capture all that is left of an authorization, or `amount` of it (201)."""

    async def produce() -> Response:
        # No await from here on: the checks and the money movement are one atomic step.
        auth = _authorization(ctx)
        body = body_of(ctx)
        amount = optional_amount(body, too_large="MAX_CAPTURE_AMOUNT_EXCEEDED")
        final = optional_bool(body, "final_capture", False)
        invoice_id = optional_str(body, "invoice_id", 127)
        optional_str(body, "note_to_payer", 255)
        optional_str(body, "soft_descriptor", 22)
        _check_capturable(ctx, auth)
        remaining = auth.amount_minor - auth.captured_minor
        minor = remaining
        if amount is not None:
            currency, minor = amount
            if currency != auth.currency:
                raise issue(422, "AUTH_CAPTURE_CURRENCY_MISMATCH", "/amount/currency_code",
                            currency)
        # No overage: PayPal's 115% over-capture needs a regulatory approval sandboxes lack.
        if minor > remaining:
            raise issue(422, "MAX_CAPTURE_AMOUNT_EXCEEDED", "/amount/value",
                        body["amount"]["value"] if amount else None)
        if len(auth.capture_ids) >= MAX_CAPTURES:
            raise issue(422, "MAX_CAPTURE_COUNT_EXCEEDED", "authorization_id", auth.id, "path")
        invoice = invoice_id or auth.invoice_id
        paid = ctx.emu.paid_invoices.get((ctx.client_id, invoice or ""))
        if invoice and paid and ctx.emu.captures[paid].order_id != auth.order_id:
            raise issue(422, "DUPLICATE_INVOICE_ID", "/invoice_id", invoice)
        now = ctx.now
        cap = Capture(id=new_id(17), client_id=auth.client_id, order_id=auth.order_id,
                      currency=auth.currency, amount_minor=minor, status="COMPLETED",
                      create_time=now, update_time=now, final_capture=final,
                      invoice_id=invoice, custom_id=auth.custom_id, authorization_id=auth.id)
        ctx.emu.captures[cap.id] = cap
        if invoice:
            ctx.emu.paid_invoices.setdefault((ctx.client_id, invoice), cap.id)
        unit = _unit_of(ctx.emu, auth)
        if unit is not None:
            unit.capture_ids.append(cap.id)
        auth.capture_ids.append(cap.id)
        auth.captured_minor += minor
        # A final capture closes the authorization; what was not captured is released.
        auth.status = "CAPTURED" if final or auth.captured_minor >= auth.amount_minor else (
            "PARTIALLY_CAPTURED")
        auth.update_time = now
        full = capture_json(ctx.emu, cap, ctx.base_url)
        publish(ctx.emu, cap.client_id, "PAYMENT.CAPTURE.COMPLETED", "capture", full,
                ctx.base_url)
        return shaped(ctx, full, 201)

    return await ctx.idempotent("orders", produce, replay_status=None)


@route("/v2/payments/authorizations/{authorization_id}/void", ["POST"], "authorizations.void")
async def void_authorization(ctx: Ctx) -> Response:
    """Void an authorization (204; 200 with the authorization on `return=representation`)."""

    async def produce() -> Response:
        auth = _authorization(ctx)
        where = ("authorization_id", auth.id, "path")
        if auth.parent_id is not None:
            raise issue(422, "CANNOT_BE_VOIDED", *where)
        if auth.status == "VOIDED":
            raise issue(422, "PREVIOUSLY_VOIDED", *where)
        if auth.status == "CAPTURED":
            raise issue(422, "PREVIOUSLY_CAPTURED", *where)
        now = ctx.now
        # Voiding the original also voids its open reauthorizations (they cannot be voided
        # themselves, per CANNOT_BE_VOIDED).
        family = [auth, *(a for a in ctx.emu.authorizations.values()
                          if a.parent_id == auth.id and a.status in ("CREATED", "PENDING"))]
        for a in family:
            a.status, a.update_time = "VOIDED", now
            publish(ctx.emu, a.client_id, "PAYMENT.AUTHORIZATION.VOIDED", "authorization",
                    authorization_json(ctx.emu, a, ctx.base_url), ctx.base_url)
        if ctx.prefer_representation():
            return ctx.json(authorization_json(ctx.emu, auth, ctx.base_url), 200)
        return Response(status_code=204)

    return await ctx.idempotent("orders", produce, replay_status=None)


@route("/v2/payments/authorizations/{authorization_id}/reauthorize", ["POST"],
       "authorizations.reauthorize")
async def reauthorize(ctx: Ctx) -> Response:
    """A new authorization for the same payment, with a fresh honor period (201)."""

    async def produce() -> Response:
        auth = _authorization(ctx)
        body = body_of(ctx)
        amount = optional_amount(body, too_large="TRANSACTION_REFUSED")
        where = ("authorization_id", auth.id, "path")
        if auth.parent_id is not None:
            raise issue(422, "REAUTHORIZATION_NOT_SUPPORTED", *where)
        if auth.status == "VOIDED":
            raise issue(422, "AUTHORIZATION_VOIDED", *where)
        if auth.status in ("CAPTURED", "PARTIALLY_CAPTURED"):
            raise issue(422, "AUTHORIZATION_ALREADY_CAPTURED", *where)
        # The reauthorize table has no AUTHORIZATION_EXPIRED: past the 29-day validity (or for
        # a DENIED/PENDING one) PayPal's documented refusal is TRANSACTION_REFUSED.
        if auth.status != "CREATED" or ctx.now >= auth.expiration_time:
            raise issue(422, "TRANSACTION_REFUSED", *where)
        # Only once the honor period is over: the original's, or that of its latest
        # reauthorization, which restarted it (PayPal's REAUTHORIZATION_TOO_SOON, documented
        # on its Payments v2 error pages though not in the OpenAPI file).
        honored_until = max([auth.honor_until, *(a.honor_until for a in
                                                 ctx.emu.authorizations.values()
                                                 if a.parent_id == auth.id)])
        if ctx.now < honored_until:
            raise issue(422, "REAUTHORIZATION_TOO_SOON", *where)
        minor = auth.amount_minor
        if amount is not None:
            currency, minor = amount
            if currency != auth.currency:
                raise issue(422, "AUTH_CURRENCY_MISMATCH", "/amount/currency_code", currency)
            if over_reauthorization_cap(auth.currency, auth.amount_minor, minor):
                raise issue(422, "AUTHORIZATION_AMOUNT_EXCEEDED", "/amount/value",
                            body["amount"]["value"])
        now = ctx.now
        # The validity still counts from the original authorization; only the honor period
        # starts again.
        new = Authorization(
            id=new_id(17), client_id=auth.client_id, order_id=auth.order_id,
            currency=auth.currency, amount_minor=minor, status="CREATED", create_time=now,
            update_time=now, expiration_time=auth.expiration_time,
            honor_until=now + ctx.emu.config.authorization_honor_seconds,
            invoice_id=auth.invoice_id, custom_id=auth.custom_id, parent_id=auth.id)
        ctx.emu.authorizations[new.id] = new
        unit = _unit_of(ctx.emu, auth)
        if unit is not None:
            unit.authorization_ids.append(new.id)
        full = authorization_json(ctx.emu, new, ctx.base_url)
        publish(ctx.emu, new.client_id, "PAYMENT.AUTHORIZATION.CREATED", "authorization", full,
                ctx.base_url)
        return shaped(ctx, full, 201)

    return await ctx.idempotent("orders", produce, replay_status=None)


routes = [get_authorization, capture_authorization, void_authorization, reauthorize]
