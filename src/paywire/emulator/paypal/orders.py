"""Orders v2: create, get, patch, authorize, capture; buyer approval; expiry of open orders."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from starlette.responses import Response

from paywire.emulator.clock import iso
from paywire.emulator.paypal import resources
from paywire.emulator.paypal.currencies import money
from paywire.emulator.paypal.errors import issue
from paywire.emulator.paypal.events import publish
from paywire.emulator.paypal.http import Ctx, route, strict_json
from paywire.emulator.paypal.order_patch import apply_patch
from paywire.emulator.paypal.order_request import (
    BREAKDOWN_ADD,
    BREAKDOWN_SUB,
    experience_urls,
    parse_intent,
    parse_money,
    parse_units,
)
from paywire.emulator.paypal.state import Authorization, Capture, EmulatorState, Order, new_id

# What the test buyer can choose on the approval page / control API.
SCENARIOS = ("approve", "decline", "pending", "instrument_declined")
OPEN = ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED")
_PAYER_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def payer_id() -> str:
    """A PayPal account id (13 characters of PayPal's alphabet)."""
    return "".join(secrets.choice(_PAYER_ALPHABET) for _ in range(13))


def merchant_id(client_id: str) -> str:
    """The merchant account id behind an app (stable per client id)."""
    digest = hashlib.sha256(client_id.encode()).digest()
    return "".join(_PAYER_ALPHABET[b % len(_PAYER_ALPHABET)] for b in digest[:13])


def _deadline(emu: EmulatorState, order: Order) -> float:
    start = order.approve_time if order.status == "APPROVED" and order.approve_time else (
        order.create_time)
    return start + emu.config.order_expiry_seconds


def expire_if_due(emu: EmulatorState, order: Order) -> None:
    """Void an order whose approval (or capture-after-approval) window has passed."""
    if order.status in OPEN and not order.expired and emu.clock.now() >= _deadline(emu, order):
        order.status = "VOIDED"
        order.expired = True
        order.update_time = emu.clock.now()
        publish(emu, order.client_id, "CHECKOUT.ORDER.VOIDED", "checkout-order",
                order_json(emu, order, order.base_url), order.base_url)


def expire_due(emu: EmulatorState) -> None:
    """Sweep every open order past its window (called periodically and on clock moves)."""
    for order in list(emu.orders.values()):
        expire_if_due(emu, order)


def find_order(emu: EmulatorState, order_id: str, client_id: str | None = None) -> Order | None:
    """The order, or None if unknown, another app's, or expired (when expired reads as 404)."""
    order = emu.orders.get(order_id)
    if order is None or (client_id is not None and order.client_id != client_id):
        return None
    expire_if_due(emu, order)
    if order.expired and emu.config.expired_order_get == "not_found":
        return None
    return order


def _require(ctx: Ctx, order_id: str) -> Order:
    order = find_order(ctx.emu, order_id, ctx.client_id)
    if order is None:
        raise issue(404, "INVALID_RESOURCE_ID", "order_id", order_id, location="path")
    return order


def _links(order: Order, base: str) -> list[dict[str, str]]:
    href = f"{base}/v2/checkout/orders/{order.id}"
    links = [{"href": href, "rel": "self", "method": "GET"}]
    action = "capture" if order.intent == "CAPTURE" else "authorize"
    if order.status == "CREATED":
        links.append({"href": f"{base}/checkoutnow?token={order.id}", "rel": "approve",
                      "method": "GET"})
    if order.status == "PAYER_ACTION_REQUIRED":
        links.append({"href": f"{base}/checkoutnow?token={order.id}", "rel": "payer-action",
                      "method": "GET"})
    if order.status in ("CREATED", "APPROVED"):
        links.append({"href": href, "rel": "update", "method": "PATCH"})
        links.append({"href": f"{href}/{action}", "rel": action, "method": "POST"})
    return links


_ITEM_TEXT = ("name", "quantity", "sku", "description", "url")
_UNIT_KEYS = ("description", "custom_id", "invoice_id", "soft_descriptor")


def _unit_json(emu: EmulatorState, order: Order, index: int, base: str) -> dict[str, Any]:
    unit = order.units[index]
    raw = unit.raw
    amount: dict[str, Any] = money(unit.currency, unit.amount_minor)
    breakdown = raw["amount"].get("breakdown")
    if isinstance(breakdown, dict):
        amount["breakdown"] = {k: money(unit.currency, v) for k, v in
                               _breakdown_minor(unit.currency, breakdown).items()}
    out: dict[str, Any] = {
        "reference_id": unit.reference_id,
        "amount": amount,
        "payee": {"email_address": "sb-merchant@business.example.com",
                  "merchant_id": merchant_id(order.client_id)},
    }
    for key in _UNIT_KEYS:
        if isinstance(raw.get(key), str):
            out[key] = raw[key]
    if isinstance(raw.get("items"), list):
        out["items"] = [_item_json(unit.currency, src) for src in raw["items"]]
    payments: dict[str, Any] = {}
    if unit.capture_ids:
        payments["captures"] = [resources.capture_json(emu, emu.captures[c], base)
                                for c in unit.capture_ids]
    if unit.authorization_ids:
        payments["authorizations"] = [
            resources.authorization_json(emu, emu.authorizations[a], base)
            for a in unit.authorization_ids]
    if payments:
        out["payments"] = payments
    return out


def _item_json(currency: str, src: dict[str, Any]) -> dict[str, Any]:
    # Echo only what was validated or is plain text: raw input never reaches a response as-is.
    item: dict[str, Any] = {k: src[k] for k in _ITEM_TEXT
                            if isinstance(src.get(k), str) and len(src[k]) <= 2048}
    for key in ("unit_amount", "tax"):
        if src.get(key) is not None:
            item[key] = money(currency, parse_money(src[key], key, currency)[1])
    if src.get("category") in ("DIGITAL_GOODS", "PHYSICAL_GOODS", "DONATION"):
        item["category"] = src["category"]
    return item


def _breakdown_minor(currency: str, breakdown: dict[str, Any]) -> dict[str, int]:
    return {k: parse_money(breakdown[k], k, currency)[1]
            for k in (*BREAKDOWN_ADD, *BREAKDOWN_SUB) if breakdown.get(k) is not None}


def _payment_source(order: Order) -> dict[str, Any] | None:
    if not order.payer:
        return None
    return {"paypal": {"email_address": order.payer["email_address"],
                       "account_id": order.payer["payer_id"], "account_status": "VERIFIED",
                       "name": order.payer["name"], "address": order.payer["address"]}}


def order_json(emu: EmulatorState, order: Order, base: str, *,
               minimal: bool = False, payments_only: bool = False) -> dict[str, Any]:
    """The order as PayPal renders it (full, minimal, or the minimal capture answer)."""
    body: dict[str, Any] = {"id": order.id, "status": order.status}
    source = _payment_source(order)
    if minimal and not payments_only:
        body["links"] = _links(order, base)
        return body
    if source:
        body["payment_source"] = source
    units = [_unit_json(emu, order, i, base) for i in range(len(order.units))]
    if payments_only:
        body["purchase_units"] = [{"reference_id": u["reference_id"], "payments": u["payments"]}
                                  for u in units if "payments" in u]
    else:
        body["intent"] = order.intent
        body["purchase_units"] = units
        body["create_time"] = iso(order.create_time)
        body["update_time"] = iso(order.update_time)
    if order.payer:
        body["payer"] = order.payer
    body["links"] = _links(order, base)
    return body


def approve_order(emu: EmulatorState, order: Order, scenario: str, base_url: str) -> None:
    """The test buyer approves `order`, choosing what happens at capture (`SCENARIOS`)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}")
    expire_if_due(emu, order)
    if order.status not in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
        raise issue(422, "ORDER_COMPLETED_OR_VOIDED", "order_id", order.id, location="path")
    order.scenario = scenario
    if order.status == "APPROVED":
        # Re-approval: the buyer chose another instrument, or approved again after PayPal
        # reversed the first approval.
        order.approval_reversed = False
        return
    pid = payer_id()
    order.payer = {"name": {"given_name": "Test", "surname": "Buyer"},
                   "email_address": f"sb-{pid.lower()}@personal.example.com",
                   "payer_id": pid, "address": {"country_code": "US"}}
    order.status = "APPROVED"
    order.approve_time = order.update_time = emu.clock.now()
    publish(emu, order.client_id, "CHECKOUT.ORDER.APPROVED", "checkout-order",
            order_json(emu, order, base_url), base_url)


@route("/v2/checkout/orders", ["POST"], "orders.create")
async def create(ctx: Ctx) -> Response:
    """Create an order (201; 200 on an idempotent replay)."""

    async def produce() -> Response:
        body = ctx.json_body()
        intent = parse_intent(body)
        units = parse_units(body.get("purchase_units"))
        return_url, cancel_url, wallet = experience_urls(body)
        for u in units:
            if u.invoice_id and (ctx.client_id, u.invoice_id) in ctx.emu.paid_invoices:
                raise issue(422, "DUPLICATE_INVOICE_ID",
                            f"/purchase_units/@reference_id=='{u.reference_id}'/invoice_id",
                            u.invoice_id)
        now = ctx.now
        order = Order(id=new_id(17), client_id=ctx.client_id, intent=intent,
                      status="PAYER_ACTION_REQUIRED" if wallet else "CREATED", units=units,
                      create_time=now, update_time=now, return_url=return_url,
                      cancel_url=cancel_url, payment_source_requested=wallet,
                      base_url=ctx.base_url)
        ctx.emu.orders[order.id] = order
        minimal = not ctx.prefer_representation()
        return ctx.json(order_json(ctx.emu, order, ctx.base_url, minimal=minimal), 201)

    return await ctx.idempotent("orders", produce)


@route("/v2/checkout/orders/{id}", ["GET"], "orders.get")
async def get(ctx: Ctx) -> Response:
    """Show an order."""
    order = _require(ctx, ctx.request.path_params["id"])
    return ctx.json(order_json(ctx.emu, order, ctx.base_url))


@route("/v2/checkout/orders/{id}", ["PATCH"], "orders.patch")
async def patch(ctx: Ctx) -> Response:
    """Apply a JSON Patch to an order before it completes (204)."""
    order = _require(ctx, ctx.request.path_params["id"])
    try:
        ops = strict_json(ctx.body_bytes)
    except ValueError as exc:
        raise issue(400, "MALFORMED_REQUEST_JSON", "/") from exc
    if order.status not in ("CREATED", "APPROVED", "PAYER_ACTION_REQUIRED"):
        raise issue(422, "ORDER_ALREADY_COMPLETED", "order_id", order.id, location="path")
    apply_patch(order, ops)
    order.update_time = ctx.now
    return Response(status_code=204)


def _check_can_pay(ctx: Ctx, order: Order, action: str) -> None:
    if order.status in ("CREATED", "PAYER_ACTION_REQUIRED") or order.approval_reversed:
        raise issue(422, "ORDER_NOT_APPROVED", "order_id", order.id, location="path")
    if order.status == "COMPLETED":
        name = "ORDER_ALREADY_CAPTURED" if order.intent == "CAPTURE" else (
            "ORDER_ALREADY_AUTHORIZED")
        raise issue(422, name, "order_id", order.id, location="path")
    if order.status == "VOIDED":
        raise issue(404, "INVALID_RESOURCE_ID", "order_id", order.id, location="path")
    if order.intent != action:
        raise issue(422, "ACTION_DOES_NOT_MATCH_INTENT", "intent", order.intent)
    for u in order.units:
        paid = ctx.emu.paid_invoices.get((ctx.client_id, u.invoice_id or ""))
        if u.invoice_id and paid is not None:
            raise issue(422, "DUPLICATE_INVOICE_ID", "invoice_id", u.invoice_id)


def _do_capture(ctx: Ctx, order: Order) -> list[Capture]:
    if order.scenario == "instrument_declined":
        raise issue(422, "INSTRUMENT_DECLINED", "payment_source", location="body")
    now = ctx.now
    status, reason = {"approve": ("COMPLETED", None), "decline": ("DECLINED", None),
                      "pending": ("PENDING", "PENDING_REVIEW")}[order.scenario]
    caps = []
    for u in order.units:
        cap = Capture(id=new_id(17), client_id=order.client_id, order_id=order.id,
                      currency=u.currency, amount_minor=u.amount_minor, status=status,
                      status_reason=reason, create_time=now, update_time=now,
                      invoice_id=u.invoice_id, custom_id=u.custom_id)
        ctx.emu.captures[cap.id] = cap
        u.capture_ids.append(cap.id)
        if u.invoice_id and status != "DECLINED":
            ctx.emu.paid_invoices[(order.client_id, u.invoice_id)] = cap.id
        caps.append(cap)
    order.status = "COMPLETED"
    order.update_time = now
    return caps


@route("/v2/checkout/orders/{id}/capture", ["POST"], "orders.capture")
async def capture(ctx: Ctx) -> Response:
    """Capture an approved CAPTURE-intent order (201; 200 on replay)."""

    async def produce() -> Response:
        ctx.json_body(required=False)
        order = _require(ctx, ctx.request.path_params["id"])
        _check_can_pay(ctx, order, "CAPTURE")
        caps = _do_capture(ctx, order)
        base = ctx.base_url
        for cap in caps:
            event = {"COMPLETED": "PAYMENT.CAPTURE.COMPLETED", "DECLINED":
                     "PAYMENT.CAPTURE.DECLINED", "PENDING": "PAYMENT.CAPTURE.PENDING"}[cap.status]
            publish(ctx.emu, order.client_id, event, "capture",
                    resources.capture_json(ctx.emu, cap, base), base)
        if all(c.status == "COMPLETED" for c in caps):
            publish(ctx.emu, order.client_id, "CHECKOUT.ORDER.COMPLETED", "checkout-order",
                    order_json(ctx.emu, order, base), base)
        full = ctx.prefer_representation()
        return ctx.json(order_json(ctx.emu, order, base, payments_only=not full), 201)

    return await ctx.idempotent("orders", produce)


@route("/v2/checkout/orders/{id}/authorize", ["POST"], "orders.authorize")
async def authorize(ctx: Ctx) -> Response:
    """Authorize an approved AUTHORIZE-intent order (201; 200 on replay)."""

    async def produce() -> Response:
        ctx.json_body(required=False)
        order = _require(ctx, ctx.request.path_params["id"])
        if order.status == "VOIDED":
            raise issue(422, "ORDER_COMPLETED_OR_VOIDED", "order_id", order.id, location="path")
        _check_can_pay(ctx, order, "AUTHORIZE")
        if order.scenario == "instrument_declined":
            raise issue(422, "PAYER_CANNOT_PAY", "payment_source")
        now = ctx.now
        cfg = ctx.emu.config
        base = ctx.base_url
        for u in order.units:
            auth = Authorization(
                id=new_id(17), client_id=order.client_id, order_id=order.id,
                currency=u.currency, amount_minor=u.amount_minor,
                status="PENDING" if order.scenario == "pending" else "CREATED",
                create_time=now, update_time=now,
                expiration_time=now + cfg.authorization_valid_seconds,
                honor_until=now + cfg.authorization_honor_seconds,
                invoice_id=u.invoice_id, custom_id=u.custom_id)
            ctx.emu.authorizations[auth.id] = auth
            u.authorization_ids.append(auth.id)
            publish(ctx.emu, order.client_id, "PAYMENT.AUTHORIZATION.CREATED", "authorization",
                    resources.authorization_json(ctx.emu, auth, base), base)
        order.status = "COMPLETED"
        order.update_time = now
        full = ctx.prefer_representation()
        return ctx.json(order_json(ctx.emu, order, base, payments_only=not full), 201)

    return await ctx.idempotent("orders", produce)


routes = [create, get, patch, capture, authorize]
