"""The health readings on DynamoDB: `Select=COUNT` queries of one index range each, and one item
read for the earliest due outbox message.

The outbox backlog is the due index's `DUE#OUTBOX` partition up to now (a leased message is keyed
by its lease's end, so live leases are left out, as on SQL); dead messages and pending truth
tasks are status-index partitions; flagged orders the sparse `ATTENTION` partition of the
`by_order` index (an order carries its keys while flagged); stuck orders the reconciler's
`RECON#<status>` partition below the cut-off; webhooks the time index's `INBOX` and `REJECTION`
partitions from `since` (the rejections read to group them by check: the log is trimmed to its
newest rows, so that read is bounded). Index reads are eventually consistent on AWS: a count may
lag a write by a moment. The readings see what was committed, not this unit's own buffered
writes (read them through `snapshot()`).

Orders flagged before the `ATTENTION` keys existed get them from `paywire migrate`'s backfill
(`dynamo.backfill`), which adds them to every flagged order lacking them (and to no order whose
flag was cleared), so they are counted once it has run.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from paywire.store.dynamo import items as di
from paywire.store.dynamo.base import DynamoUnit


class DynamoHealth(DynamoUnit):
    """The health read model's counts."""

    async def outbox_due(self, now: datetime) -> tuple[int, datetime | None]:
        """Pending messages due by `now` with no live lease, and their earliest due time."""
        self._check_open()
        due = await self._table.count(di.BY_DUE, "DUE#OUTBOX", below=di.below(now))
        if not due:
            return 0, None
        keys, _ = await self._table.index_keys(di.BY_DUE, "DUE#OUTBOX", below=di.below(now),
                                               ascending=True, limit=1)
        item = await self._table.get(keys[0]) if keys else None
        if item is None:  # delivered between the two reads
            return due, None
        return due, di.at(item.get("next_attempt_at") or item["created_at"])

    async def outbox_dead_count(self) -> int:
        """Messages given up on."""
        self._check_open()
        return await self._table.count(di.BY_STATUS, "OUTBOX#dead")

    async def truth_queue_depth(self) -> int:
        """Truth tasks still pending."""
        self._check_open()
        return await self._table.count(di.BY_STATUS, "TRUTH#pending")

    async def needs_attention_count(self) -> int:
        """Orders flagged and not yet resolved."""
        self._check_open()
        return await self._table.count(di.BY_ORDER, di.ATTENTION)

    async def orders_in_status_since(self, status: str, updated_before: datetime) -> int:
        """Orders in `status` last updated before `updated_before`."""
        self._check_open()
        return await self._table.count(di.BY_DUE, f"RECON#{status}",
                                       below=di.ts(updated_before))

    async def webhooks_received_since(self, since: datetime) -> int:
        """Inbox events stored at or after `since`."""
        self._check_open()
        return await self._table.count(di.BY_TIME, "INBOX", at_least=di.ts(since))

    async def webhook_rejections_since(self, since: datetime) -> dict[str, int]:
        """Rejections recorded at or after `since` (unexpired), by check."""
        self._check_open()
        entries = await self._table.walk_keys(di.BY_TIME, "REJECTION", ascending=True,
                                              at_least=di.ts(since))
        items = await self._table.get_many(key for key, _ in entries)
        now = di.ts(self._ctx.clock.now())
        return dict(Counter(item["check"] for item in items.values()
                            if item.get("kind") == "rejection" and item["expires_at"] > now))
