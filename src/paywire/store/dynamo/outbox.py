"""The outbox on DynamoDB: announcements written beside the change they announce, and their
delivery (claim with a lease, finish, settle, revive, list, count).

An announcement's key is unique through a lookup item written in the same transaction. Outbox
claims pick candidates from the sparse due index (only pending messages carry its keys; a
leased one is keyed by its lease's end) and take each with a conditional UpdateItem; finish,
settle and revive are single conditional UpdateItems that answer at once. Counts are
`Select=COUNT` queries of the status index, one per status: exact once the index has caught up,
and free of a counter item that every announcing transaction would have to write — DynamoDB
cancels concurrent transactions on one item, so such a counter would serialize every webhook.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from paywire.domain.errors import ConflictError
from paywire.domain.facts import Announcement
from paywire.ports import (
    OutboxMessage,
)
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo.base import DynamoUnit
from paywire.store.dynamo.items import Item

OUTBOX_STATUSES = ("pending", "queued", "delivered", "dead")
SETTLED_STATUSES = ("delivered", "dead")
REVIVABLE_STATUSES = ("dead", "queued")  # what `paywire outbox retry` sends again


class DynamoOutbox(DynamoUnit):
    """Announcements written beside their change, and their delivery."""

    async def add_announcement(self, announcement: Announcement, message_id: str,
                               now: datetime, trace_id: str | None = None) -> bool:
        """Put the announcement in the outbox unless its key exists; True if written."""
        key = di.lookup_key("OUTKEY", announcement.key)
        if await self._read(key) is not None:
            return False
        item = di.outbox_item(announcement, message_id, now, trace_id)
        if await self._read(di.outbox_key(message_id)) is not None:
            raise ConflictError(f"outbox message id {message_id} already exists")
        self._create(di.lookup_item(key, message_id), f"announcement {announcement.key}",
                     dx.absent)
        self._create(item, f"outbox message {message_id}", dx.absent)
        return True

    async def outbox_for_order(self, order_id: str) -> list[OutboxMessage]:
        """The order's outbox messages, oldest first."""
        items = await self._of_order(order_id, "O#", "outbox")
        items.sort(key=lambda i: (i["created_at"], i["id"]))
        return [di.outbox_from(i) for i in items]

    async def claim_outbox(self, owner: str, now: datetime, lease_until: datetime,
                           limit: int) -> list[OutboxMessage]:
        """Claim up to `limit` pending messages due by `now` whose lease is free or lapsed,
        oldest due first (new messages are due when created); only the messages this call won,
        oldest created first."""
        won = await self._claim("DUE#OUTBOX", owner, now, lease_until, limit)
        messages = [di.outbox_from(item) for item in won]
        return sorted(messages, key=lambda message: (message.created_at, message.id))

    async def finish_outbox(self, message_id: str, owner: str, *, status: str, attempts: int,
                            next_attempt_at: datetime | None, last_error: str | None,
                            now: datetime) -> bool:
        """Record a delivery attempt and release the lease if `owner` still holds it
        (`delivered` stamps `delivered_at`; `pending` needs the retry time)."""
        if status not in OUTBOX_STATUSES:
            raise ValueError(f"outbox status must be one of {list(OUTBOX_STATUSES)}")
        if status == "pending" and next_attempt_at is None:
            raise ValueError("a pending (retried) message needs next_attempt_at")
        return await self._settle(
            message_id, dx.compare("lease_owner", "=", owner), status=status,
            attempts=attempts, last_error=last_error,
            next_attempt_at=None if next_attempt_at is None else di.ts(next_attempt_at),
            delivered_at=di.ts(now) if status == "delivered" else None)

    async def finish_outbox_many(self, message_ids: Sequence[str], owner: str, *, status: str,
                                 attempts: int, next_attempt_at: datetime | None,
                                 last_error: str | None, now: datetime) -> set[str]:
        """`finish_outbox` for each id in turn (DynamoDB has no conditional update of several
        items that lets some fail); the ids recorded."""
        recorded = set()
        for message_id in message_ids:
            if await self.finish_outbox(message_id, owner, status=status, attempts=attempts,
                                        next_attempt_at=next_attempt_at, last_error=last_error,
                                        now=now):
                recorded.add(message_id)
        return recorded

    async def settle_outbox(self, message_id: str, *, status: str, last_error: str | None,
                            now: datetime) -> bool:
        """Record a queue consumer's outcome (delivered or dead) unless already delivered;
        counts the attempt. True if recorded."""
        if status not in SETTLED_STATUSES:
            raise ValueError(f"a settled outbox status must be one of {list(SETTLED_STATUSES)}")
        return await self._settle(
            message_id, dx.compare("status", "<>", "delivered"), status=status, attempts=None,
            last_error=last_error, next_attempt_at=None,
            delivered_at=di.ts(now) if status == "delivered" else None)

    async def _settle(self, message_id: str, cond: dx.Cond, *, status: str,
                      attempts: int | None, last_error: str | None,
                      next_attempt_at: str | None, delivered_at: str | None) -> bool:
        """One conditional UpdateItem that moves a message to `status` and drops its lease
        (`attempts` None: count one more). Its status index entry follows the status; its due
        index entry stays only while pending (keyed by the retry time)."""
        self._check_open()
        await self._flush()
        due = ({"dpk": "DUE#OUTBOX", "dsk": di.due_key(next_attempt_at, message_id)}
               if status == "pending" and next_attempt_at is not None else {})
        done = await self._table.update_if(
            di.outbox_key(message_id), dx.all_of(dx.exists, cond),
            set_={"status": status, "last_error": last_error, "next_attempt_at": next_attempt_at,
                  "delivered_at": delivered_at, "spk": f"OUTBOX#{status}", **due,
                  **({"attempts": attempts} if attempts is not None else {})},
            remove=["lease_owner", "lease_until", *(() if due else ("dpk", "dsk"))],
            add={"attempts": 1} if attempts is None else None)
        return done is not None

    async def get_outbox(self, message_id: str) -> OutboxMessage | None:
        """One message, or None."""
        item = await self._read(di.outbox_key(message_id))
        return di.outbox_from(item) if item is not None else None

    async def list_outbox(self, *, status: str | None = None, limit: int = 50,
                          before: tuple[datetime, str] | None = None) -> list[OutboxMessage]:
        """Messages newest first (ties by id), optionally of one status; `before` =
        (created_at, id) of the last one seen (keyset)."""
        self._require_limit(limit)
        after = None if before is None else (di.ts(before[0]), before[1])

        def accept(item: Item) -> bool:
            return item["kind"] == "outbox" and (status is None or item["status"] == status) and (
                after is None or (item["created_at"], item["id"]) < after)

        index, partition = ((di.BY_TIME, "OUTBOX") if status is None
                            else (di.BY_STATUS, f"OUTBOX#{status}"))
        found = await self._collect(index, partition, ascending=False, limit=limit,
                                    bound=None if before is None else di.below(*before),
                                    kinds=("outbox",), accept=accept)
        found.sort(key=lambda i: (i["created_at"], i["id"]), reverse=True)
        return [di.outbox_from(i) for i in found[:limit]]

    async def revive_outbox(self, message_id: str, now: datetime) -> bool:
        """Make a dead or queued message pending again (no attempts, due `now`, no lease); its
        last error stays for the operator. True if revived (False if absent or neither dead
        nor queued)."""
        self._check_open()
        await self._flush()
        due = di.ts(now)
        revived = await self._table.update_if(
            di.outbox_key(message_id),
            dx.all_of(dx.exists, dx.one_of("status", REVIVABLE_STATUSES)),
            set_={"status": "pending", "attempts": 0, "next_attempt_at": due,
                  "spk": "OUTBOX#pending", "dpk": "DUE#OUTBOX",
                  "dsk": di.due_key(due, message_id)},
            remove=["lease_owner", "lease_until"])
        return revived is not None

    async def outbox_counts(self) -> dict[str, int]:
        """How many messages are in each status (every known status present, zero or not)."""
        self._check_open()
        counts = {s: await self._table.count(di.BY_STATUS, f"OUTBOX#{s}")
                  for s in OUTBOX_STATUSES}
        for entry in self._dirty.values():  # this unit's own, not yet committed
            if entry.base is not None and entry.base.get("kind") == "outbox":
                counts[entry.base["status"]] -= 1
            if entry.item is not None and entry.item.get("kind") == "outbox":
                counts[entry.item["status"]] = counts.get(entry.item["status"], 0) + 1
        return counts
