"""The truth fetch: ask the provider about what an event could not settle, and apply its answer.

Ambiguous events (unknown order, amount mismatch, contradicting facts) queue a task; this
worker claims due tasks with a lease (several workers never take the same one), GETs the
provider's object, resolves it to the provider's order and applies the whole order's truth
through `apply_fact` (refunds after a look at our own refund records). Failures back off
exponentially; a task that keeps failing, or whose answer is inconsistent, goes to a person.

Confirmation tasks (`services.confirm`: a PayPal webhook's claim, queued by the ingest) run the
same way, usually at once in the background of the webhook's answer (`confirm_handed`, the task
queued already leased to this fetcher; `confirm_now` claims one by id), with this queue as the
fallback when PayPal is slow or down or the process died after answering. A claim
about a refund or a dispute reads that object (one GET); any other reads the order. A claim
PayPal's answer contradicts, or an object PayPal does not know, changes nothing and is recorded
as CONTRADICTED on the order (never flagged for a person: a forgery is not our problem to fix).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from paywire.domain import trace
from paywire.domain.errors import ConfigError, PaywireError, ProviderError
from paywire.domain.facts import Dispute, Fact
from paywire.domain.order import PAID, Order, OrderStatus
from paywire.domain.retry import Backoff
from paywire.ports import (
    Clock,
    DisputeResult,
    PaymentProvider,
    RefundResult,
    Transactions,
    TruthFetchUnit,
    TruthQueue,
    TruthTask,
)
from paywire.services import loop
from paywire.services.confirm import Claim, record_contradiction
from paywire.services.operations import retry_on_conflict
from paywire.services.provider_truth import TruthApplier, truth_fact
from paywire.services.refund_facts import apply_provider_refund
from paywire.services.registry import ProviderRegistry
from paywire.services.transitions import apply_fact, flag_attention

log = logging.getLogger("paywire.truth")
S = OrderStatus


class Unresolvable(PaywireError):
    """The provider's answer cannot be tied to one of our orders, or contradicts itself."""

    code = "unresolvable"


@dataclass(eq=False)
class _Turn:
    """The tasks of one order running in this process, one at a time."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class TruthFetcher:
    """Processes the truth-fetch queue: each task's provider by the name it was queued under
    (`providers`), its answer applied through `truth`."""

    def __init__(self, store: Transactions[TruthFetchUnit], providers: ProviderRegistry,
                 truth: TruthApplier, clock: Clock, *, owner: str,
                 lease: timedelta = timedelta(seconds=60),
                 base_delay: timedelta = timedelta(seconds=5),
                 max_delay: timedelta = timedelta(hours=1), max_attempts: int = 8,
                 batch: int = 20) -> None:
        self.store = store
        self.providers = providers
        self.truth = truth
        self.clock = clock
        self.owner = owner
        self.lease = lease
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self.batch = batch
        self._turns: dict[str, _Turn] = {}  # order id -> its tasks running in this process

    async def run_once(self) -> int:
        """Claim and process the tasks due now; the number processed."""
        now = self.clock.now()
        async with self.store.transaction() as uow:
            tasks = await uow.claim_truth_tasks(self.owner, now, now + self.lease, self.batch)
        for task in tasks:
            # Each task is work of its own, in its order's trace when it names one.
            with trace.scope(trace.start(), provider=task.provider, truth_task=task.id):
                if task.order_id is not None:
                    with contextlib.suppress(PaywireError):  # the task itself will say
                        trace.follow((await self._order(task.order_id)).trace_id,
                                     order_id=task.order_id)
                await self._process(task)
        return len(tasks)

    async def confirm_now(self, task_id: str) -> bool:
        """Run one queued task at once if nobody holds it (the in-process fast path after a
        webhook's answer); False if another worker has it or it is already closed. A failure
        leaves it pending with its backoff, for the queue to finish."""
        now = self.clock.now()
        async with self.store.transaction() as uow:
            task = await uow.claim_truth_task(task_id, self.owner, now, now + self.lease)
            order = await uow.get_order(task.order_id) if task and task.order_id else None
        if task is None:
            return False
        if order is not None:
            trace.follow(order.trace_id, order_id=order.id)
        await self._process(task, order)
        return True

    async def confirm_handed(self, task: TruthTask, order: Order | None) -> bool:
        """Run a task queued already leased to this fetcher (`WebhookIngest.receive(inline=
        True)`: the delivery's transaction queued it, so no claim is made here); `order` is its
        order as that transaction read it. A lease lapsed before the start (the answer took
        that long to go out) is claimed again by id instead, as `confirm_now` does, since the
        queue may hold it now. True if it ran."""
        if task.lease_owner != self.owner or task.lease_until is None:
            raise ValueError(f"truth task {task.id} is not leased to {self.owner}")
        if self.clock.now() >= task.lease_until:
            return await self.confirm_now(task.id)
        if order is not None:
            trace.follow(order.trace_id, order_id=order.id)
        await self._process(task, order)
        return True

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Process the queue until `stop` is set (the background jobs' one loop,
        `paywire.services.loop`)."""

        async def round_() -> bool:
            return await self.run_once() > 0

        await loop.run(round_, stop, interval, name="truth fetcher", log=log)

    async def _process(self, task: TruthTask, order: Order | None = None) -> None:
        """Run one claimed task and close it (done, pending with backoff, or failed); `order`
        is the task's order as read with the claim, if it was.

        One task of an order at a time in this process: a delivery's events arrive together
        (a capture's COMPLETED pair, the order's), each confirmed right after its answer, and
        the first one's GET usually settles the others, which then only read the order again
        (`_confirm`: no second GET for what paywire already learned)."""
        if task.order_id is None:
            await self._run_task(task, order)
            return
        turn = self._turns.setdefault(task.order_id, _Turn())
        turn.users += 1
        try:
            waited = turn.lock.locked()
            async with turn.lock:
                await self._run_task(task, None if waited else order)
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[task.order_id]

    async def _run_task(self, task: TruthTask, order: Order | None) -> None:
        attempts = task.attempts + 1
        claim = Claim.of(task)
        try:
            if claim is not None:
                if await self._confirm(task, claim, order):
                    return  # closed in the unit of work that applied PayPal's answer
            else:
                await self._settle(task)
        except (ProviderError, Unresolvable) as exc:
            now = self.clock.now()
            unknown = isinstance(exc, Unresolvable) or exc.kind == "not_found"
            if unknown and task.order_id and (claim is not None or task.kind != "order"):
                # What a webhook body named is unknown to the provider or not this order's: the
                # body was not the provider's (PayPal signs only its CRC-32). A history line,
                # not a person's problem; the reconciler still settles the order itself.
                why = exc.message if isinstance(exc, Unresolvable) else (
                    f"PayPal knows no {task.kind} {task.resource_id} ({exc.message})")
                await self._contradicted(task.order_id, claim, why, task=task.id)
                async with self.store.transaction() as uow:
                    await uow.finish_truth_task(task.id, self.owner, status="done",
                                                attempts=attempts, next_attempt_at=now,
                                                last_error=exc.message[:500], now=now)
                return
            final = isinstance(exc, Unresolvable) or attempts >= self.max_attempts or (
                isinstance(exc, ProviderError) and exc.kind in ("invalid", "not_found"))
            delay = timedelta(seconds=Backoff(self.base_delay.total_seconds(),
                                              self.max_delay.total_seconds()).ceiling(attempts))
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
        provider = self._provider(task.provider)
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
        order = await self.truth.apply(order.id, state, source="reconcile")
        if refund is not None and refund.status == "completed":
            fact = Fact(S.REFUNDED, "reconcile", refund_id=refund.refund_id, amount=refund.amount,
                        capture_id=refund.capture_id)

            async def count() -> None:
                now = self.clock.now()
                async with self.store.transaction() as uow:
                    cur = await uow.get_order(order.id)
                    if cur is None:
                        raise Unresolvable(f"order {order.id} vanished")
                    # The provider's answer: a refund that does not fit goes to a person.
                    await apply_provider_refund(uow, cur, fact, now)

            await retry_on_conflict(count)

    async def _confirm(self, task: TruthTask, claim: Claim, order: Order | None) -> bool:
        """Check a webhook's claim with one GET and apply what the provider answers; True if
        the task was closed with it."""
        if task.order_id is None:
            raise Unresolvable(f"confirmation {task.id} names no order")
        provider = self._provider(task.provider)
        if task.kind in ("refund", "dispute"):
            found: RefundResult | DisputeResult = await (
                provider.get_refund(task.resource_id) if task.kind == "refund"
                else provider.get_dispute(task.resource_id))
            if isinstance(found, RefundResult):
                if found.status == "completed" and found.capture_id is not None:
                    await self._adopt_capture(provider, task.order_id, (found.capture_id,))
                await self._confirm_refund(task.order_id, claim, found)
            else:
                await self._adopt_capture(provider, task.order_id, found.capture_ids)
                await self._confirm_dispute(task.order_id, claim, found)
            return False
        order = order or await self._order(task.order_id)
        if task.kind != "order" or order.provider_order_id != task.resource_id:
            await self._settle(task)  # an order paywire holds no provider id for: find it
            return False
        held = {p for p in (order.capture_id, order.authorization_id) if p}
        if claim.contradiction(order.status, held) is None:
            # Since the event was queued, paywire learned from PayPal what it claims (another
            # event's confirmation, an API answer): it only repeats that, so no second GET.
            return False
        state = await provider.get_order(task.resource_id, order=order)
        why = claim.contradiction(truth_fact(state, "webhook").target, {
            *(c.capture_id for c in state.captures),
            *(a.authorization_id for a in state.authorizations)})
        if why is not None:
            # The body was not what PayPal sent (or PayPal has not caught up with it, which the
            # reconciler settles): nothing moves on its account.
            await self._contradicted(order.id, claim, why)
            return False

        async def close(uow: TruthQueue) -> None:
            now = self.clock.now()
            await uow.finish_truth_task(task.id, self.owner, status="done",
                                        attempts=task.attempts + 1, next_attempt_at=now,
                                        last_error=None, now=now)

        await self.truth.apply(order.id, state, source="webhook", also=close)
        return True

    async def _adopt_capture(self, provider: PaymentProvider, order_id: str,
                             capture_ids: tuple[str, ...]) -> None:
        """A refund or dispute PayPal confirms names a capture the order does not hold yet
        (its capture events are late): if PayPal puts that capture in this order, apply the
        order's truth first. A capture another order of ours holds is left to the caller,
        which records the contradiction."""
        order = await self._order(order_id)
        if order.provider_order_id is None or order.capture_id in capture_ids:
            return
        for capture_id in capture_ids:
            async with self.store.snapshot() as view:
                if await view.find_order_by_capture_id(provider.name, capture_id) is not None:
                    continue
            capture = await provider.get_capture(capture_id)
            if capture.provider_order_id == order.provider_order_id:
                state = await provider.get_order(order.provider_order_id, order=order)
                await self.truth.apply(order.id, state, source="webhook")
                return

    async def _confirm_refund(self, order_id: str, claim: Claim, refund: RefundResult) -> None:
        async def count() -> None:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await uow.get_order(order_id)
                if cur is None:
                    raise Unresolvable(f"order {order_id} vanished")
                why = None
                if refund.status != "completed":
                    why = f"PayPal says refund {refund.refund_id} is {refund.provider_status}"
                elif refund.capture_id is None or refund.capture_id != cur.capture_id:
                    why = (f"PayPal says refund {refund.refund_id} refunds capture "
                           f"{refund.capture_id or 'none'}, not this order's "
                           f"{cur.capture_id or 'none'}")
                elif cur.status not in PAID and cur.status is not S.REVERSED:
                    why = f"the order is {cur.status}: nothing to refund yet"
                if why is not None:
                    await record_contradiction(uow, cur, claim, why, now)
                    return
                detail = {"provider_status": refund.provider_status}
                if refund.invoice_id:
                    detail["invoice_id"] = refund.invoice_id
                fact = Fact(S.REFUNDED, "webhook", refund_id=refund.refund_id,
                            amount=refund.amount, capture_id=refund.capture_id, detail=detail)
                await apply_provider_refund(uow, cur, fact, now)

        await retry_on_conflict(count)

    async def _confirm_dispute(self, order_id: str, claim: Claim,
                               dispute: DisputeResult) -> None:
        async def mark() -> None:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await uow.get_order(order_id)
                if cur is None:
                    raise Unresolvable(f"order {order_id} vanished")
                if cur.capture_id is None or cur.capture_id not in dispute.capture_ids:
                    await record_contradiction(
                        uow, cur, claim, f"PayPal's dispute {dispute.dispute_id} names "
                        f"{', '.join(dispute.capture_ids) or 'no capture'}, not this order's", now)
                    return
                await apply_fact(uow, cur, Dispute(dispute.dispute_id, dispute.open, "webhook", {
                    "event_type": claim.event_type,
                    "provider_status": dispute.provider_status}), now)

        await retry_on_conflict(mark)

    async def _contradicted(self, order_id: str, claim: Claim | None, why: str,
                            **detail: str) -> None:
        log.warning("webhook %s (%s) contradicted by the provider: %s",
                    claim.event_id if claim else "-", claim.event_type if claim else "-", why)

        async def note() -> None:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                cur = await uow.get_order(order_id)
                if cur is not None:
                    await record_contradiction(uow, cur, claim, why, now, **detail)

        await retry_on_conflict(note)

    def _provider(self, name: str) -> PaymentProvider:
        try:
            return self.providers.named(name)
        except ConfigError as exc:
            raise Unresolvable(exc.message) from None

    # Reads that decide nothing by themselves (what to ask the provider; every write is its
    # own compare-and-set) are snapshots: they never queue behind the writers.

    async def _order(self, order_id: str) -> Order:
        async with self.store.snapshot() as view:
            order = await view.get_order(order_id)
        if order is None:
            raise Unresolvable(f"order {order_id} vanished")
        return order

    async def _provider_order_of(self, order_id: str | None) -> str | None:
        if order_id is None:
            return None
        async with self.store.snapshot() as view:
            order = await view.get_order(order_id)
        return order.provider_order_id if order else None

    async def _order_for(self, provider: str, provider_order_id: str,
                         order_id: str | None) -> Order:
        async with self.store.snapshot() as view:
            order = await view.find_order_by_provider_id(provider, provider_order_id)
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
