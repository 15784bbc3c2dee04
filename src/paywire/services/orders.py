"""Reading orders and refunds, and the one flag every provider call may raise.

Shared by composition, not inheritance: checkout, refunds, the reconciler and the API each hold
what they need (`OrderQueries` for lookups by our id or a provider's, `must_order` inside a unit
of work they already opened), so none of them reaches into another's private helpers.
"""

from __future__ import annotations

from paywire.domain import trace
from paywire.domain.errors import NotFoundError, ProviderError
from paywire.domain.order import Order
from paywire.ports import Clock, OrderLookups, OrderMoves, Orders, Refund, Transactions
from paywire.services.operations import retry_on_conflict
from paywire.services.registry import ProviderRegistry
from paywire.services.transitions import flag_attention


async def must_order(uow: Orders, order_id: str) -> Order:
    """The order `order_id` as `uow` reads it (NotFoundError if there is none): the fresh read
    a read-modify-write starts from, so a retry after a conflict sees the winner's write."""
    order = await uow.get_order(order_id)
    if order is None:
        raise NotFoundError(f"no order {order_id!r}")
    return order


class OrderQueries:
    """Orders by our id or any configured provider's order id, refunds by our id."""

    def __init__(self, store: Transactions[OrderLookups], providers: ProviderRegistry) -> None:
        self.store = store
        self.providers = providers

    async def get(self, ref: str) -> Order:
        """An order by our id or a provider's order id; the work in progress is now about it
        (`trace.follow`: its log lines name it, and a trace paywire started joins the order's)."""
        async with self.store.transaction() as uow:
            return await self.read(uow, ref)

    async def read(self, uow: Orders, ref: str) -> Order:
        """`get` in the caller's unit of work (which may go on to write beside the read)."""
        order = await uow.get_order(ref)
        for name in self.providers.names():
            if order is not None:
                break
            order = await uow.find_order_by_provider_id(name, ref)
        if order is None:
            raise NotFoundError(f"no order {ref!r}")
        trace.follow(order.trace_id, order_id=order.id, provider=order.provider)
        return order

    async def get_refund(self, refund_id: str) -> Refund:
        """A refund by our id."""
        async with self.store.transaction() as uow:
            refund = await uow.get_refund(refund_id)
        if refund is None:
            raise NotFoundError(f"no refund {refund_id!r}")
        return refund


async def flag_if_asked(store: Transactions[OrderMoves], clock: Clock, order_id: str,
                        exc: ProviderError) -> None:
    """Flag the order for a person when the provider's answer asks for one (an answer no rule
    covers: `exc.details["needs_attention"]` names why); once per reason."""
    reason = exc.details.get("needs_attention")
    if not isinstance(reason, str) or not reason:
        return

    async def commit() -> None:
        now = clock.now()
        async with store.transaction() as uow:
            cur = await must_order(uow, order_id)
            if cur.needs_attention != reason:
                await flag_attention(uow, cur, reason[:120], now, source="api",
                                     error=exc.message[:300])

    await retry_on_conflict(commit)
