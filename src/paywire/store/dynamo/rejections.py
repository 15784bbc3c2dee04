"""The rejection log on DynamoDB.

Rejections expire (TTL) after the store's `rejection_ttl`; until DynamoDB deletes them, an
expired one reads as absent. The log is trimmed to `max_rows` by a walk of its time index:
this unit reads the trimmed log at once, and the rows are tombstoned after the commit (a put
of `items.tombstone`, which leaves the index and which TTL deletes: the store never
deletes), each on its own, so trimming never makes a rejection's unit fail. Two rejections
recorded concurrently each count without the other's uncommitted row, so the log may hold one
row per concurrent recorder beyond `max_rows` (and, since index reads lag on AWS, a row just
committed elsewhere), until the next rejection trims it.
"""

from __future__ import annotations

from datetime import datetime

from paywire.ports import (
    WebhookRejection,
)
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo import webhook_items as dw
from paywire.store.dynamo.base import DynamoUnit
from paywire.store.dynamo.items import Item


class DynamoRejections(DynamoUnit):
    """Recording (bounded) and listing rejections."""

    async def record_rejection(self, rejection: WebhookRejection, max_rows: int) -> bool:
        """Record unless (provider, transmission_id) exists unexpired, then trim the log to
        the newest `max_rows` (latest `received_at`, ties by transmission id). True if written."""
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        key = di.rejection_key(rejection.provider, rejection.transmission_id)
        received = di.ts(rejection.received_at)
        stored = await self._read(key)
        if stored is not None and stored["expires_at"] > received:
            return False
        item = dw.rejection_item(rejection, rejection.received_at + self._ctx.rejection_ttl)
        self._create(item, f"rejection of transmission {rejection.transmission_id}",
                     dx.absent_or_expired(rejection.received_at), base=stored)
        await self._trim_rejections(max_rows)
        return True

    async def _trim_rejections(self, max_rows: int) -> None:
        """Hide (and after commit tombstone) every rejection beyond the newest `max_rows`."""
        stored = await self._table.walk_keys(di.BY_TIME, "REJECTION", ascending=False)
        order = {key: tsk for key, tsk in stored
                 if key not in self._pruned and key not in self._dirty}
        order.update({(i["pk"], i["sk"]): i["tsk"] for i in self._written(["rejection"])})
        newest_first = sorted(order, key=lambda k: order[k], reverse=True)
        for key in newest_first[max_rows:]:
            entry = self._dirty.pop(key, None)
            if entry is None:
                self._pruned[key] = order[key]
            elif entry.base is not None:  # written over a stored (expired) one: prune that
                self._pruned[key] = entry.base["tsk"]

    async def list_rejections(self, *, limit: int = 50,
                              before: tuple[datetime, str] | None = None) -> list[WebhookRejection]:
        """Unexpired rejections newest first; `before` = (received_at, transmission_id)."""
        self._require_limit(limit)
        now = di.ts(self._ctx.clock.now())
        after = None if before is None else (di.ts(before[0]), before[1])

        def accept(item: Item) -> bool:
            return item["kind"] == "rejection" and item["expires_at"] > now and (
                after is None or (item["received_at"], item["transmission_id"]) < after)

        found = await self._collect(di.BY_TIME, "REJECTION", ascending=False, limit=limit,
                                    bound=None if before is None else di.below(*before),
                                    kinds=("rejection",), accept=accept)
        found.sort(key=lambda i: (i["received_at"], i["transmission_id"], i["provider"]),
                   reverse=True)
        return [dw.rejection_from(i) for i in found[:limit]]
