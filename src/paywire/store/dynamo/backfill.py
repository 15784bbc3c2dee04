"""The by_order keys items written before those keys existed lack, added by `paywire migrate`
(`DynamoStore.setup()`) once the table and its indexes exist.

Three kinds of item gained by_order attributes, written on each item's next write: a flagged
order's sparse `ATTENTION` keys (the needs-attention queue and gauge), a provider operation's
`P#...` and a stored event's `I#...` keys under its order (the order's timeline). An item
written before has none of them, so the queue, the gauge and the timeline would miss it until
it was next written — which for a settled order, a finished operation or a processed event is
never.

The backfill scans the table once: page by page (memory is one page), reading only the
attributes the keys are made from, the scan's filter keeping the items that should carry keys
and lack `opk` (flagged orders, operations, events of an order). Each one gets exactly the
attributes its writer would write — the same functions build them (`items.attention_index`,
`records.operation_index`, `webhook_items.inbox_index`) — by one conditional UpdateItem: `opk`
still absent and every attribute the keys were made from unchanged (an order's `version` and
its `needs_attention`, an operation's or event's order and creation time). So a concurrent
writer's newer item is never overwritten, and a flag cleared meanwhile is not indexed: such a
failed condition is counted as `skipped`, the writer that won wrote the keys its item needs.
The update leaves `version` alone, so a writer that read the order before it still commits.
A second run finds nothing to add.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo import records as dr
from paywire.store.dynamo import webhook_items as dw
from paywire.store.dynamo.items import Item
from paywire.store.dynamo.table import DynamoTable, key_of

log = logging.getLogger("paywire.store.dynamo")

# Every attribute a candidate's keys and conditions are made from.
_ATTRIBUTES = ("pk", "sk", "kind", "opk", "id", "version", "needs_attention", "created_at",
               "key", "order_id", "provider", "event_id", "received_at")
# How many conditional updates run at once (the client pools 32 connections).
_CONCURRENCY = 16
# The most items one Scan call examines.
PAGE = 1000


@dataclass(frozen=True, slots=True)
class Backfill:
    """What a backfill did: items the scan examined, keys added to flagged orders, provider
    operations and stored events, and candidates a concurrent write changed first."""

    scanned: int = 0
    orders: int = 0
    operations: int = 0
    events: int = 0
    skipped: int = 0

    @property
    def added(self) -> int:
        """Items given keys."""
        return self.orders + self.operations + self.events

    def __str__(self) -> str:
        return (f"{self.scanned} items scanned; by_order keys added to {self.orders} flagged "
                f"orders, {self.operations} provider operations, {self.events} events; "
                f"{self.skipped} changed concurrently (left to their writer)")


def _candidate(e: dx.Expr) -> str:
    """The scan's filter: lacks `opk`, and is a flagged order, an operation, or an event of an
    order."""
    kind = e.name("kind")
    return (f"attribute_not_exists({e.name('opk')}) AND ("
            f"({kind} = {e.value('order')} AND attribute_exists({e.name('needs_attention')}))"
            f" OR {kind} = {e.value('operation')}"
            f" OR ({kind} = {e.value('inbox')} AND attribute_exists({e.name('order_id')})))")


def keys_for(item: Item) -> tuple[Item, dx.Cond] | None:
    """The by_order attributes the item's writer would write and the condition to add them
    under, or None if it should carry none (or already does)."""
    if "opk" in item:
        return None
    unchanged = [dx.missing("opk"), dx.compare("kind", "=", item["kind"])]
    fields: tuple[str, ...]
    match item["kind"]:
        case "order" if item.get("needs_attention") is not None:
            keys = di.attention_index(item["created_at"], item["id"])
            fields = ("id", "version", "needs_attention", "created_at")
        case "operation":
            keys = dr.operation_index(item["order_id"], item["created_at"], item["key"])
            fields = ("key", "order_id", "created_at")
        case "inbox" if item.get("order_id") is not None:
            keys = dw.inbox_index(item["order_id"], item["received_at"], item["provider"],
                                  item["event_id"])
            fields = ("provider", "event_id", "order_id", "received_at")
        case _:
            return None
    unchanged += [dx.compare(f, "=", item[f]) for f in fields]
    return keys, dx.all_of(*unchanged)


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def backfill_order_keys(table: DynamoTable, *, page: int | None = None) -> Backfill:
    """Add the by_order keys to every item written before its writer wrote them (see the
    module), `page` (default `PAGE`) items examined per Scan call; what it did, also logged."""
    counts = {"scanned": 0, "order": 0, "operation": 0, "inbox": 0, "skipped": 0}

    async def add(item: Item) -> None:
        found = keys_for(item)
        if found is None:
            return
        keys, cond = found
        written = await table.update_if(key_of(item), cond, set_=keys)
        counts[item["kind"] if written is not None else "skipped"] += 1

    async for items, scanned in table.scan(_candidate, _ATTRIBUTES, page=page or PAGE):
        counts["scanned"] += scanned
        for chunk in _chunks(items, _CONCURRENCY):
            await asyncio.gather(*(add(item) for item in chunk))
    done = Backfill(scanned=counts["scanned"], orders=counts["order"],
                    operations=counts["operation"], events=counts["inbox"],
                    skipped=counts["skipped"])
    log.info("DynamoDB table %s backfill: %s", table.name, done)
    return done
