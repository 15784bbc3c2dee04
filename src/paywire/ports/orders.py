"""Orders: the store's core aggregate, kept with a version so every update is a compare-and-set.

The `Order` record itself is the domain's (`paywire.domain.order`); this port is how it is
stored, found and listed."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from paywire.domain.order import Order, OrderStatus


class Orders(Protocol):
    """Orders by id, by the provider's ids, and newest first."""

    async def get_order(self, order_id: str) -> Order | None:
        """The order, or None."""
        ...

    async def find_order_by_provider_id(self, provider: str,
                                        provider_order_id: str) -> Order | None:
        """The order the provider knows by `provider_order_id`, or None."""
        ...

    async def insert_order(self, order: Order) -> None:
        """Insert a new order with its lines (ConflictError if the id exists)."""
        ...

    async def update_order(self, order: Order, expected_version: int) -> None:
        """Write `order` if the stored version is still `expected_version`, else ConflictError.

        `order.version` must be `expected_version + 1`.
        """
        ...

    async def list_orders(self, *, status: OrderStatus | None = None, limit: int = 50,
                          before: tuple[datetime, str] | None = None) -> list[Order]:
        """Orders newest first; `before` = (created_at, id) of the last one seen (keyset)."""
        ...

    async def find_order_by_capture_id(self, provider: str, capture_id: str) -> Order | None:
        """The order whose capture (or authorization) the provider knows by this id."""
        ...
