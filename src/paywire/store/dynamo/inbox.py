"""The webhook inbox on DynamoDB.

The inbox is a put-if-absent on (provider, event id) in the unit's one transaction, beside the
transition it causes: a concurrent duplicate fails that condition at commit, the whole unit is
a ConflictError, and the service's retry reads the stored event and answers "duplicate".
A transmission id points at the first event stored from it (a lookup item).
"""

from __future__ import annotations

from datetime import datetime

from paywire.ports import (
    InboxEvent,
)
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo import webhook_items as dw
from paywire.store.dynamo.base import DynamoUnit
from paywire.store.dynamo.items import Item


class DynamoInbox(DynamoUnit):
    """Storing, reading and listing inbox events."""

    async def put_inbox_event(self, event: InboxEvent) -> bool:
        """Store the event unless (provider, event_id) exists; True if written (a concurrent
        duplicate that commits first makes this unit's commit a ConflictError)."""
        item = dw.inbox_item(event)
        if await self._read(di.inbox_key(event.provider, event.event_id)) is not None:
            return False
        self._create(item, f"inbox event {event.provider}/{event.event_id}", dx.absent)
        return True

    async def get_inbox_event(self, provider: str, event_id: str) -> InboxEvent | None:
        """The stored event, or None."""
        item = await self._read(di.inbox_key(provider, event_id))
        return dw.inbox_from(item) if item is not None else None

    async def list_inbox(self, *, limit: int = 50,
                         before: tuple[datetime, str] | None = None) -> list[InboxEvent]:
        """Stored events newest first (ties by event id); `before` = (received_at, event_id)."""
        self._require_limit(limit)
        after = None if before is None else (di.ts(before[0]), before[1])

        def accept(item: Item) -> bool:
            return item["kind"] == "inbox" and (
                after is None or (item["received_at"], item["event_id"]) < after)

        found = await self._collect(di.BY_TIME, "INBOX", ascending=False, limit=limit,
                                    bound=None if before is None else di.below(*before),
                                    kinds=("inbox",), accept=accept)
        found.sort(key=lambda i: (i["received_at"], i["event_id"], i["provider"]), reverse=True)
        return [dw.inbox_from(i) for i in found[:limit]]
