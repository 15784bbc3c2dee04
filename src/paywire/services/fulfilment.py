"""The outbox worker: announcements delivered to the shop at least once, under a stable id.

Each round claims due messages with a lease (a conditional update in its own transaction, so
concurrent workers never hold the same message), hands every message to *every* target, and
records the outcome in another transaction, and only if the lease is still ours (outcomes that
finish together share that transaction: a group commit, not one commit per message), with a
line per attempt in the delivery log (the dashboard's timeline shows each and its answer). A
message is delivered when all targets accepted it; if any target fails the whole message is
retried, so targets must be idempotent on the message id (the shop deduplicates on `webhook-id`).

A crash between sending and marking is the at-least-once case::

    worker A  claim(lease 30 s) ── POST id=M ──> shop stores M ──X (killed, nothing marked)
    worker B                      ... lease lapses ... claim ── POST id=M ──> shop: seen M ── mark

The shop hears M twice under the same id and keeps one. Failures back off exponentially with
full jitter (`paywire.domain.retry`, the provider clients' policy too); a message older than
`max_age` (or refused for good by a target) goes `dead` with an ERROR log line and a
counter, and its order is flagged needs-attention in the same unit of work (as the SQS consumer
does, `paywire.services.queue_delivery`), until an operator revives it (`paywire outbox retry
ID`).

A worker whose targets hand messages to a queue (`hands_off`, e.g. SQS) marks an accepted
message `queued` instead: the queue's consumer delivers it and settles the row.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from paywire.domain import trace
from paywire.domain.errors import DeliveryError
from paywire.domain.retry import Backoff, FullJitter, Jitter
from paywire.domain.retry import no_jitter as no_jitter  # where the outbox's tests take it
from paywire.ports import (
    Clock,
    DeliveryAttempt,
    DeliveryTarget,
    DeliveryUnit,
    OutboxMessage,
    Transactions,
)
from paywire.services import loop
from paywire.services.operations import retry_on_conflict
from paywire.services.transitions import flag_attention

log = logging.getLogger("paywire.outbox")

MAX_ERROR = 500
SOURCE = "outbox"  # the history source of a flag raised by delivery


def attention_reason(message_type: str) -> str:
    """The needs-attention reason for an undeliverable message of this type (one per type and
    order, so a dying `order.needs_attention` flags its order once, not in a chain)."""
    return f"undelivered:{message_type}"


def hands_off(targets: Sequence[DeliveryTarget]) -> bool:
    """True if every target hands messages to a queue (accepted = `queued`), False if none
    does; ValueError for a mix (a queue's consumer delivers to the shop itself, so a message
    sent both ways would reach the shop by two roads)."""
    flags = {bool(getattr(target, "hands_off", False)) for target in targets}
    if len(flags) > 1:
        raise ValueError("an outbox worker's targets must all hand messages to a queue or none "
                         "may (the queue's consumer delivers to the shop)")
    return flags == {True}


async def hand_over(targets: Sequence[DeliveryTarget],
                    message: OutboxMessage) -> DeliveryError | None:
    """Hand the message to every target in turn; the first failure (later targets are not
    tried), or None if all accepted. A target raising anything but DeliveryError counts as a
    retryable failure (logged with its traceback)."""
    for target in targets:
        try:
            await target.deliver(message)
        except DeliveryError as exc:
            return exc
        except Exception as exc:
            log.exception("delivery target %s raised", target.name)
            return DeliveryError(f"{type(exc).__name__}: {exc}", target=target.name)
    return None


def delivering(message: OutboxMessage) -> AbstractContextManager[trace.Work]:
    """The delivery of `message` as work of its own in the trace it was written in (its
    log lines name the message and its order; the shop's callback carries the trace)."""
    return trace.scope(trace.join(message.trace_id), order_id=message.order_id,
                       message_id=message.id)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt's outcome, to be recorded while the lease holds."""

    message: OutboxMessage
    status: str  # delivered | queued | pending (retry at next_at) | dead
    attempts: int
    next_at: datetime | None
    error: str | None
    now: datetime


def _oldest(a: Attempt) -> tuple[datetime, str]:
    # Claim order: a group's outcomes (and dead flags) are written in a stable order.
    return a.message.created_at, a.message.id


class OutboxWorker:
    """Delivers outbox messages to the configured targets."""

    def __init__(self, store: Transactions[DeliveryUnit], targets: Sequence[DeliveryTarget],
                 clock: Clock, *, owner: str, lease: timedelta = timedelta(seconds=30),
                 batch: int = 50,
                 base_delay: timedelta = timedelta(seconds=5),
                 max_delay: timedelta = timedelta(hours=1),
                 max_age: timedelta = timedelta(days=3),
                 jitter: Jitter | None = None,
                 concurrency: int = 10) -> None:
        if not targets:
            raise ValueError("an outbox worker needs at least one delivery target")
        self.store = store
        self.targets = list(targets)
        self.hands_off = hands_off(self.targets)
        self.clock = clock
        self.owner = owner
        self.lease = lease
        self.batch = batch
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_age = max_age
        self.jitter = jitter or FullJitter(random)
        self.backoff = Backoff(base_delay.total_seconds(), max_delay.total_seconds(),
                               self.jitter)
        self.counters: Counter[str] = Counter()
        self.concurrency = max(1, concurrency)

    async def run_once(self) -> int:
        """Claim the messages due now and deliver them; how many were claimed."""
        now = self.clock.now()
        async with self.store.transaction() as uow:
            messages = await uow.claim_outbox(self.owner, now, now + self.lease, self.batch)
        if messages:
            await self._deliver_batch(messages)
        return len(messages)

    async def _deliver_batch(self, messages: Sequence[OutboxMessage]) -> None:
        """Deliver side by side (bounded), so one slow shop answer does not hold the rest of
        the batch past its lease, and record outcomes as they come: every outcome that arrived
        while the previous group was being written is written in one unit of work (a group
        commit), so a batch costs a few commits rather than one per message, and no message
        waits for the whole batch to be recorded. A failure to record (the store down) stops
        the batch: its unrecorded messages keep their lease and are sent again once it lapses
        (at least once, under the same id)."""
        slots = asyncio.Semaphore(self.concurrency)

        async def bounded(message: OutboxMessage) -> Attempt:
            async with slots:
                with delivering(message):
                    return await self._attempt(message)

        waiting = {asyncio.create_task(bounded(m)) for m in messages}
        try:
            while waiting:
                done, waiting = await asyncio.wait(waiting,
                                                   return_when=asyncio.FIRST_COMPLETED)
                await self._record(sorted((task.result() for task in done), key=_oldest))
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Deliver until `stop` is set; sleeps `interval` seconds whenever nothing is due (the
        background jobs' one loop, `paywire.services.loop`)."""

        async def round_() -> bool:
            return await self.run_once() > 0

        await loop.run(round_, stop, interval, name="outbox worker", log=log)

    async def aclose(self) -> None:
        """Release the targets' connections (those that hold any)."""
        for target in self.targets:
            close = getattr(target, "aclose", None)
            if close is not None:
                await close()

    async def _attempt(self, message: OutboxMessage) -> Attempt:
        """Hand `message` to the targets; what to record for it (counted and logged now)."""
        attempts = message.attempts + 1
        failure = await self._deliver(message)
        now = self.clock.now()
        if failure is None:
            status, next_at, error = ("queued" if self.hands_off else "delivered"), None, None
            self.counters[status] += 1
        else:
            error = f"{failure.target}: {failure.message}"[:MAX_ERROR]
            too_old = now - message.created_at >= self.max_age
            if too_old or not failure.retryable:
                status, next_at = "dead", None
                self.counters["dead"] += 1
                log.error("outbox message %s dead", message.id, extra={
                    "message_id": message.id, "message_type": message.type,
                    "order_id": message.order_id, "attempts": attempts, "last_error": error,
                    "reason": "max_age" if too_old else "not_retryable", "outcome": "dead"})
            else:
                status, next_at = "pending", now + self._backoff(attempts)
                self.counters["retried"] += 1
                log.info("outbox message %s not delivered (attempt %d): %s", message.id,
                         attempts, error, extra={"outcome": "retry", "attempts": attempts})
        return Attempt(message, status, attempts, next_at, error, now)

    async def _record(self, group: Sequence[Attempt]) -> None:
        """Write `group`'s outcomes in one unit of work, one statement per distinct outcome
        (`finish_outbox_many`: usually one, every message delivered at its first attempt),
        each only while our lease holds; flag the order of a message that went dead, in the
        same unit of work. `delivered_at` is the latest of the outcome's attempts' times."""
        alike: dict[tuple[str, int, datetime | None, str | None], list[Attempt]] = {}
        for a in group:
            alike.setdefault((a.status, a.attempts, a.next_at, a.error), []).append(a)

        async def commit() -> set[str]:
            recorded: set[str] = set()
            async with self.store.transaction() as uow:
                for (status, attempts, next_at, error), same in alike.items():
                    done = await uow.finish_outbox_many(
                        [a.message.id for a in same], self.owner, status=status,
                        attempts=attempts, next_attempt_at=next_at, last_error=error,
                        now=max(a.now for a in same))
                    recorded |= done
                    for a in same:
                        if status == "dead" and a.message.id in done:
                            await self._flag(uow, a)
                # Each recorded attempt and the shop's answer, for the order's timeline.
                await uow.record_delivery_attempts([
                    DeliveryAttempt(message_id=a.message.id, order_id=a.message.order_id,
                                    at=a.now, attempt=a.attempts, outcome=a.status,
                                    error=a.error, message_type=a.message.type,
                                    trace_id=a.message.trace_id)
                    for a in group if a.message.id in recorded])
            return recorded

        recorded = await retry_on_conflict(commit)
        for a in group:
            with delivering(a.message):
                if a.message.id not in recorded:
                    # Our lease lapsed mid-delivery and another worker took the message: its
                    # outcome stands (the shop may have heard this id twice, which it
                    # tolerates).
                    self.counters["lease_lost"] += 1
                    log.warning("outbox message %s: lease lost before the outcome was recorded",
                                a.message.id, extra={"outcome": "lease_lost"})
                elif a.error is None:
                    log.info("outbox message %s %s (attempt %d)", a.message.id, a.status,
                             a.attempts, extra={"outcome": a.status,
                                                "message_type": a.message.type,
                                                "attempts": a.attempts})

    async def _flag(self, uow: DeliveryUnit, a: Attempt) -> None:
        """Flag the order of a message that went dead (once per reason)."""
        reason = attention_reason(a.message.type)
        order = await uow.get_order(a.message.order_id)
        if order is not None and order.needs_attention != reason:
            await flag_attention(uow, order, reason, a.now, source=SOURCE,
                                 message_id=a.message.id, message_type=a.message.type,
                                 last_error=a.error)

    async def _deliver(self, message: OutboxMessage) -> DeliveryError | None:
        """Hand the message to every target; the first failure, or None if all accepted."""
        return await hand_over(self.targets, message)

    def _backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=self.backoff.delay(attempts))
