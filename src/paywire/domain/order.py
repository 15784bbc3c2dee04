"""The order and its ranked state machine (architecture.md, "Order lifecycle").

States carry a rank so that applying any set of facts in any order ends in the same state: a
fact that would lower the rank is recorded and ignored. Side exits are terminal and legal only
from the states they can follow at the provider; a fact that contradicts a terminal state is a
conflict, which the caller settles by fetching the provider's object (never by picking one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from paywire.domain.errors import IllegalTransition, OverRefund, ValidationError
from paywire.domain.money import Money


class OrderStatus(StrEnum):
    """Where an order stands."""

    CREATED = "CREATED"
    APPROVED = "APPROVED"
    AUTHORIZED = "AUTHORIZED"
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    DENIED = "DENIED"
    FAILED = "FAILED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"
    REVERSED = "REVERSED"


S = OrderStatus
RANK: dict[OrderStatus, int] = {
    S.CREATED: 0, S.APPROVED: 1, S.AUTHORIZED: 2, S.PENDING: 3, S.COMPLETED: 4,
    S.PARTIALLY_REFUNDED: 5, S.REFUNDED: 6,
}
# Each side exit and the states it can follow at the provider.
SIDE_EXITS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.DENIED: frozenset({S.CREATED, S.APPROVED, S.PENDING}),
    S.FAILED: frozenset({S.CREATED, S.APPROVED, S.AUTHORIZED, S.PENDING}),
    S.VOIDED: frozenset({S.CREATED, S.APPROVED, S.AUTHORIZED}),
    # An unpaid checkout's window, or an uncaptured authorization's 29 days, ran out.
    S.EXPIRED: frozenset({S.CREATED, S.APPROVED, S.AUTHORIZED}),
    S.REVERSED: frozenset({S.COMPLETED, S.PARTIALLY_REFUNDED}),
}
TERMINAL = frozenset({S.REFUNDED, *SIDE_EXITS})
PAID = frozenset({S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED})


class Verdict(StrEnum):
    """What applying a fact's target status to an order's status does."""

    APPLY = "APPLY"  # move forward
    STALE = "STALE"  # already there or past it: record, change nothing
    CONFLICT = "CONFLICT"  # contradicts a side exit: fetch the provider's truth


def decide(current: OrderStatus, target: OrderStatus) -> Verdict:
    """The transition table: total over every (current, target) pair."""
    if current == target:
        return Verdict.STALE
    if target in SIDE_EXITS:
        if current in SIDE_EXITS[target]:
            return Verdict.APPLY
        return Verdict.CONFLICT
    if current in SIDE_EXITS:
        # A ranked fact after a side exit: stale if the exit could have followed it (a late
        # APPROVED after EXPIRED), otherwise two facts contradict (COMPLETED after VOIDED).
        return Verdict.STALE if target in SIDE_EXITS[current] else Verdict.CONFLICT
    return Verdict.APPLY if RANK[target] > RANK[current] else Verdict.STALE


class Intent(StrEnum):
    """Capture now, or authorize now and capture later."""

    CAPTURE = "CAPTURE"
    AUTHORIZE = "AUTHORIZE"


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One priced line: the server's price, never the browser's."""

    sku: str
    name: str
    quantity: int
    unit_price: Money

    def __post_init__(self) -> None:
        if not isinstance(self.quantity, int) or isinstance(self.quantity, bool) or not (
                1 <= self.quantity <= 10_000):
            raise ValidationError("quantity must be an integer from 1 to 10000", field="quantity")
        if self.unit_price.minor <= 0:
            raise ValidationError("unit prices are positive", field="unit_price")

    @property
    def total(self) -> Money:
        """unit price × quantity."""
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class Order:
    """An order as paywire records it. Immutable: changes return a new version."""

    id: str
    status: OrderStatus
    intent: Intent
    lines: tuple[OrderLine, ...]
    amount: Money
    created_at: datetime
    updated_at: datetime
    version: int = 1
    provider: str = "paypal"
    provider_order_id: str | None = None
    approve_url: str | None = None
    capture_id: str | None = None
    authorization_id: str | None = None
    captured: Money | None = None
    refunded: Money | None = None
    # Refund amounts reserved by refunds in flight, so two concurrent refunds cannot over-refund.
    refund_reserved: Money | None = None
    disputed: bool = False
    needs_attention: str | None = None
    capture_attempt: int = 1
    metadata: dict[str, str] = field(default_factory=dict)
    # The trace the order was created in (`paywire.domain.trace`): later work on it (its
    # webhooks, reconciliation, the outbox) joins that trace, so one id tells its story.
    trace_id: str | None = None

    @classmethod
    def new(cls, order_id: str, intent: Intent, lines: list[OrderLine], now: datetime,
            provider: str = "paypal", trace_id: str | None = None) -> Order:
        """A CREATED order priced from its lines (one currency, positive total)."""
        if not lines:
            raise ValidationError("an order needs at least one line", field="items")
        currency = lines[0].unit_price.currency
        total = Money.zero(currency)
        for line in lines:
            total = total + line.total
        return cls(id=order_id, status=S.CREATED, intent=intent, lines=tuple(lines),
                   amount=total, created_at=now, updated_at=now, provider=provider,
                   trace_id=trace_id)

    def evolve(self, now: datetime, **changes: object) -> Order:
        """A copy with `changes` and the next version."""
        return dataclasses.replace(self, updated_at=now, version=self.version + 1,
                                   **changes)  # type: ignore[arg-type]

    @property
    def refundable(self) -> Money:
        """What is left to refund: captured − refunded − reserved by refunds in flight."""
        zero = Money.zero(self.amount.currency)
        captured = self.captured or zero
        return captured - (self.refunded or zero) - (self.refund_reserved or zero)

    def check_refund(self, amount: Money) -> None:
        """Refuse a refund the order cannot give (before any provider call)."""
        if self.status not in (S.COMPLETED, S.PARTIALLY_REFUNDED):
            raise IllegalTransition(f"order {self.id} is {self.status}; only paid orders refund")
        if amount.currency != self.amount.currency:
            raise ValidationError(f"refund currency must be {self.amount.currency}",
                                  field="currency")
        if amount.minor <= 0:
            raise ValidationError("refund amounts are positive", field="amount")
        if self.refundable < amount:
            raise OverRefund(f"refund of {amount} exceeds the {self.refundable} left to refund",
                             details={"refundable": self.refundable.to_decimal()})

    def status_after_refunds(self, refunded: Money) -> OrderStatus:
        """PARTIALLY_REFUNDED or REFUNDED, by how much of the capture has been refunded."""
        captured = self.captured or self.amount
        return S.REFUNDED if refunded.minor >= captured.minor else S.PARTIALLY_REFUNDED
