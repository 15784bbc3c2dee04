"""PayPal webhook bodies -> `ProviderEvent`: one exhaustive table from event type to meaning.

Pure: no I/O. The resource inside each event is read with the same mapping as the API answers
(`mapping.parse_capture`, `parse_refund`, `parse_authorization`, the status tables, exact money),
so a capture means the same thing whichever path reports it.

What the ingest gets back:
- `fact` set: apply it (`source="webhook"`).
- `fact` None and `resource_kind` "other": a type paywire does not act on: store, acknowledge,
  ignore.
- `fact` None and `resource_kind` "dispute": the ingest records the dispute flag itself
  (`dispute_open`: a CREATED or UPDATED dispute event, not a RESOLVED one).
- `fact` None and any other kind: a genuine event that does not say what to apply (an approval
  reversal, a refund not completed, a resource whose own status contradicts its event type, a
  completed AUTHORIZE order without payments): queue a truth fetch of `resource_kind`/`resource_id`.
- `ValidationError(field="body")`: not a PayPal event at all (not a JSON object, NaN/Infinity, no
  `id`/`event_type`/`resource`).
- `ValidationError(field="resource")` with `details` {"event_id", "event_type"}: a known type
  whose resource is unusable (a capture without id, a bad amount). The envelope is sound, so the
  ingest can store the event as ignored with the message as its note.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from paywire.domain.errors import ProviderError, ValidationError
from paywire.domain.events import ProviderEvent
from paywire.domain.facts import Fact
from paywire.domain.money import Money
from paywire.domain.order import OrderStatus
from paywire.ports import DeliveryMarks
from paywire.providers.marks import json_labels
from paywire.providers.paypal.mapping import (
    PROVIDER,
    _dig,
    completed_status,
    parse_authorization,
    parse_capture,
    parse_refund,
)
from paywire.providers.paypal.webhook_signature import H_CERT, H_ID

S = OrderStatus
T = TypeVar("T")
SOURCE = "webhook"
# Ids that end up in a truth fetch's URL path: PayPal's are letters, digits and dashes.
_RESOURCE_ID = re.compile(r"[A-Za-z0-9_-]{1,127}")
_ENVELOPE_TEXT = re.compile(r"[!-~]{1,255}")  # printable ASCII, no spaces
_MAX_LOCATOR = 255


@dataclass(frozen=True, slots=True)
class Meaning:
    """What an event type means: which reader takes its resource, and the fact it states."""

    reader: str  # order | capture | refund | reversal | authorization | dispute | other
    target: OrderStatus | None = None


EVENTS: dict[str, Meaning] = {
    "CHECKOUT.ORDER.APPROVED": Meaning("order", S.APPROVED),
    # A COMPLETED order means what its payments mean (PayPal completes an order whose capture
    # was DECLINED or is PENDING too): refined in `_order_completed`.
    "CHECKOUT.ORDER.COMPLETED": Meaning("order", S.COMPLETED),
    # PayPal voids an order that expires unapproved or uncaptured as well as one voided outright,
    # and the event does not say which. VOIDED it is: the state machine treats VOIDED and EXPIRED
    # alike as terminal side exits, and VOIDED may follow every state EXPIRED may (and
    # AUTHORIZED); the shop hears `order.voided` where `order.expired` might have been apt.
    "CHECKOUT.ORDER.VOIDED": Meaning("order", S.VOIDED),
    # Something failed after the buyer approved; PayPal then cancels the order or lets the buyer
    # approve again (the emulator models the latter). Neither is certain from the event, and the
    # ranked states have no way back below APPROVED: mapping it to VOIDED would make a later
    # re-approval and capture a conflict, and announce a voided order that may yet be paid. So no
    # fact: the ingest asks PayPal for the order and applies what it says.
    "CHECKOUT.PAYMENT-APPROVAL.REVERSED": Meaning("order"),
    "PAYMENT.CAPTURE.COMPLETED": Meaning("capture", S.COMPLETED),
    "PAYMENT.CAPTURE.PENDING": Meaning("capture", S.PENDING),
    "PAYMENT.CAPTURE.DENIED": Meaning("capture", S.DENIED),  # the capture reads DECLINED
    "PAYMENT.CAPTURE.DECLINED": Meaning("capture", S.DENIED),
    # Carries the refund; the ingest decides PARTIALLY_REFUNDED or REFUNDED from its bookkeeping.
    "PAYMENT.CAPTURE.REFUNDED": Meaning("refund", S.REFUNDED),
    # Carries a refund-shaped record (as in PayPal's sample) whose `up` link is the capture.
    "PAYMENT.CAPTURE.REVERSED": Meaning("reversal", S.REVERSED),
    "PAYMENT.AUTHORIZATION.CREATED": Meaning("authorization", S.AUTHORIZED),
    "PAYMENT.AUTHORIZATION.VOIDED": Meaning("authorization", S.VOIDED),
    "CUSTOMER.DISPUTE.CREATED": Meaning("dispute"),
    "CUSTOMER.DISPUTE.UPDATED": Meaning("dispute"),
    "CUSTOMER.DISPUTE.RESOLVED": Meaning("dispute"),
}
OTHER = Meaning("other")  # every type not above: stored, acknowledged, ignored


def meaning(event_type: str) -> Meaning:
    """The table's row for `event_type`, or the explicit OTHER."""
    return EVENTS.get(event_type, OTHER)


@dataclass(frozen=True, slots=True)
class _Envelope:
    event_id: str
    event_type: str
    resource: Mapping[str, Any]

    def unusable(self, message: str) -> ValidationError:
        return ValidationError(f"PayPal event {self.event_id} ({self.event_type}): {message}",
                               field="resource", details={"event_id": self.event_id,
                                                          "event_type": self.event_type})

    def read(self, parse: Callable[[Any], T], data: Any) -> T:
        """`parse(data)` with the mapping's refusals turned into this event's ValidationError."""
        try:
            return parse(data)
        except (ProviderError, ValidationError) as exc:
            raise self.unusable(exc.message) from exc

    def event(self, kind: str, resource_id: str | None, fact: Fact | None = None,
              **locators: str | None) -> ProviderEvent:
        unknown = set(locators) - _LOCATORS
        if unknown:
            raise TypeError(f"unknown event locators {sorted(unknown)}")
        return ProviderEvent(provider=PROVIDER, event_id=self.event_id,
                             event_type=self.event_type, resource_kind=kind,
                             resource_id=resource_id, fact=fact,
                             order_id=locators.get("order_id"),
                             provider_order_id=locators.get("provider_order_id"),
                             capture_id=locators.get("capture_id"),
                             dispute_id=locators.get("dispute_id"))


_LOCATORS = frozenset({"order_id", "provider_order_id", "capture_id", "dispute_id"})


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _envelope(body: bytes) -> _Envelope:
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, NaN; deep nesting
        raise ValidationError(f"a PayPal event is JSON: {exc}"[:300], field="body") from exc
    if not isinstance(data, dict):
        raise ValidationError("a PayPal event is a JSON object", field="body")
    resource = data.get("resource")
    if not isinstance(resource, dict):
        raise ValidationError("a PayPal event carries a `resource` object", field="body")
    return _Envelope(_text(data, "id"), _text(data, "event_type"), resource)


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not _ENVELOPE_TEXT.fullmatch(value):
        raise ValidationError(f"a PayPal event has a printable `{name}` of 1..255 characters",
                              field="body")
    return value


def _resource_id(env: _Envelope, data: Mapping[str, Any], *keys: str) -> str:
    """The first of `keys` holding a PayPal id; the resource is unusable without one."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and _RESOURCE_ID.fullmatch(value):
            return value
    raise env.unusable(f"the resource has no usable {' or '.join(keys)}")


def _safe_id(value: Any) -> str | None:
    """A PayPal id that may be fetched, else None (an optional locator)."""
    return value if isinstance(value, str) and _RESOURCE_ID.fullmatch(value) else None


def _locator(value: Any) -> str | None:
    """Our own id as PayPal echoes it (`custom_id`), else None; only ever looked up."""
    return value if isinstance(value, str) and 0 < len(value) <= _MAX_LOCATOR else None


def _first(data: Any, key: str) -> Mapping[str, Any]:
    """`data[key][0]` when it is an object, else empty."""
    items = data.get(key) if isinstance(data, Mapping) else None
    first = items[0] if isinstance(items, list) and items else None
    return first if isinstance(first, Mapping) else {}


def _list(data: Any, key: str) -> list[Any]:
    items = data.get(key) if isinstance(data, Mapping) else None
    return items if isinstance(items, list) else []


def _positive(env: _Envelope, amount: Money, what: str) -> Money:
    if amount.minor <= 0:
        raise env.unusable(f"the {what} amount {amount} is not positive")
    return amount


# --- readers, one per resource ----------------------------------------------------------------

def _order(env: _Envelope, target: OrderStatus | None) -> ProviderEvent:
    res = env.resource
    # PayPal's own sample of CHECKOUT.PAYMENT-APPROVAL.REVERSED names the order `order_id`.
    paypal_id = _resource_id(env, res, "id", "order_id")
    unit = _first(res, "purchase_units")
    fact: Fact | None = None
    if target == S.COMPLETED:
        fact = _order_completed(env, res, unit)
    elif target is not None:
        fact = Fact(target, SOURCE)
    return env.event("order", paypal_id, fact, order_id=_locator(unit.get("custom_id")),
                     provider_order_id=paypal_id)


def _order_completed(env: _Envelope, res: Mapping[str, Any],
                     unit: Mapping[str, Any]) -> Fact | None:
    pays = unit.get("payments")
    caps = tuple(env.read(parse_capture, c) for c in _list(pays, "captures"))
    auths = tuple(env.read(parse_authorization, a) for a in _list(pays, "authorizations"))
    if not caps and not auths:
        # No payments shown: a CAPTURE order completed; an AUTHORIZE one is only authorized,
        # under an authorization id the event does not give, so the truth fetch says.
        return None if res.get("intent") == "AUTHORIZE" else Fact(S.COMPLETED, SOURCE)
    status = completed_status(caps, auths)  # total once there is a capture or authorization
    if status in (S.PARTIALLY_REFUNDED, S.REFUNDED, S.REVERSED):
        status = S.COMPLETED  # it did complete; refunds and reversals come as their own events
    if caps:
        cap = caps[0]
        return Fact(status, SOURCE, capture_id=cap.capture_id, amount=cap.amount,
                    reason=cap.reason, detail={"provider_status": cap.provider_status})
    auth = auths[0]
    return Fact(status, SOURCE, authorization_id=auth.authorization_id, amount=auth.amount,
                detail={"provider_status": auth.provider_status})


def _capture(env: _Envelope, target: OrderStatus | None) -> ProviderEvent:
    res = env.resource
    if "purchase_units" in res:  # parse_capture would read it as an order-capture answer
        raise env.unusable("a capture resource holds no purchase units")
    cap = env.read(parse_capture, res)
    cap_id = _resource_id(env, res, "id")
    # The capture's own status decides with the event type: when they disagree (a COMPLETED
    # event carrying a PENDING capture), neither is applied and the truth fetch settles it.
    fact = None if cap.status != target else Fact(
        cap.status, SOURCE, capture_id=cap_id, amount=cap.amount, reason=cap.reason,
        authorization_id=_safe_id(_dig(res, "supplementary_data", "related_ids",
                                       "authorization_id")),
        detail={"provider_status": cap.provider_status})
    return env.event("capture", cap_id, fact, order_id=_locator(res.get("custom_id")),
                     provider_order_id=_safe_id(cap.provider_order_id), capture_id=cap_id)


def _refund(env: _Envelope, target: OrderStatus | None) -> ProviderEvent:
    res = env.resource
    refund = env.read(parse_refund, res)
    refund_id = _resource_id(env, res, "id")
    amount = _positive(env, refund.amount, "refund")
    detail = {"provider_status": refund.provider_status}
    if _locator(res.get("invoice_id")):
        detail["invoice_id"] = res["invoice_id"]  # paywire sends its own refund id here
    # Only a completed refund has given money back; a pending or failed one is asked about.
    fact = Fact(target, SOURCE, refund_id=refund_id, amount=amount,
                capture_id=refund.capture_id, detail=detail) if (
        target and refund.status == "completed") else None
    return env.event("refund", refund_id, fact, order_id=_locator(res.get("custom_id")),
                     capture_id=refund.capture_id)


def _reversal(env: _Envelope, target: OrderStatus | None) -> ProviderEvent:
    res = env.resource
    record = env.read(parse_refund, res)
    record_id = _resource_id(env, res, "id")
    # The event type gives the direction, so a negative amount means the same money.
    amount = Money(abs(record.amount.minor), record.amount.currency)
    fact = Fact(target, SOURCE, capture_id=record.capture_id, amount=amount,
                detail={"reversal_id": record_id}) if (
        target and record.status == "completed") else None
    # The capture is the truth about a reversal (it reads REFUNDED, reason CHARGEBACK); the
    # refund-shaped record only when no `up` link names the capture.
    kind, rid = ("capture", record.capture_id) if record.capture_id else ("refund", record_id)
    return env.event(kind, rid, fact, order_id=_locator(res.get("custom_id")),
                     capture_id=record.capture_id)


def _authorization(env: _Envelope, target: OrderStatus | None) -> ProviderEvent:
    res = env.resource
    auth = env.read(parse_authorization, res)
    auth_id = _resource_id(env, res, "id")
    fact = None if auth.status != target else Fact(
        auth.status, SOURCE, authorization_id=auth_id, amount=auth.amount,
        detail={"provider_status": auth.provider_status})
    order_id = _safe_id(_dig(res, "supplementary_data", "related_ids", "order_id"))
    return env.event("authorization", auth_id, fact, order_id=_locator(res.get("custom_id")),
                     provider_order_id=order_id)


def _dispute(env: _Envelope, target: OrderStatus | None) -> ProviderEvent:
    res = env.resource
    dispute_id = _resource_id(env, res, "dispute_id")
    tx = _first(res, "disputed_transactions")
    event = env.event("dispute", dispute_id, None, dispute_id=dispute_id,
                      capture_id=_safe_id(tx.get("seller_transaction_id")),
                      order_id=_locator(tx.get("custom")))
    # CUSTOMER.DISPUTE.CREATED / UPDATED report it open; RESOLVED closes it.
    return dataclasses.replace(event, dispute_open=env.event_type.endswith((".CREATED",
                                                                             ".UPDATED")))


def _other(env: _Envelope, target: OrderStatus | None) -> ProviderEvent:
    return env.event("other", _safe_id(env.resource.get("id")))


_READERS: dict[str, Callable[[_Envelope, OrderStatus | None], ProviderEvent]] = {
    "order": _order, "capture": _capture, "refund": _refund, "reversal": _reversal,
    "authorization": _authorization, "dispute": _dispute, "other": _other,
}


class PayPalEventParser:
    """`ports.EventParser` for PayPal: a verified body in, a `ProviderEvent` out."""

    event_name = "a PayPal event"

    def parse(self, body: bytes) -> ProviderEvent:
        """Parse one event (ValidationError if it is not one, or its resource is unusable)."""
        env = _envelope(body)
        row = meaning(env.event_type)
        return _READERS[row.reader](env, row.target)

    def marks(self, headers: Mapping[str, str], body: bytes) -> DeliveryMarks:
        """The transmission id and certificate URL PayPal's headers name, and the event id and
        type the body's JSON names: labels for the rejection log (the body is untrusted)."""
        lower = {k.lower(): v for k, v in headers.items()}
        event_id, event_type = json_labels(body)
        return DeliveryMarks(transmission_id=lower.get(H_ID.lower()), event_id=event_id,
                             event_type=event_type, cert_url=lower.get(H_CERT.lower()))

