"""Refunds: paywire's record of each refund of (part of) an order's capture."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from paywire.domain.money import Money


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund of (part of) an order's capture."""

    id: str
    order_id: str
    amount: Money
    status: str  # pending | completed | failed
    operation_key: str
    created_at: datetime
    updated_at: datetime
    provider_refund_id: str | None = None
    reason: str | None = None


class Refunds(Protocol):
    """Refunds by id, by order, by the provider's refund id, and those still pending."""

    async def insert_refund(self, refund: Refund) -> None:
        """Insert a refund (ConflictError if the id exists)."""
        ...

    async def update_refund(self, refund: Refund) -> None:
        """Write a refund's new status / provider id."""
        ...

    async def get_refund(self, refund_id: str) -> Refund | None:
        """The refund, or None."""
        ...

    async def refunds_for_order(self, order_id: str) -> list[Refund]:
        """The order's refunds, oldest first."""
        ...

    async def find_refund_by_provider_id(self, provider_refund_id: str) -> Refund | None:
        """Our record of a provider refund, or None."""
        ...

    async def pending_refunds(self, updated_before: datetime, limit: int) -> list[Refund]:
        """Refunds still pending that were last updated before the cut-off, oldest first."""
        ...
