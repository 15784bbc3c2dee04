"""What the operator's dashboard reads and writes beyond the other aggregates: orders searched
with filters and a keyset cursor, an order's provider calls and received events, each delivery
attempt to the shop, and the audit log of what operators did.

Searching is bounded work, whatever the filters: a backend examines at most a page's worth of
index entries per call (`OrderPage.next_before` says where the next call resumes, even when a
page came back short), so a search over a million orders never walks them all in one request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from paywire.domain.order import Order, OrderStatus
from paywire.ports.inbox import InboxEvent
from paywire.ports.operations import ProviderOperation


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Which orders a search keeps; every field set narrows it (all None: every order)."""

    status: OrderStatus | None = None
    provider: str | None = None
    needs_attention: bool = False  # only orders flagged needs-attention
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    min_minor: int | None = None  # the order's amount, in minor units, inclusive
    max_minor: int | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class OrderPage:
    """A page of a search, newest first; `next_before` (created_at, id) resumes it (None: the
    search has seen every matching order)."""

    orders: list[Order]
    next_before: tuple[datetime, str] | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One thing an operator did: who (a caller id or user name, never a secret), what, when,
    to which order, with what outcome."""

    id: str
    at: datetime
    actor: str
    action: str  # login | login_refused | logout | reconcile | refund | resolve | outbox_retry
    order_id: str | None = None
    outcome: str = "ok"  # ok | refused | error
    detail: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One attempt to hand an outbox message to the shop, and its answer."""

    message_id: str
    order_id: str
    at: datetime
    attempt: int  # 1 for the first
    outcome: str  # delivered | queued | pending (to be retried) | dead
    error: str | None = None
    message_type: str | None = None
    trace_id: str | None = None


class OperatorReads(Protocol):
    """The dashboard's reads: searched orders, an order's provider calls and events."""

    async def search_orders(self, where: OrderFilter, *, limit: int = 50,
                            before: tuple[datetime, str] | None = None) -> OrderPage:
        """Orders `where` keeps, newest first (ties by id), created before `before`."""
        ...

    async def operations_for_order(self, order_id: str) -> list[ProviderOperation]:
        """The provider calls made for the order, oldest first."""
        ...

    async def inbox_for_order(self, order_id: str) -> list[InboxEvent]:
        """The provider events stored for the order, oldest first."""
        ...


class AuditLog(Protocol):
    """The operators' audit log: appended, read per order and newest first."""

    async def record_audit(self, entry: AuditEntry) -> None:
        """Append an entry (its id is unique)."""
        ...

    async def audit_for_order(self, order_id: str) -> list[AuditEntry]:
        """The order's audit entries, oldest first."""
        ...

    async def list_audit(self, *, limit: int = 50,
                         before: tuple[datetime, str] | None = None) -> list[AuditEntry]:
        """Entries newest first; `before` = (at, id) (keyset)."""
        ...


class DeliveryLog(Protocol):
    """Each delivery attempt, written beside the outbox outcome it led to."""

    async def record_delivery_attempts(self, attempts: Sequence[DeliveryAttempt]) -> None:
        """Append the attempts."""
        ...

    async def delivery_attempts(self, order_id: str) -> list[DeliveryAttempt]:
        """The attempts at the order's messages, oldest first."""
        ...
