"""Refunds: reserved against the order before the provider is called, so concurrent refunds
can never add up to more than was captured; applied once per provider refund id.

An Idempotency-Key's retry passes the refund id the key stands for (`refund_id`), so it resumes
the first request's refund; the answer it reports is the API's to store.
"""

from __future__ import annotations

from datetime import datetime

from paywire.domain.errors import IllegalTransition, ProviderError
from paywire.domain.facts import Fact, Release, Reserve
from paywire.domain.money import Money
from paywire.domain.order import Order, OrderStatus
from paywire.domain.transition import KnownRefund
from paywire.ports import Clock, OrderMoves, Refund, RefundsUnit, Transactions
from paywire.services.common import RESUMABLE, error_json, new_id, refund_fields
from paywire.services.operations import OperationDone, OperationRunner, retry_on_conflict
from paywire.services.orders import OrderQueries, flag_if_asked, must_order
from paywire.services.registry import ProviderRegistry
from paywire.services.transitions import apply_fact, flag_attention

S = OrderStatus


class Refunds:
    """Full and partial refunds of a paid order, at the provider the order was created at."""

    def __init__(self, store: Transactions[RefundsUnit], providers: ProviderRegistry,
                 clock: Clock, *, orders: OrderQueries | None = None,
                 runner: OperationRunner | None = None) -> None:
        self.store = store
        self.providers = providers
        self.clock = clock
        self.orders = orders or OrderQueries(store, providers)
        self.ops = runner or OperationRunner(store, clock)

    async def refund(self, ref: str, amount: Money | None = None, *,
                     refund_id: str | None = None,
                     reason: str | None = None) -> tuple[Order, Refund]:
        """Refund part or all of a paid order; over-refunds are refused before the provider.
        `refund_id`: the id an Idempotency-Key stands for (a retry resumes that refund)."""
        refund_id = refund_id or new_id("ref")
        order = await self.orders.get(ref)

        async def reserve() -> tuple[Order, Refund]:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                existing = await uow.get_refund(refund_id)
                cur = await must_order(uow, order.id)
                if existing is not None:
                    return cur, existing
                amt = amount if amount is not None else cur.refundable
                cur.check_refund(amt)
                if cur.capture_id is None:
                    raise IllegalTransition(f"order {cur.id} has no capture to refund")
                refund = Refund(id=refund_id, order_id=cur.id, amount=amt, status="pending",
                                operation_key=f"{refund_id}:refund", created_at=now,
                                updated_at=now, reason=reason)
                await uow.insert_refund(refund)
                moved, _ = await apply_fact(uow, cur, Reserve(refund_id, amt), now)
                return moved, refund

        order, refund = await retry_on_conflict(reserve)
        if refund.status == "pending":
            order, refund = await self._refund_at_provider(order, refund)
        return order, refund

    async def _refund_at_provider(self, order: Order, refund: Refund) -> tuple[Order, Refund]:
        key = refund.operation_key
        capture_id = order.capture_id
        if capture_id is None:  # reserve() refuses such orders; kept for the type checker
            raise IllegalTransition(f"order {order.id} has no capture to refund")
        try:
            await self.ops.claim(key, order.id, "refund")
        except OperationDone:
            return await self.orders.get(order.id), await self.orders.get_refund(refund.id)
        try:
            result = await self.providers.of(order).refund_capture(
                capture_id, refund.amount, request_id=key, invoice_id=refund.id, order=order)
        except ProviderError as exc:
            await flag_if_asked(self.store, self.clock, order.id, exc)
            if exc.kind in RESUMABLE:
                await self.ops.release(key, exc)
                raise
            await self._refund_refused(order.id, refund, exc)
            raise
        fact = Fact(S.REFUNDED, "api", refund_id=result.refund_id, amount=result.amount,
                    capture_id=order.capture_id)

        async def commit() -> tuple[Order, Refund]:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, order.id)
                adopted = await uow.find_refund_by_provider_id(result.refund_id)
                if adopted is not None and adopted.id == refund.id:
                    # The provider's webhook got here first and already counted this refund.
                    await uow.finish_operation(key, "succeeded", {"refund_id": result.refund_id,
                                                                  "status": adopted.status},
                                               None, now)
                    return cur, adopted
                status = result.status
                settled = Refund(**{**refund_fields(refund), "status": status,
                                    "provider_refund_id": result.refund_id, "updated_at": now})
                if status == "completed":
                    # Ours, reserved when asked for: counted, and its reservation released.
                    cur, _ = await apply_fact(uow, cur, fact, now,
                                              known=KnownRefund(refund.amount, completed=False))
                elif status == "failed":
                    cur = await release_reservation(uow, cur, refund.amount, now)
                await uow.update_refund(settled)
                await uow.finish_operation(key, "succeeded", {"refund_id": result.refund_id,
                                                              "status": status}, None, now)
                return cur, settled

        return await retry_on_conflict(commit)

    async def _refund_refused(self, order_id: str, refund: Refund, exc: ProviderError) -> None:
        async def commit() -> None:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await must_order(uow, order_id)
                if exc.kind in ("already_done", "duplicate_invoice", "over_refund"):
                    # The provider says this money already went back (a replay past its key
                    # retention) but does not say under which refund: a person confirms it.
                    await flag_attention(uow, cur, f"refund_unconfirmed:{refund.id}", now,
                                         source="api", issue=exc.issue)
                    await uow.finish_operation(refund.operation_key, "failed", None,
                                               error_json(exc), now)
                    return
                await release_reservation(uow, cur, refund.amount, now)
                await uow.update_refund(Refund(**{**refund_fields(refund), "status": "failed",
                                                  "updated_at": now}))
                await uow.finish_operation(refund.operation_key, "failed", None,
                                           error_json(exc), now)

        await retry_on_conflict(commit)


async def release_reservation(uow: OrderMoves, order: Order, amount: Money,
                              now: datetime) -> Order:
    """Give back a refund's reservation (the refund failed): the order may be refunded again."""
    moved, _ = await apply_fact(uow, order, Release(amount), now)
    return moved
