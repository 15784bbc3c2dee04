"""Reconciliation bookkeeping: which orders are due a check with the provider, and their backoff."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from paywire.domain.order import Order, OrderStatus


@dataclass(frozen=True, slots=True)
class ReconcileState:
    """Where an order's reconciliation checks stand (their backoff), kept per order."""

    order_id: str
    attempts: int
    next_check_at: datetime
    first_checked_at: datetime
    last_checked_at: datetime


class Reconciliation(Protocol):
    """Candidates for a check, and each order's check state."""

    async def reconcile_candidates(self, updated_before: Mapping[OrderStatus, datetime],
                                   now: datetime, limit: int
                                   ) -> list[tuple[Order, ReconcileState | None]]:
        """Orders in the given statuses last updated before that status's cut-off and whose
        next check is due (or that were never checked), oldest first."""
        ...

    async def save_reconcile_state(self, state: ReconcileState) -> None:
        """Insert or replace an order's reconciliation state."""
        ...

    async def clear_reconcile_state(self, order_id: str) -> None:
        """Forget an order's reconciliation state (it reached a final state)."""
        ...
