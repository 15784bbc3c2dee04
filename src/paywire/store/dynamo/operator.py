"""The dashboard's reads and logs on DynamoDB: orders searched by a bounded index walk, an
order's provider calls and events (by_order), the audit log and the delivery attempts.

A search walks one index partition newest first — by_order's sparse `ATTENTION` partition (the
flagged orders only), by_status's `ORDER#<status>`, or by_time's `ORDER` — below the cursor and
the creation-time range's end, and stops at its start. What that partition cannot answer (the
provider, the amount, the currency, a second filter) is checked on the items read, and a call
examines at most `SCAN` index entries: a page cut short says where the walk stopped, so the
next call resumes there. Searches read what is committed (they run in snapshots). Flagged
orders, operations and events written before their by_order keys existed are given them by
`paywire migrate`'s backfill (`dynamo.backfill`).

Items:

    pk                    sk              kind      index
    AUDIT#<id>            AUDIT           audit     by_time AUDIT: at#id; by_order A#at#id
    ORDER#<order id>      D#<at>#<seq>    attempt   (the order's partition, as its history)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from paywire.ports import (
    AuditEntry,
    DeliveryAttempt,
    InboxEvent,
    OrderFilter,
    OrderPage,
    ProviderOperation,
)
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo import records as dr
from paywire.store.dynamo import webhook_items as dw
from paywire.store.dynamo.history import DynamoHistory
from paywire.store.dynamo.items import Item, Key
from paywire.store.dynamo.orders import DynamoOrders

# The most index entries one search call examines (each costs an item read).
SCAN = 300
PAGE = 100


def _keeps(where: OrderFilter, item: Item) -> bool:
    """Whether the order item passes every filter but the creation-time range."""
    if item.get("kind") != "order":
        return False
    if where.status is not None and item["status"] != str(where.status):
        return False
    if where.provider is not None and item["provider"] != where.provider:
        return False
    if where.needs_attention and item.get("needs_attention") is None:
        return False
    if where.currency is not None and item["currency"] != where.currency:
        return False
    if where.min_minor is not None and item["amount_minor"] < where.min_minor:
        return False
    return where.max_minor is None or item["amount_minor"] <= where.max_minor


def audit_item(entry: AuditEntry) -> Item:
    """An audit entry's item."""
    when = di.ts(entry.at)
    item: Item = {"pk": f"AUDIT#{di.part(entry.id)}", "sk": "AUDIT", "kind": "audit",
                  "id": entry.id, "at": when, "actor": entry.actor, "action": entry.action,
                  "order_id": entry.order_id, "outcome": entry.outcome,
                  "detail": json.dumps(entry.detail, default=str, sort_keys=True),
                  "trace_id": entry.trace_id, "tpk": "AUDIT", "tsk": di.sort_key(when, entry.id)}
    if entry.order_id is not None:
        item.update(di.order_index(entry.order_id, "A", when, entry.id))
    return di.compact(item)


def audit_from(item: Item) -> AuditEntry:
    """An audit entry from its item."""
    return AuditEntry(id=item["id"], at=di.at(item["at"]), actor=item["actor"],
                      action=item["action"], order_id=item.get("order_id"),
                      outcome=item["outcome"], detail=dict(json.loads(item["detail"])),
                      trace_id=item.get("trace_id"))


class DynamoOperatorReads(DynamoOrders, DynamoHistory):
    """Searched orders, an order's provider calls and events, the audit and delivery logs."""

    async def search_orders(self, where: OrderFilter, *, limit: int = 50,
                            before: tuple[datetime, str] | None = None) -> OrderPage:
        """Orders `where` keeps, newest first; at most `SCAN` index entries read per call."""
        self._require_limit(limit)
        self._check_open()
        if where.needs_attention:
            index, partition = di.BY_ORDER, di.ATTENTION
        elif where.status is not None:
            index, partition = di.BY_STATUS, f"ORDER#{where.status}"
        else:
            index, partition = di.BY_TIME, "ORDER"
        bounds = [di.below(*before)] if before is not None else []
        if where.created_to is not None:
            bounds.append(di.ts(where.created_to))  # every key at that time sorts after it
        bound = min(bounds) if bounds else None
        start_at = None if where.created_from is None else di.ts(where.created_from)
        found: list[Item] = []
        last: Item | None = None
        examined = 0
        start: dict[str, object] | None = None
        ended = False
        while not ended and len(found) < limit and examined < SCAN:
            keys, start = await self._table.index_keys(
                index, partition, below=bound, ascending=False,
                limit=min(PAGE, SCAN - examined), start=start)
            items: dict[Key, Item | None] = await self._read_many(keys)
            for key in keys:
                examined += 1
                item = items[key]
                if item is None or item.get("kind") != "order":
                    continue  # removed, or the index lags a change
                if start_at is not None and item["created_at"] < start_at:
                    ended = True  # newest first: everything after is older still
                    break
                last = item
                if _keeps(where, item):
                    found.append(item)
                    if len(found) == limit:
                        break
            ended = ended or start is None
        found.sort(key=lambda i: (i["created_at"], i["id"]), reverse=True)
        if len(found) == limit:
            last = found[-1]
        elif ended:
            last = None
        return OrderPage([di.order_from(i) for i in found],
                         None if last is None else (di.at(last["created_at"]), last["id"]))

    async def operations_for_order(self, order_id: str) -> list[ProviderOperation]:
        """The provider calls made for the order, oldest first."""
        items = await self._of_order(order_id, "P#", "operation")
        return [dr.operation_from(i)
                for i in sorted(items, key=lambda i: (i["created_at"], i["key"]))]

    async def inbox_for_order(self, order_id: str) -> list[InboxEvent]:
        """The provider events stored for the order, oldest first."""
        items = await self._of_order(order_id, "I#", "inbox")
        return [dw.inbox_from(i)
                for i in sorted(items, key=lambda i: (i["received_at"], i["event_id"]))]

    # --- the audit log ---------------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> None:
        """Append an entry (ConflictError at commit if its id exists)."""
        self._create(audit_item(entry), f"audit entry {entry.id}", dx.absent)

    async def audit_for_order(self, order_id: str) -> list[AuditEntry]:
        """The order's audit entries, oldest first."""
        items = await self._of_order(order_id, "A#", "audit")
        return [audit_from(i) for i in sorted(items, key=lambda i: (i["at"], i["id"]))]

    async def list_audit(self, *, limit: int = 50,
                         before: tuple[datetime, str] | None = None) -> list[AuditEntry]:
        """Entries newest first; `before` = (at, id) (keyset)."""
        self._require_limit(limit)
        after = None if before is None else (di.ts(before[0]), before[1])

        def accept(item: Item) -> bool:
            return item["kind"] == "audit" and (after is None or (item["at"], item["id"]) < after)

        found = await self._collect(di.BY_TIME, "AUDIT", ascending=False, limit=limit,
                                    bound=None if before is None else di.below(*before),
                                    kinds=("audit",), accept=accept)
        found.sort(key=lambda i: (i["at"], i["id"]), reverse=True)
        return [audit_from(i) for i in found[:limit]]

    # --- delivery attempts -----------------------------------------------------------------

    async def record_delivery_attempts(self, attempts: Sequence[DeliveryAttempt]) -> None:
        """Append the attempts, in the order's partition beside its history."""
        for a in attempts:
            item = di.compact({
                "pk": di.order_key(a.order_id)[0], "sk": f"D#{di.ts(a.at)}#{self._ctx.next_seq()}",
                "kind": "attempt", "message_id": a.message_id, "order_id": a.order_id,
                "at": di.ts(a.at), "attempt": a.attempt, "outcome": a.outcome, "error": a.error,
                "message_type": a.message_type, "trace_id": a.trace_id})
            self._create(item, f"delivery attempt of {a.message_id}", dx.absent)

    async def delivery_attempts(self, order_id: str) -> list[DeliveryAttempt]:
        """The attempts at the order's messages, oldest first."""
        items = await self._children(order_id, "D#", "attempt")
        return [DeliveryAttempt(message_id=i["message_id"], order_id=i["order_id"],
                                at=di.at(i["at"]), attempt=i["attempt"], outcome=i["outcome"],
                                error=i.get("error"), message_type=i.get("message_type"),
                                trace_id=i.get("trace_id"))
                for i in sorted(items, key=lambda i: i["sk"])]
