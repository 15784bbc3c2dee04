"""The truth fetch: ask the provider about what an event could not settle, and apply its answer.

Ambiguous events (unknown order, amount mismatch, contradicting facts) queue a task; this
worker claims due tasks with a lease (several workers never take the same one), GETs the
provider's object, resolves it to the provider's order and applies the whole order's truth
through `apply_transition` (and refunds through their own bookkeeping). Failures back off
exponentially; a task that keeps failing, or whose answer is inconsistent, goes to a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from paywire.domain.errors import ConfigError, PaywireError, ProviderError
from paywire.domain.facts import Fact
from paywire.domain.order import Order, OrderStatus
from paywire.ports import Clock, PaymentProvider, Store, TruthTask
from paywire.services.checkout import CheckoutService
from paywire.services.operations import retry_on_conflict
from paywire.services.refund_facts import apply_provider_refund
from paywire.services.transitions import flag_attention

log = logging.getLogger("paywire.truth")
S = OrderStatus


class Unresolvable(PaywireError):
    """The provider's answer cannot be tied to one of our orders, or contradicts itself."""

    code = "unresolvable"


class TruthFetcher:
    """Processes the truth-fetch queue."""

    def __init__(self, store: Store, provider: PaymentProvider, checkout: CheckoutService,
                 clock: Clock, *, owner: str, lease: timedelta = timedelta(seconds=60),
                 base_delay: timedelta = timedelta(seconds=5),
                 max_delay: timedelta = timedelta(hours=1), max_attempts: int = 8,
                 batch: int = 20) -> None:
        self.store = store
        self.provider = provider
        self.checkout = checkout
        self.clock = clock
        self.owner = owner
        self.lease = lease
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.batch = batch

    async def run_once(self) -> int:
        """Claim and process the tasks due now; the number processed."""
        now = self.clock.now()
        async with self.store.transaction() as uow:
            tasks = await uow.claim_truth_tasks(self.owner, now, now + self.lease, self.batch)
        for task in tasks:
            await self._process(task)
        return len(tasks)

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Process the queue until `stop` is set (an in-process background loop)."""
        while not stop.is_set():
            try:
                busy = await self.run_once()
            except PaywireError:
                log.exception("truth fetch round failed; retrying")
                busy = 0
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)

    async def _process(self, task: TruthTask) -> None:
        attempts = task.attempts + 1
        try:
            await self._settle(task)
        except (ProviderError, Unresolvable) as exc:
            now = self.clock.now()
            final = isinstance(exc, Unresolvable) or attempts >= self.max_attempts or (
                isinstance(exc, ProviderError) and exc.kind in ("invalid", "not_found"))
            delay = min(self.base_delay * (2 ** (attempts - 1)), self.max_delay)
            log.info("truth fetch %s failed (attempt %d): %s", task.id, attempts, exc.message)
            if final and task.order_id:
                await self._attention(task.order_id, f"truth_fetch_failed:{task.kind}",
                                      error=exc.message)
            async with self.store.transaction() as uow:
                await uow.finish_truth_task(task.id, self.owner,
                                            status="failed" if final else "pending",
                                            attempts=attempts, next_attempt_at=now + delay,
                                            last_error=exc.message[:500], now=now)
            return
        now = self.clock.now()
        async with self.store.transaction() as uow:
            await uow.finish_truth_task(task.id, self.owner, status="done", attempts=attempts,
                                        next_attempt_at=now, last_error=None, now=now)

    async def _settle(self, task: TruthTask) -> None:
        refund = None
        try:
            provider = self.checkout.provider_named(task.provider)
        except ConfigError as exc:
            raise Unresolvable(exc.message) from None
        if task.kind == "refund":
            refund = await provider.get_refund(task.resource_id)
            if refund.capture_id is not None:
                provider_order_id = (await provider.get_capture(refund.capture_id)
                                     ).provider_order_id
            elif task.order_id is not None:
                # A provider without capture objects (APS): the order the event was tied to.
                provider_order_id = await self._provider_order_of(task.order_id)
            else:
                raise Unresolvable(f"refund {task.resource_id} names no capture")
        elif task.kind == "capture":
            provider_order_id = (await provider.get_capture(task.resource_id)
                                 ).provider_order_id
        elif task.kind == "order":
            provider_order_id = task.resource_id
        else:  # authorization, dispute: only through the order we already tied them to
            provider_order_id = await self._provider_order_of(task.order_id)
        if provider_order_id is None:
            raise Unresolvable(f"{task.kind} {task.resource_id} names no order")
        order = await self._order_for(provider.name, provider_order_id, task.order_id)
        state = await provider.get_order(provider_order_id, order=order)
        order = await self.checkout.apply_truth(order.id, state, source="reconcile")
        if refund is not None and refund.status == "completed":
            fact = Fact(S.REFUNDED, "reconcile", refund_id=refund.refund_id, amount=refund.amount,
                        capture_id=refund.capture_id)

            async def count() -> None:
                now = self.clock.now()
                async with self.store.transaction() as uow:
                    cur = await uow.get_order(order.id)
                    if cur is None:
                        raise Unresolvable(f"order {order.id} vanished")
                    if not await apply_provider_refund(uow, cur, fact, now):
                        await flag_attention(uow, cur, f"refund_mismatch:{refund.refund_id}",
                                             now, source="reconcile")

            await retry_on_conflict(count)

    async def _provider_order_of(self, order_id: str | None) -> str | None:
        if order_id is None:
            return None
        async with self.store.transaction() as uow:
            order = await uow.get_order(order_id)
        return order.provider_order_id if order else None

    async def _order_for(self, provider: str, provider_order_id: str,
                         order_id: str | None) -> Order:
        async with self.store.transaction() as uow:
            order = await uow.find_order_by_provider_id(provider, provider_order_id)
        if order is None:
            raise Unresolvable(f"the provider's order {provider_order_id} is not one of ours")
        if order_id is not None and order.id != order_id:
            raise Unresolvable(f"provider order {provider_order_id} belongs to {order.id}, "
                               f"not {order_id}: the provider's answer is inconsistent")
        return order

    async def _attention(self, order_id: str, reason: str, **detail: str) -> None:
        async def flag() -> None:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await uow.get_order(order_id)
                if cur is not None and cur.needs_attention is None:
                    await flag_attention(uow, cur, reason, now, source="reconcile", **detail)

        await retry_on_conflict(flag)
