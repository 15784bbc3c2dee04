"""The queue consumer's use case: outbox messages received from a queue, delivered to the shop.

The outbox worker hands due messages to a queue (SQS) and marks them `queued`; the queue gives
each one to this consumer at least once, maybe more (a standard queue may deliver twice; FIFO
deduplication lasts five minutes only). So the outbox row, not the queue, decides: a row already
`delivered` is acknowledged without a second delivery (the duplicate check, on the message id);
otherwise the message goes to the shop's own targets (signed HTTP callback, Python callable)
and the row is settled `delivered`.

The retry rules are the outbox worker's (`paywire.services.fulfilment`): a retryable failure
backs off exponentially until the row is `max_age` old, then the row is dead. A record that
fails is reported failed with how long to wait (`Failure.retry_in`, the backoff for its receive
count: base x 2^(n-1), at most `max_delay`, "equal jitter" in [half, all] of it); the consumer
extends the message's visibility by that much (SQS `ChangeMessageVisibility`, at most
`MAX_VISIBILITY`) and the queue gives it again then::

    receive   1    2    3    4   ...  11   12  ...   n (row max_age old)
    wait      5s   10s  20s  40s ...  1h   1h  ...   dead, flagged, acknowledged

A retryable failure of a row `max_age` old is final: an ERROR log line, the row settled `dead`
and the order flagged needs-attention (announcing `order.needs_attention`) in one unit of
work — the alert, in code — and the record acknowledged (the row is the record; `paywire
outbox retry` revives it). So is a target's "never again" (410 Gone) at once. The queue's
redrive `maxReceiveCount` must lie above the receives a row can take to reach `max_age`
(`receives_to_max_age`): it is the safety net for what paywire cannot settle. On that last
receive (`receive_count >= max_receives`) a failure is final too and the record is reported
failed so the queue moves it to its dead-letter queue; an unreadable body or a message naming
no outbox row cannot ever succeed, so it is retried at once (`retry_in` 0) and reaches the
dead-letter queue quickly.

A `dead` row stays dead until the operator revives it, as with the outbox worker (its order is
flagged needs-attention: a person decides whether the shop still gets it). A copy of its message
that comes back (redriven from the dead-letter queue with `aws sqs start-message-move-task`, or
a duplicate) is acknowledged without delivery, with a WARNING naming `paywire outbox retry`; once
retried the row is pending, and whichever copy comes first (the drainer's or a redriven one)
delivers it, the others finding it `delivered`. A redriven message is a new SQS message (new id,
receive count from 1), the same body: the row it names, not the queue, decides.

FIFO queues keep one order's messages in order (the group is the order id): after the first
failure in a batch, every later record of the same group is reported failed without being
tried, or it would overtake the one that failed.

    batch  [g1:a] [g1:b] [g2:c] [g1:d]
    a fails ─────> b, d failed untried (group g1 blocked)     c tried on its own

On a standard queue the copies of one message in a batch run one after another in the same
way (the second finds the row delivered), and different messages side by side.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from paywire.domain.errors import PaywireError
from paywire.domain.retry import Backoff, EqualJitter, Jitter
from paywire.ports import (
    Clock,
    DeliveryAttempt,
    DeliveryTarget,
    DeliveryUnit,
    OutboxMessage,
    Transactions,
)
from paywire.services.fulfilment import (
    MAX_ERROR,
    SOURCE,
    attention_reason,
    delivering,
    hand_over,
)
from paywire.services.operations import retry_on_conflict
from paywire.services.transitions import flag_attention

log = logging.getLogger("paywire.queue")

# SQS's longest visibility timeout is 12 h from the receive; a consumer invocation may already
# have run for up to Lambda's 15 min when it asks for more.
MAX_VISIBILITY = 12 * 3600 - 15 * 60
LEAST_JITTER = 0.5  # `equal_jitter` waits at least this share of the backoff


# "Equal jitter" in [half, all] of the backoff: retries of messages that failed together spread
# out, and a row's receives before `max_age` stay bounded (`receives_to_max_age`).
equal_jitter = EqualJitter(random, least=LEAST_JITTER)


def backoff(receive_count: int, base: timedelta, cap: timedelta) -> float:
    """Seconds of backoff after the `receive_count`-th failure, before jitter:
    base x 2^(n-1), at most `cap` (the outbox's policy, `paywire.domain.retry.Backoff`)."""
    return Backoff(base.total_seconds(), cap.total_seconds()).ceiling(receive_count)


def receives_to_max_age(max_age: timedelta, base: timedelta, cap: timedelta) -> int | None:
    """The most receives a message can take before its row is `max_age` old and the consumer
    settles it, with `equal_jitter` always waiting its least (None if the backoff is zero: no
    bound). The queue's redrive `maxReceiveCount` must be above this."""
    if base.total_seconds() <= 0 or cap.total_seconds() <= 0:
        return None
    waited, receives = 0.0, 0
    while waited < max_age.total_seconds():
        receives += 1
        waited += min(backoff(receives, base, cap), MAX_VISIBILITY) * LEAST_JITTER
    return receives + 1  # the receive that finds the row too old


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """One received queue message, as the consumer needs it.

    `item_id` is the queue's id for it (what a failure report names); `message_id` the outbox
    message id its body names, or None with `problem` saying why the body could not be read;
    `group` the FIFO group (None on a standard queue); `receive_count` how many times the queue
    has handed it out, this time included.
    """

    item_id: str
    message_id: str | None
    receive_count: int
    group: str | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A record reported failed: the queue gives it again in `retry_in` seconds (None: after
    the queue's own visibility timeout)."""

    item_id: str
    retry_in: int | None


def lane(record: QueueRecord) -> tuple[str, str]:
    """Which records of a batch run one after another: a FIFO group's, and on a standard queue
    the copies of one message (a queue may hand out a message twice, even in one batch: the
    second copy then finds the row delivered instead of racing the first to the shop)."""
    if record.group is not None:
        return ("group", record.group)
    if record.message_id is not None:
        return ("message", record.message_id)
    return ("item", record.item_id)


class QueueDelivery:
    """Delivers queued outbox messages to the shop's targets; reports which records failed."""

    def __init__(self, store: Transactions[DeliveryUnit], targets: Sequence[DeliveryTarget],
                 clock: Clock, *, max_receives: int, concurrency: int = 10,
                 base_delay: timedelta = timedelta(seconds=5),
                 max_delay: timedelta = timedelta(hours=1),
                 max_age: timedelta = timedelta(days=3),
                 jitter: Jitter = equal_jitter) -> None:
        if not targets:
            raise ValueError("a queue consumer needs at least one delivery target")
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        self.store = store
        self.targets = list(targets)
        self.clock = clock
        self.max_receives = max_receives
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_age = max_age
        self.jitter = jitter
        self.backoff = Backoff(base_delay.total_seconds(), max_delay.total_seconds(), jitter)
        self.concurrency = max(1, concurrency)
        self.counters: Counter[str] = Counter()

    def needed_receives(self) -> int | None:
        """`receives_to_max_age` for this consumer's backoff and maximum age."""
        return receives_to_max_age(self.max_age, self.base_delay, self.max_delay)

    def retry_in(self, record: QueueRecord) -> int:
        """Whole seconds until the queue should give `record` again (its jittered backoff)."""
        return max(0, min(math.ceil(self.backoff.delay(record.receive_count)), MAX_VISIBILITY))

    async def process(self, records: Sequence[QueueRecord]) -> list[Failure]:
        """Handle one batch; the records that failed, in batch order, each with its wait.

        Records of one lane (`lane`) run one after another, a failure blocking the rest of
        the lane; lanes run side by side (bounded).
        """
        groups: dict[tuple[str, str], list[QueueRecord]] = {}
        for record in records:
            groups.setdefault(lane(record), []).append(record)
        failed: dict[str, int | None] = {}
        slots = asyncio.Semaphore(self.concurrency)

        async def run(group: list[QueueRecord]) -> None:
            async with slots:
                blocker: tuple[QueueRecord, int | None] | None = None
                for record in group:
                    if blocker is not None:
                        await self._skip(record, blocker[0])
                        failed[record.item_id] = blocker[1]  # returns with the one before it
                        continue
                    done, retry_in = await self._handle(record)
                    if not done:
                        failed[record.item_id] = retry_in
                        blocker = (record, retry_in)

        await asyncio.gather(*(run(group) for group in groups.values()))
        return [Failure(r.item_id, failed[r.item_id]) for r in records if r.item_id in failed]

    def _last(self, record: QueueRecord) -> bool:
        return record.receive_count >= self.max_receives

    def _level(self, record: QueueRecord) -> int:
        """ERROR when this failure sends the record to the dead-letter queue, else WARNING."""
        return logging.ERROR if self._last(record) else logging.WARNING

    async def _handle(self, record: QueueRecord) -> tuple[bool, int | None]:
        """One record: (True, None) when it is done with (delivered, a duplicate, or dead for
        good), else (False, seconds until the queue should give it again)."""
        if record.message_id is None:
            self.counters["unreadable"] += 1
            log.error("queue message %s is unreadable (receive %d of %d): %s", record.item_id,
                      record.receive_count, self.max_receives, record.problem, extra={
                          "item_id": record.item_id, "receive_count": record.receive_count,
                          "problem": record.problem})
            return False, 0  # never readable: on to the dead-letter queue
        retry_in = self.retry_in(record)
        try:
            async with self.store.transaction() as uow:
                message = await uow.get_outbox(record.message_id)
        except PaywireError as exc:
            self.counters["store_failed"] += 1
            log.log(self._level(record), "queue message %s: cannot read outbox row %s "
                    "(receive %d of %d, again in %d s): %s", record.item_id,
                    record.message_id, record.receive_count, self.max_receives, retry_in,
                    exc.message)
            return False, retry_in
        if message is None:
            self.counters["unknown"] += 1
            log.error("queue message %s names outbox message %s, which does not exist",
                      record.item_id, record.message_id, extra={
                          "item_id": record.item_id, "message_id": record.message_id,
                          "receive_count": record.receive_count})
            return False, 0  # no row to deliver: on to the dead-letter queue
        with delivering(message):  # in the trace the row was written in
            return await self._deliver_row(record, message, retry_in)

    async def _deliver_row(self, record: QueueRecord, message: OutboxMessage,
                           retry_in: int) -> tuple[bool, int | None]:
        """`_handle` once the record's outbox row is read."""
        if message.status == "delivered":
            self.counters["duplicate"] += 1
            log.info("outbox message %s already delivered; acknowledged", message.id)
            return True, None
        if message.status == "dead":
            # Dead is final until the operator revives the row (`paywire outbox retry`: the
            # row pending, the drainer sends it again), as for the outbox worker: its order
            # is flagged needs-attention and a person decides. A copy of its message (one
            # redriven from the dead-letter queue, a duplicate) is acknowledged undelivered.
            self.counters["dead_skipped"] += 1
            log.warning("outbox message %s is dead (order %s needs attention); queue message "
                        "%s acknowledged undelivered: `paywire outbox retry %s` sends it again",
                        message.id, message.order_id, record.item_id, message.id, extra={
                            "message_id": message.id, "order_id": message.order_id,
                            "item_id": record.item_id, "receive_count": record.receive_count})
            return True, None
        failure = await hand_over(self.targets, message)
        if failure is None:
            return await self._delivered(record, message, retry_in)
        error = f"{failure.target}: {failure.message}"[:MAX_ERROR]
        if not failure.retryable:
            await self._give_up(record, message, error, why="not_retryable")
            return True, None
        if self.clock.now() - message.created_at >= self.max_age:
            await self._give_up(record, message, error, why="max_age")
            return True, None
        if self._last(record):
            await self._give_up(record, message, error, why="max_receives")
            return False, None
        self.counters["retried"] += 1
        log.info("outbox message %s not delivered (receive %d of %d), again in %d s: %s",
                 message.id, record.receive_count, self.max_receives, retry_in, error,
                 extra={"message_id": message.id, "receive_count": record.receive_count,
                        "retry_in": retry_in})
        return False, retry_in

    async def _delivered(self, record: QueueRecord, message: OutboxMessage,
                         retry_in: int) -> tuple[bool, int | None]:
        try:
            async with self.store.transaction() as uow:
                now = self.clock.now()
                if await uow.settle_outbox(message.id, status="delivered", last_error=None,
                                           now=now):
                    await uow.record_delivery_attempts([_attempt(message, record, now,
                                                                 "delivered", None)])
        except PaywireError as exc:
            # The shop has it but the row does not say so: the queue gives it again and the
            # shop, deduplicating on the message id, keeps one.
            self.counters["store_failed"] += 1
            log.log(self._level(record), "outbox message %s delivered but not recorded "
                    "(receive %d of %d): %s", message.id, record.receive_count,
                    self.max_receives, exc.message)
            return False, retry_in
        self.counters["delivered"] += 1
        log.info("outbox message %s delivered (receive %d)", message.id, record.receive_count,
                 extra={"outcome": "delivered", "message_type": message.type})
        return True, None

    async def _skip(self, record: QueueRecord, blocker: QueueRecord) -> None:
        """A record behind a failed one of its group: failed untried (dead if this was its
        last receive, or it would reach the dead-letter queue with its row still `queued`)."""
        self.counters["blocked"] += 1
        if not self._last(record) or record.message_id is None:
            return
        try:
            async with self.store.transaction() as uow:
                message = await uow.get_outbox(record.message_id)
        except PaywireError as exc:
            log.error("outbox message %s goes to the dead-letter queue untried and its row "
                      "cannot be read: %s", record.message_id, exc.message)
            return
        if message is not None and message.status != "delivered":
            first = blocker.message_id or blocker.item_id
            await self._give_up(record, message, f"not tried: {first}, before it in its "
                                "group, failed", why="group_blocked")

    async def _give_up(self, record: QueueRecord, message: OutboxMessage, error: str, *,
                       why: str) -> None:
        """Final failure: the row `dead` and its order flagged in one unit of work, and an
        ERROR line that says so."""
        reason = attention_reason(message.type)

        async def commit() -> tuple[bool, bool]:
            now = self.clock.now()
            async with self.store.transaction() as uow:
                if not await uow.settle_outbox(message.id, status="dead", last_error=error,
                                               now=now):
                    return False, False  # delivered meanwhile (another receive of it)
                await uow.record_delivery_attempts([_attempt(message, record, now, "dead",
                                                             error)])
                order = await uow.get_order(message.order_id)
                if order is None:
                    return True, False
                if order.needs_attention != reason:  # flagged once per reason
                    await flag_attention(uow, order, reason, now, source=SOURCE,
                                         message_id=message.id, message_type=message.type,
                                         last_error=error)
                return True, True

        fields = {"message_id": message.id, "message_type": message.type,
                  "order_id": message.order_id, "item_id": record.item_id,
                  "receive_count": record.receive_count, "max_receives": self.max_receives,
                  "last_error": error, "reason": why}
        try:
            settled, flagged = await retry_on_conflict(commit)
        except PaywireError as exc:
            log.error("outbox message %s undeliverable (%s) and its row could not be marked "
                      "dead: %s", message.id, why, exc.message,
                      extra={**fields, "store_error": exc.message})
            return
        if settled:
            self.counters["dead"] += 1
            log.error("outbox message %s dead: %s (receive %d of %d); order %s %s", message.id,
                      why, record.receive_count, self.max_receives, message.order_id,
                      "flagged needs-attention" if flagged else "not found", extra=fields)


def _attempt(message: OutboxMessage, record: QueueRecord, now: datetime, outcome: str,
             error: str | None) -> DeliveryAttempt:
    """The delivery log's line for a queue receive that settled its row (a receive that will
    be retried writes no row, and no line: the queue keeps that count)."""
    return DeliveryAttempt(message_id=message.id, order_id=message.order_id, at=now,
                           attempt=record.receive_count, outcome=outcome, error=error,
                           message_type=message.type, trace_id=message.trace_id)
