"""An order's history on DynamoDB: items in the order's partition, sorted by time and a sequence
number, so insertion order holds among equal times."""

from __future__ import annotations

from paywire.ports import (
    HistoryEntry,
)
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo.base import DynamoUnit
from paywire.store.dynamo.items import Item


class DynamoHistory(DynamoUnit):
    """Append to and read an order's history."""

    async def append_history(self, entry: HistoryEntry) -> None:
        """Append to the order's history."""
        item = di.history_item(entry, self._ctx.next_seq())
        self._create(item, f"history of order {entry.order_id}", dx.absent)

    async def history(self, order_id: str) -> list[HistoryEntry]:
        """The order's history, oldest first (insertion order among equal times)."""
        items = await self._children(order_id, "H#", "history")
        return [di.history_from(i) for i in sorted(items, key=lambda i: i["sk"])]

    async def _children(self, order_id: str, prefix: str, kind: str) -> list[Item]:
        """Items under the order's partition with this sort-key prefix, as this unit sees them."""
        self._check_open()
        pk = di.order_key(order_id)[0]
        stored = {(i["pk"], i["sk"]): i for i in await self._table.partition(pk, prefix)}
        for key in [k for k in stored if k in self._dirty]:
            del stored[key]  # this unit's state of them follows
        mine = [i for i in self._written([kind]) if i["pk"] == pk]
        return [*stored.values(), *mine]
