"""History: an order's append-only account of what was learned about it and what that did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from paywire.domain.order import OrderStatus


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One line of an order's append-only history: what was learned, and what it did."""

    order_id: str
    at: datetime
    source: str  # api | webhook | reconcile | operator
    verdict: str  # APPLY | STALE | CONFLICT | NOTE | CONTRADICTED
    from_status: OrderStatus
    to_status: OrderStatus
    detail: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None  # the trace of the work that wrote it (`domain.trace`)


class History(Protocol):
    """Append to and read an order's history."""

    async def append_history(self, entry: HistoryEntry) -> None:
        """Append to the order's history."""
        ...

    async def history(self, order_id: str) -> list[HistoryEntry]:
        """The order's history, oldest first."""
        ...
