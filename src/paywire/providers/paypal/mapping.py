"""PayPal wire JSON <-> paywire's domain: the create-order body, and the answers read back
(orders, captures, authorizations, refunds, disputes) through the status tables.

Pure: no I/O. Every status table is total over the values PayPal's OpenAPI files enumerate and
ends in an explicit unknown (`ProviderError(kind="unknown")`), never a silent default. Money
objects are `money`'s, refusals (non-2xx answers) `refusals`'.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from paywire.domain.errors import ProviderError, ValidationError
from paywire.domain.money import Money
from paywire.domain.order import Order, OrderStatus
from paywire.ports import (
    AuthorizationResult,
    CaptureResult,
    DisputeResult,
    ProviderOrder,
    ProviderOrderState,
    RefundResult,
)
from paywire.providers.paypal.money import from_paypal_money, to_paypal_money

PROVIDER = "paypal"
S = OrderStatus
V = TypeVar("V")

# --- the create-order body -------------------------------------------------------------------

ITEM_CATEGORIES = ("PHYSICAL_GOODS", "DIGITAL_GOODS", "DONATION")
_MAX_ID = 127  # custom_id and invoice_id (reference_id allows 256)


def order_request(order: Order, *, return_url: str | None = None, cancel_url: str | None = None,
                  category: str = "PHYSICAL_GOODS") -> dict[str, Any]:
    """The `POST /v2/checkout/orders` body for `order`: one purchase unit keyed by our order id.

    `invoice_id` = our order id, so PayPal refuses a second payment for one of our orders
    (DUPLICATE_INVOICE_ID). With URLs, the buyer is sent through `payment_source.paypal.
    experience_context` (the order answers PAYER_ACTION_REQUIRED with a `payer-action` link);
    without, it answers CREATED with an `approve` link.
    """
    if not 1 <= len(order.id) <= _MAX_ID:
        raise ValidationError(f"PayPal ids hold 1..{_MAX_ID} characters", field="order_id")
    if category not in ITEM_CATEGORIES:
        raise ValidationError(f"item category must be one of {ITEM_CATEGORIES}",
                              field="category")
    currency = order.amount.currency
    total = Money.zero(currency)
    items: list[dict[str, Any]] = []
    for line in order.lines:
        if line.unit_price.currency != currency:
            raise ValidationError("an order's lines share one currency", field="currency")
        if len(line.sku) > _MAX_ID:
            raise ValidationError(f"PayPal skus hold at most {_MAX_ID} characters", field="sku")
        items.append({"name": (line.name.strip() or line.sku or "Item")[:127], "sku": line.sku,
                      "quantity": str(line.quantity),
                      "unit_amount": to_paypal_money(line.unit_price), "category": category})
        total = total + line.total
    if total != order.amount:
        raise ValidationError(f"order amount {order.amount} is not the sum of its lines {total}",
                              field="amount")
    item_total = to_paypal_money(total)
    unit = {"reference_id": order.id, "custom_id": order.id, "invoice_id": order.id,
            "amount": {**item_total, "breakdown": {"item_total": item_total}}, "items": items}
    body: dict[str, Any] = {"intent": order.intent.value, "purchase_units": [unit]}
    if return_url or cancel_url:
        ctx: dict[str, str] = {"user_action": "PAY_NOW", "shipping_preference": "NO_SHIPPING"}
        if return_url:
            ctx["return_url"] = return_url
        if cancel_url:
            ctx["cancel_url"] = cancel_url
        body["payment_source"] = {"paypal": {"experience_context": ctx}}
    return body


# --- status tables -----------------------------------------------------------------------------

CAPTURE_STATUS: dict[str, OrderStatus] = {
    "COMPLETED": S.COMPLETED, "PENDING": S.PENDING, "DECLINED": S.DENIED, "FAILED": S.FAILED,
    "PARTIALLY_REFUNDED": S.PARTIALLY_REFUNDED, "REFUNDED": S.REFUNDED,
}
# EXPIRED is not in the OpenAPI file (payments 2.5) nor in PayPal's current SDK, but an older
# revision of PayPal's reference listed it: should PayPal send it, it means what it says. A
# CREATED authorization past its expiration_time is expired too (the reconciler's
# `authorization_lapsed`); see docs/emulator-authorizations.md.
AUTHORIZATION_STATUS: dict[str, OrderStatus] = {
    "CREATED": S.AUTHORIZED, "PENDING": S.PENDING, "CAPTURED": S.COMPLETED,
    "PARTIALLY_CAPTURED": S.COMPLETED, "VOIDED": S.VOIDED, "DENIED": S.DENIED,
    "EXPIRED": S.EXPIRED,
}
# How long PayPal honours an authorization at most: 29 days from its creation.
AUTHORIZATION_VALIDITY = timedelta(days=29)
REFUND_STATUS: dict[str, str] = {
    "COMPLETED": "completed", "PENDING": "pending", "FAILED": "failed", "CANCELLED": "failed",
}
# None: a COMPLETED order means what its captures (or authorizations) mean.
ORDER_STATUS: dict[str, OrderStatus | None] = {
    "CREATED": S.CREATED, "PAYER_ACTION_REQUIRED": S.CREATED, "SAVED": S.APPROVED,
    "APPROVED": S.APPROVED, "VOIDED": S.VOIDED, "COMPLETED": None,
}
_PAID = (S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.REVERSED)


def _unknown(message: str) -> ProviderError:
    return ProviderError(message, provider=PROVIDER, kind="unknown")


def lookup(table: Mapping[str, V], status: Any, what: str) -> V:
    """`table[status]`, or the explicit unknown: ProviderError(kind="unknown")."""
    if isinstance(status, str) and status in table:
        return table[status]
    raise _unknown(f"PayPal {what} status {status!r} is not one paywire knows")


def _str(data: Any, key: str, what: str) -> str:
    value = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(value, str) or not value:
        raise _unknown(f"PayPal {what} has no {key}")
    return value


def _money(data: Mapping[str, Any], what: str) -> Money:
    try:
        return from_paypal_money(data.get("amount"))
    except ValidationError as exc:
        raise _unknown(f"PayPal {what} amount: {exc.message}") from exc


def _dig(data: Any, *keys: str) -> str | None:
    """The string at `data[k1][k2]...`, or None."""
    for key in keys:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data if isinstance(data, str) else None


def _payments(order: Mapping[str, Any], kind: str) -> Iterator[Mapping[str, Any]]:
    """Every capture or authorization in an order's purchase units, in order."""
    units = order.get("purchase_units")
    for unit in units if isinstance(units, list) else ():
        pays = unit.get("payments") if isinstance(unit, Mapping) else None
        found = pays.get(kind) if isinstance(pays, Mapping) else None
        yield from (p for p in (found if isinstance(found, list) else ()) if isinstance(p, Mapping))


def _capture(data: Mapping[str, Any], order_id: str | None) -> CaptureResult:
    provider_status = _str(data, "status", "capture")
    status = lookup(CAPTURE_STATUS, provider_status, "capture")
    reason = _dig(data, "status_details", "reason")
    if status == S.REFUNDED and reason == "CHARGEBACK":
        status = S.REVERSED  # Payments v2 has no REVERSED: a chargeback reads REFUNDED
    order_id = order_id or _dig(data, "supplementary_data", "related_ids", "order_id")
    return CaptureResult(capture_id=_str(data, "id", "capture"), status=status,
                         amount=_money(data, "capture"), provider_status=provider_status,
                         reason=reason, provider_order_id=order_id)


def _instant(data: Mapping[str, Any], key: str) -> datetime | None:
    """The aware timestamp at `data[key]`, None when absent; malformed is the explicit unknown."""
    value = data.get(key)
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _unknown(f"PayPal authorization {key} {value!r}") from exc
    if at.tzinfo is None:
        raise _unknown(f"PayPal authorization {key} {value!r} has no zone")
    return at


def _authorization(data: Mapping[str, Any]) -> AuthorizationResult:
    provider_status = _str(data, "status", "authorization")
    expires_at = _instant(data, "expiration_time")
    if expires_at is None:
        # Without PayPal's own expiry, its documented validity from the authorization's creation.
        created = _instant(data, "create_time")
        expires_at = created + AUTHORIZATION_VALIDITY if created is not None else None
    return AuthorizationResult(
        authorization_id=_str(data, "id", "authorization"),
        status=lookup(AUTHORIZATION_STATUS, provider_status, "authorization"),
        amount=_money(data, "authorization"), provider_status=provider_status,
        expires_at=expires_at)


def parse_order_created(data: Any) -> ProviderOrder:
    """A create-order answer: id, status and where to send the buyer."""
    provider_status = _str(data, "status", "order")
    status = lookup(ORDER_STATUS, provider_status, "order") or S.COMPLETED
    links = data.get("links")
    approve_url = next((link["href"] for link in (links if isinstance(links, list) else ())
                        if isinstance(link, Mapping) and isinstance(link.get("href"), str)
                        and link.get("rel") in ("approve", "payer-action")), None)
    return ProviderOrder(provider_order_id=_str(data, "id", "order"), status=status.value,
                         approve_url=approve_url)


def parse_capture(data: Any) -> CaptureResult:
    """A capture: from an order-capture answer (its last capture) or a Payments capture."""
    if not isinstance(data, Mapping):
        raise _unknown("PayPal capture answer is not a JSON object")
    if "purchase_units" not in data:
        return _capture(data, None)
    captures = list(_payments(data, "captures"))
    if not captures:
        raise _unknown("PayPal order-capture answer holds no capture")
    return _capture(captures[-1], _str(data, "id", "order"))


def parse_authorization(data: Any) -> AuthorizationResult:
    """An authorization: from an order-authorize answer or a Payments authorization."""
    if not isinstance(data, Mapping):
        raise _unknown("PayPal authorization answer is not a JSON object")
    if "purchase_units" not in data:
        return _authorization(data)
    auths = list(_payments(data, "authorizations"))
    if not auths:
        raise _unknown("PayPal order-authorize answer holds no authorization")
    return _authorization(auths[-1])


_UP_CAPTURE = re.compile(r".*/v2/payments/captures/([A-Za-z0-9_-]{1,127})/?(?:[?#].*)?")


def up_capture_id(data: Any) -> str | None:
    """The capture id a refund's `links[rel=up]` (`…/v2/payments/captures/{id}`) names, or None."""
    links = data.get("links") if isinstance(data, Mapping) else None
    hrefs = [x.get("href") for x in (links if isinstance(links, list) else ())
             if isinstance(x, Mapping) and x.get("rel") == "up"]
    found = _UP_CAPTURE.fullmatch(hrefs[0]) if hrefs and isinstance(hrefs[0], str) else None
    return found.group(1) if found else None


def parse_refund(data: Any) -> RefundResult:
    """A refund, with the capture it refunds (from its `up` link)."""
    provider_status = _str(data, "status", "refund")
    invoice = data.get("invoice_id")
    return RefundResult(refund_id=_str(data, "id", "refund"),
                        status=lookup(REFUND_STATUS, provider_status, "refund"),
                        amount=_money(data, "refund"), provider_status=provider_status,
                        capture_id=up_capture_id(data),
                        invoice_id=invoice if isinstance(invoice, str) and invoice else None)


# A dispute is open until PayPal resolves it (Disputes v1 `status`); OTHER is still open.
DISPUTE_OPEN_STATUSES = frozenset({"OPEN", "WAITING_FOR_BUYER_RESPONSE",
                                   "WAITING_FOR_SELLER_RESPONSE", "UNDER_REVIEW", "OTHER"})


def parse_dispute(data: Any) -> DisputeResult:
    """A dispute (`GET /v1/customer/disputes/{id}`): open or resolved, and its captures (the
    disputed transactions' `seller_transaction_id`)."""
    provider_status = _str(data, "status", "dispute")
    if provider_status != "RESOLVED" and provider_status not in DISPUTE_OPEN_STATUSES:
        raise _unknown(f"PayPal dispute status {provider_status[:40]!r} is not known")
    txs = data.get("disputed_transactions")
    captures = tuple(t["seller_transaction_id"] for t in (txs if isinstance(txs, list) else ())
                     if isinstance(t, Mapping) and isinstance(t.get("seller_transaction_id"), str)
                     and t["seller_transaction_id"])
    return DisputeResult(dispute_id=_str(data, "dispute_id", "dispute"),
                         open=provider_status != "RESOLVED", provider_status=provider_status,
                         capture_ids=captures)


def completed_status(captures: tuple[CaptureResult, ...],
                     authorizations: tuple[AuthorizationResult, ...]) -> OrderStatus:
    """What a COMPLETED order means: its captures decide, else its authorizations."""
    caps = {c.status for c in captures}
    if caps & set(_PAID):
        if S.REVERSED in caps:
            return S.REVERSED
        if caps & {S.PARTIALLY_REFUNDED, S.REFUNDED}:
            return S.REFUNDED if (caps & set(_PAID)) == {S.REFUNDED} else S.PARTIALLY_REFUNDED
        return S.COMPLETED
    for status in (S.PENDING, S.FAILED, S.DENIED):
        if status in caps:
            return status
    auths = {a.status for a in authorizations}
    for status in (S.COMPLETED, S.AUTHORIZED, S.PENDING, S.DENIED, S.VOIDED, S.EXPIRED):
        if status in auths:
            return status
    raise _unknown("PayPal order is COMPLETED but holds no capture or authorization")


def parse_order_state(data: Any) -> ProviderOrderState:
    """The provider's truth from a GET order: status derived from its payments when COMPLETED."""
    provider_status = _str(data, "status", "order")
    order_id = _str(data, "id", "order")
    captures = tuple(_capture(c, order_id) for c in _payments(data, "captures"))
    auths = tuple(_authorization(a) for a in _payments(data, "authorizations"))
    status = lookup(ORDER_STATUS, provider_status, "order") or completed_status(captures, auths)
    amount: Money | None = None
    units = data.get("purchase_units")
    for unit in units if isinstance(units, list) else ():
        if isinstance(unit, Mapping) and unit.get("amount") is not None:
            part = _money(unit, "order")
            amount = part if amount is None else amount + part
    return ProviderOrderState(provider_order_id=order_id, status=status,
                              provider_status=provider_status, amount=amount,
                              captures=captures, authorizations=auths)
