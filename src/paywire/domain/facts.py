"""Facts paywire learns about an order, and the announcements they make to the shop.

Every path that learns a fact (the API's synchronous answer, a webhook, reconciliation, an
operator) describes it as a `Fact`; `announcement_for` keys the announcement by the fact itself
(architecture.md, "Announcements to the shop"), so whichever path writes it first wins and the
others find it written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paywire.domain.money import Money
from paywire.domain.order import Order, OrderStatus

S = OrderStatus


@dataclass(frozen=True, slots=True)
class Fact:
    """Something true about an order at the provider, with where paywire learned it."""

    target: OrderStatus
    source: str  # "api", "webhook", "reconcile", "operator"
    capture_id: str | None = None
    authorization_id: str | None = None
    refund_id: str | None = None
    dispute_id: str | None = None
    amount: Money | None = None  # the capture's or refund's amount, as the provider reports it
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # The payment attempt this fact is about, for providers that take a new reference per
    # attempt (APS): a DENIED of the order's current attempt opens the next attempt (the buyer
    # may try another card) instead of ending the order; of an earlier attempt it is stale.
    attempt: int | None = None
    # What a webhook body says, not yet the provider's answer to a request of ours: a fact the
    # order cannot take as told (an amount other than ours, a refund that does not fit) is then
    # asked about (a truth fetch), where the provider's own answer goes to a person instead.
    hint: bool = False


@dataclass(frozen=True, slots=True)
class Dispute:
    """A dispute on the order's capture: opened (or updated) marks the order, resolved is told."""

    dispute_id: str
    opened: bool
    source: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Flag:
    """A person must look at the order, for a reason no rule of the state machine covers (an
    answer the provider should not give, a stuck order, an undeliverable announcement)."""

    reason: str
    source: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A person looked at a flagged order and settled it (the dashboard's "mark resolved"):
    the flag is cleared, the note kept in the order's history."""

    note: str
    by: str  # who (an operator's id, never a secret)
    source: str = "operator"


@dataclass(frozen=True, slots=True)
class AttemptOver:
    """A payment call of `attempt` ended without paying (declined, refused): the next attempt
    takes a new idempotency key and, at APS, a new reference."""

    attempt: int
    source: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Created:
    """The provider created its side of the order."""

    provider_order_id: str
    approve_url: str | None
    source: str = "api"


@dataclass(frozen=True, slots=True)
class Reserve:
    """A refund of ours is about to be asked for: its amount is held until the answer."""

    refund_id: str
    amount: Money
    source: str = "api"


@dataclass(frozen=True, slots=True)
class Release:
    """A refund of ours failed (or was refused): what it held is free again."""

    amount: Money
    source: str = "api"


@dataclass(frozen=True, slots=True)
class Announcement:
    """One message to the shop; `key` names the fact so it is written once."""

    key: str
    type: str
    order_id: str
    payload: dict[str, Any]


# Announced once per fact; progress notices (approved, authorized) are best effort.
_TYPES: dict[OrderStatus, str] = {
    S.APPROVED: "order.approved",
    S.AUTHORIZED: "order.authorized",
    S.COMPLETED: "order.completed",
    S.PARTIALLY_REFUNDED: "order.partially_refunded",
    S.REFUNDED: "order.refunded",
    S.REVERSED: "order.reversed",
    S.DENIED: "order.denied",
    S.FAILED: "order.denied",
    S.VOIDED: "order.voided",
    S.EXPIRED: "order.expired",
}


def announcement_for(order: Order, fact: Fact) -> Announcement | None:
    """The announcement `fact` makes about `order` (already moved), keyed by the fact."""
    kind = _TYPES.get(fact.target)
    if kind is None:
        return None
    if fact.target in (S.PARTIALLY_REFUNDED, S.REFUNDED):
        if fact.refund_id is None:
            return None
        key = f"refund:{fact.refund_id}"
    elif fact.target == S.REVERSED:
        key = f"order.reversed:{fact.capture_id or order.capture_id or order.id}"
    else:
        key = f"{kind}:{order.id}"
    payload: dict[str, Any] = {
        "type": kind, "order_id": order.id, "status": str(order.status),
        "amount": order.amount.to_decimal(), "currency": order.amount.currency,
        "provider": order.provider, "provider_order_id": order.provider_order_id,
    }
    for name in ("capture_id", "refund_id", "authorization_id", "dispute_id", "reason"):
        value = getattr(fact, name)
        if value is not None:
            payload[name] = value
    if fact.amount is not None and fact.target != S.COMPLETED:
        payload["fact_amount"] = fact.amount.to_decimal()
    return Announcement(key=key, type=kind, order_id=order.id, payload=payload)


def dispute_announcement(order: Order, dispute_id: str) -> Announcement:
    """order.disputed, keyed by the dispute."""
    return Announcement(key=f"dispute:{dispute_id}", type="order.disputed", order_id=order.id,
                        payload={"type": "order.disputed", "order_id": order.id,
                                 "dispute_id": dispute_id})


def attention_announcement(order: Order, reason: str) -> Announcement:
    """order.needs_attention, keyed by order and reason."""
    return Announcement(key=f"needs_attention:{order.id}:{reason}",
                        type="order.needs_attention", order_id=order.id,
                        payload={"type": "order.needs_attention", "order_id": order.id,
                                 "reason": reason})
