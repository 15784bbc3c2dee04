"""The queue consumer's use case: outbox messages received from a queue, delivered to the shop.

The outbox worker hands due messages to a queue (SQS) and marks them `queued`; the queue gives
each one to this consumer at least once, maybe more (a standard queue may deliver twice; FIFO
deduplication lasts five minutes only). So the outbox row, not the queue, decides: a row already
`delivered` is acknowledged without a second delivery (the duplicate check, on the message id);
otherwise the message goes to the shop's own targets (signed HTTP callback, Python callable)
and the row is settled `delivered`.

A record that fails is reported failed and the queue gives it again after its visibility
timeout. On its last allowed receive (`receive_count >= max_receives`, the queue's redrive
`maxReceiveCount`) a failure is final: an ERROR log line, the row settled `dead` and the order
flagged needs-attention (announcing `order.needs_attention`) in one unit of work — the alert,
in code — and the record is still reported failed so the queue moves it to its dead-letter
queue. A target's "never again" (410 Gone) is final at once: dead, flagged, logged, and
acknowledged (the row is the record; `paywire outbox retry` revives it).

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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from paywire.domain.errors import PaywireError
from paywire.ports import Clock, DeliveryTarget, OutboxMessage, Store
from paywire.services.fulfilment import MAX_ERROR, hand_over
from paywire.services.operations import retry_on_conflict
from paywire.services.transitions import flag_attention

log = logging.getLogger("paywire.queue")

SOURCE = "outbox"  # the history source of a flag raised by delivery


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


def lane(record: QueueRecord) -> tuple[str, str]:
    """Which records of a batch run one after another: a FIFO group's, and on a standard queue
    the copies of one message (a queue may hand out a message twice, even in one batch: the
    second copy then finds the row delivered instead of racing the first to the shop)."""
    if record.group is not None:
        return ("group", record.group)
    if record.message_id is not None:
        return ("message", record.message_id)
    return ("item", record.item_id)


def attention_reason(message_type: str) -> str:
    """The needs-attention reason for an undeliverable message of this type (one per type and
    order, so a dying `order.needs_attention` flags its order once, not in a chain)."""
    return f"undelivered:{message_type}"


class QueueDelivery:
    """Delivers queued outbox messages to the shop's targets; reports which records failed."""

    def __init__(self, store: Store, targets: Sequence[DeliveryTarget], clock: Clock, *,
                 max_receives: int, concurrency: int = 10) -> None:
        if not targets:
            raise ValueError("a queue consumer needs at least one delivery target")
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        self.store = store
        self.targets = list(targets)
        self.clock = clock
        self.max_receives = max_receives
        self.concurrency = max(1, concurrency)
        self.counters: Counter[str] = Counter()

    async def process(self, records: Sequence[QueueRecord]) -> list[str]:
        """Handle one batch; the item ids of the records that failed, in batch order.

        Records of one lane (`lane`) run one after another, a failure blocking the rest of
        the lane; lanes run side by side (bounded).
        """
        groups: dict[tuple[str, str], list[QueueRecord]] = {}
        for record in records:
            groups.setdefault(lane(record), []).append(record)
        failed: set[str] = set()
        slots = asyncio.Semaphore(self.concurrency)

        async def run(group: list[QueueRecord]) -> None:
            async with slots:
                blocker: QueueRecord | None = None
                for record in group:
                    if blocker is not None:
                        await self._skip(record, blocker)
                        failed.add(record.item_id)
                    elif not await self._handle(record):
                        failed.add(record.item_id)
                        blocker = record

        await asyncio.gather(*(run(group) for group in groups.values()))
        return [r.item_id for r in records if r.item_id in failed]

    def _last(self, record: QueueRecord) -> bool:
        return record.receive_count >= self.max_receives

    def _level(self, record: QueueRecord) -> int:
        """ERROR when this failure sends the record to the dead-letter queue, else WARNING."""
        return logging.ERROR if self._last(record) else logging.WARNING

    async def _handle(self, record: QueueRecord) -> bool:
        """One record: True when it is done with (delivered, a duplicate, or dead for good)."""
        if record.message_id is None:
            self.counters["unreadable"] += 1
            log.error("queue message %s is unreadable (receive %d of %d): %s", record.item_id,
                      record.receive_count, self.max_receives, record.problem, extra={
                          "item_id": record.item_id, "receive_count": record.receive_count,
                          "problem": record.problem})
            return False
        try:
            async with self.store.transaction() as uow:
                message = await uow.get_outbox(record.message_id)
        except PaywireError as exc:
            self.counters["store_failed"] += 1
            log.log(self._level(record), "queue message %s: cannot read outbox row %s "
                    "(receive %d of %d): %s", record.item_id, record.message_id,
                    record.receive_count, self.max_receives, exc.message)
            return False
        if message is None:
            self.counters["unknown"] += 1
            log.error("queue message %s names outbox message %s, which does not exist",
                      record.item_id, record.message_id, extra={
                          "item_id": record.item_id, "message_id": record.message_id,
                          "receive_count": record.receive_count})
            return False
        if message.status == "delivered":
            self.counters["duplicate"] += 1
            log.info("outbox message %s already delivered; acknowledged", message.id)
            return True
        failure = await hand_over(self.targets, message)
        if failure is None:
            return await self._delivered(record, message)
        error = f"{failure.target}: {failure.message}"[:MAX_ERROR]
        if not failure.retryable:
            await self._give_up(record, message, error, why="not_retryable")
            return True
        if self._last(record):
            await self._give_up(record, message, error, why="max_receives")
            return False
        self.counters["retried"] += 1
        log.info("outbox message %s not delivered (receive %d of %d): %s", message.id,
                 record.receive_count, self.max_receives, error)
        return False

    async def _delivered(self, record: QueueRecord, message: OutboxMessage) -> bool:
        try:
            async with self.store.transaction() as uow:
                await uow.settle_outbox(message.id, status="delivered", last_error=None,
                                        now=self.clock.now())
        except PaywireError as exc:
            # The shop has it but the row does not say so: the queue gives it again and the
            # shop, deduplicating on the message id, keeps one.
            self.counters["store_failed"] += 1
            log.log(self._level(record), "outbox message %s delivered but not recorded "
                    "(receive %d of %d): %s", message.id, record.receive_count,
                    self.max_receives, exc.message)
            return False
        self.counters["delivered"] += 1
        return True

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
