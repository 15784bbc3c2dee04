"""Records <-> DynamoDB items for `DynamoStore`: keys, index attributes, conditions. Pure, no I/O.

Items are plain dicts here (str, int, bool, bytes, list, dict); `dynamo.table` turns them into
DynamoDB's typed JSON. Datetimes are fixed-width ISO-8601 UTC strings with microseconds
("2025-03-04T05:06:07.891011+00:00"), so string order is time order in keys and conditions.
Money is integer minor units beside the order's currency; JSON documents (payloads, metadata,
results) are JSON text, which keeps floats and big integers exact; bodies are Binary.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import HistoryEntry, OutboxMessage, ReconcileState
from paywire.store.columns import minor_in, money_of

Item = dict[str, Any]
Key = tuple[str, str]

TTL_ATTRIBUTE = "expires_ttl"
# The kind of an item that stands for a removed one (see `tombstone`).
TOMBSTONE = "tombstone"
# The three overloaded, keys-only global secondary indexes: (name, partition attr, sort attr).
BY_TIME = ("by_time", "tpk", "tsk")
BY_STATUS = ("by_status", "spk", "ssk")
BY_DUE = ("by_due", "dpk", "dsk")
BY_ORDER = ("by_order", "opk", "osk")
INDEXES = (BY_TIME, BY_STATUS, BY_DUE, BY_ORDER)
_MAX_PART = 200
# The `by_order` partition of the orders flagged needs-attention (an order's own item is in no
# other `by_order` partition: those hold an order's children).
ATTENTION = "ATTENTION"


# --- scalars ---------------------------------------------------------------------------------


def ts(value: datetime) -> str:
    """An aware datetime as fixed-width ISO-8601 UTC text; a naive one is a ValueError."""
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: paywire stores aware UTC datetimes")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def at(text: str) -> datetime:
    """A datetime read back from `ts` text, in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)


def opt_at(text: str | None) -> datetime | None:
    """`at`, or None for a missing attribute."""
    return None if text is None else at(text)


def epoch(value: datetime) -> int:
    """Epoch seconds (rounded up) for the TTL attribute: DynamoDB never deletes early."""
    return math.ceil(value.timestamp())


def part(text: str) -> str:
    """`text` as one component of a key: itself when short and free of '#', else a digest.

    Keys join components with '#', and DynamoDB caps key sizes; ids from outside (an
    Idempotency-Key header, a transmission id) could carry either, so those become
    "~<sha256>" — a literal leading "~" is hashed too, so no two texts share a component.
    """
    if text and len(text) <= _MAX_PART and "#" not in text and not text.startswith("~"):
        return text
    return "~" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def doc(value: Any) -> str:
    """A JSON document as text (TypeError for what JSON cannot hold, as the SQL store)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def undoc(text: str | None) -> Any:
    """A JSON document back from its text (None stays None)."""
    return None if text is None else json.loads(text)


def compact(item: Item) -> Item:
    """The item without None values: DynamoDB has no NULL columns, a missing attribute is
    what `attribute_not_exists` tests."""
    return {k: v for k, v in item.items() if v is not None}


def sort_key(when: str, *parts: str) -> str:
    """An index sort key: the time, then the id components, joined with '#'."""
    return "#".join((when, *(part(p) for p in parts)))


def below(when: datetime, ident: str | None = None) -> str:
    """The exclusive upper bound of index sort keys before `(when, ident)`, or (no ident)
    before-or-at `when`: "<when>$" sorts after every "<when>#..." ('$' follows '#')."""
    return sort_key(ts(when), ident) if ident is not None else ts(when) + "$"


# --- keys --------------------------------------------------------------------------------------


def order_key(order_id: str) -> Key:
    """The order item's key (its history, refs and reconcile state share the partition)."""
    return f"ORDER#{part(order_id)}", "ORDER"


def reconcile_key(order_id: str) -> Key:
    """The order's reconciliation state."""
    return f"ORDER#{part(order_id)}", "RECON"


def outbox_key(message_id: str) -> Key:
    """An outbox message."""
    return f"OUTBOX#{part(message_id)}", "OUTBOX"


def refund_key(refund_id: str) -> Key:
    """A refund."""
    return f"REFUND#{part(refund_id)}", "REFUND"


def operation_key(key: str) -> Key:
    """A provider operation."""
    return f"OP#{part(key)}", "OP"


def idempotency_key(scope: str, key: str) -> Key:
    """A client Idempotency-Key in its scope."""
    return f"IDEM#{part(scope)}#{part(key)}", "IDEM"


def inbox_key(provider: str, event_id: str) -> Key:
    """A stored provider event."""
    return f"INBOX#{part(provider)}#{part(event_id)}", "INBOX"


def rejection_key(provider: str, transmission_id: str) -> Key:
    """A rejected delivery."""
    return f"REJ#{part(provider)}#{part(transmission_id)}", "REJ"


def truth_key(task_id: str) -> Key:
    """A truth-fetch task."""
    return f"TRUTH#{part(task_id)}", "TRUTH"


def lookup_key(namespace: str, *parts: str) -> Key:
    """A lookup item: a unique (or first-come) name pointing at another item."""
    return "#".join((namespace, *(part(p) for p in parts))), "LOOKUP"


def lookup_item(key: Key, target: str, **extra: str) -> Item:
    """A lookup item pointing at `target`."""
    return {"pk": key[0], "sk": key[1], "kind": "lookup", "target": target, **extra}


# --- removal -----------------------------------------------------------------------------------


def tombstone(key: Key, removed: datetime) -> Item:
    """What a removal writes in place of the item at `key`: its keys, the removal time and the
    TTL attribute set to it, nothing else.

    The store never deletes (so no role that runs it needs dynamodb:DeleteItem): it puts this
    item instead, which carries no index attribute, so the removed item leaves every index at
    once, and DynamoDB's TTL deletes it later at no cost and with no permission. Every read
    and condition treats it as absent (`is_live`, `dynamo.expr.absent` / `exists`).
    """
    return {"pk": key[0], "sk": key[1], "kind": TOMBSTONE, "removed_at": ts(removed),
            TTL_ATTRIBUTE: epoch(removed)}


def is_live(item: Item) -> bool:
    """Whether a stored item is a record, not a removal's tombstone."""
    return item.get("kind") != TOMBSTONE


# --- orders --------------------------------------------------------------------------------------


def order_item(order: Order) -> Item:
    """The order's item: lines inside it, indexed by time, by status and for reconciliation."""
    currency = order.amount.currency
    created, updated = ts(order.created_at), ts(order.updated_at)
    pk, sk = order_key(order.id)
    return compact({
        "pk": pk, "sk": sk, "kind": "order", "id": order.id, "version": order.version,
        "status": str(order.status), "intent": str(order.intent), "currency": currency,
        "amount_minor": order.amount.minor,
        "captured_minor": minor_in(order.captured, currency, "captured"),
        "refunded_minor": minor_in(order.refunded, currency, "refunded"),
        "refund_reserved_minor": minor_in(order.refund_reserved, currency, "refund_reserved"),
        "created_at": created, "updated_at": updated, "provider": order.provider,
        "provider_order_id": order.provider_order_id, "approve_url": order.approve_url,
        "capture_id": order.capture_id, "authorization_id": order.authorization_id,
        "disputed": order.disputed, "needs_attention": order.needs_attention,
        "capture_attempt": order.capture_attempt, "metadata": doc(dict(order.metadata)),
        "trace_id": order.trace_id,
        "lines": [{"sku": ln.sku, "name": ln.name, "quantity": ln.quantity,
                   "currency": ln.unit_price.currency, "unit_price_minor": ln.unit_price.minor}
                  for ln in order.lines],
        "tpk": "ORDER", "tsk": sort_key(created, order.id),
        "spk": f"ORDER#{order.status}", "ssk": sort_key(created, order.id),
        "dpk": f"RECON#{order.status}", "dsk": sort_key(updated, order.id),
        **(attention_index(created, order.id) if order.needs_attention is not None else {}),
    })


def attention_index(created: str, order_id: str) -> Item:
    """The by-order index attributes of a flagged order (sparse: flagged orders only), newest
    first: the dashboard's needs-attention queue walks the `ATTENTION` partition, the health
    read model counts it. `created` is the order's `created_at` text."""
    return {"opk": ATTENTION, "osk": sort_key(created, order_id)}


def order_from(item: Item) -> Order:
    """An order from its item."""
    currency = item["currency"]
    return Order(
        id=item["id"], status=OrderStatus(item["status"]), intent=Intent(item["intent"]),
        lines=tuple(OrderLine(sku=ln["sku"], name=ln["name"], quantity=ln["quantity"],
                              unit_price=Money(ln["unit_price_minor"], ln["currency"]))
                    for ln in item["lines"]),
        amount=Money(item["amount_minor"], currency),
        created_at=at(item["created_at"]), updated_at=at(item["updated_at"]),
        version=item["version"], provider=item["provider"],
        provider_order_id=item.get("provider_order_id"), approve_url=item.get("approve_url"),
        capture_id=item.get("capture_id"), authorization_id=item.get("authorization_id"),
        captured=money_of(item.get("captured_minor"), currency),
        refunded=money_of(item.get("refunded_minor"), currency),
        refund_reserved=money_of(item.get("refund_reserved_minor"), currency),
        disputed=bool(item["disputed"]), needs_attention=item.get("needs_attention"),
        capture_attempt=item["capture_attempt"], metadata=dict(undoc(item["metadata"]) or {}),
        trace_id=item.get("trace_id"),
    )


def payment_ids(order: Order | None) -> set[str]:
    """The capture and authorization ids an order is found by."""
    if order is None:
        return set()
    return {i for i in (order.capture_id, order.authorization_id) if i}


def history_item(entry: HistoryEntry, seq: str) -> Item:
    """A history line under its order's partition; `seq` orders equal times by insertion."""
    return compact({"pk": order_key(entry.order_id)[0], "sk": f"H#{ts(entry.at)}#{seq}",
                    "kind": "history", "order_id": entry.order_id, "at": ts(entry.at),
                    "source": entry.source, "verdict": entry.verdict,
                    "from_status": str(entry.from_status), "to_status": str(entry.to_status),
                    "detail": doc(dict(entry.detail)), "trace_id": entry.trace_id})


def history_from(item: Item) -> HistoryEntry:
    """A history entry from its item."""
    return HistoryEntry(order_id=item["order_id"], at=at(item["at"]), source=item["source"],
                        verdict=item["verdict"], from_status=OrderStatus(item["from_status"]),
                        to_status=OrderStatus(item["to_status"]),
                        detail=dict(undoc(item["detail"])), trace_id=item.get("trace_id"))


def reconcile_item(state: ReconcileState) -> Item:
    """An order's reconciliation state, beside the order."""
    pk, sk = reconcile_key(state.order_id)
    return {"pk": pk, "sk": sk, "kind": "reconcile", "order_id": state.order_id,
            "attempts": state.attempts, "next_check_at": ts(state.next_check_at),
            "first_checked_at": ts(state.first_checked_at),
            "last_checked_at": ts(state.last_checked_at)}


def reconcile_from(item: Item) -> ReconcileState:
    """A reconciliation state from its item."""
    return ReconcileState(order_id=item["order_id"], attempts=item["attempts"],
                          next_check_at=at(item["next_check_at"]),
                          first_checked_at=at(item["first_checked_at"]),
                          last_checked_at=at(item["last_checked_at"]))


def order_index(order_id: str, tag: str, created: str, ident: str) -> Item:
    """The by-order index attributes of an order's outbox message ("O"), refund ("R"),
    provider operation ("P"), stored event ("I") or audit entry ("A")."""
    return {"opk": order_key(order_id)[0], "osk": f"{tag}#{sort_key(created, ident)}"}


# --- outbox ------------------------------------------------------------------------------------


def due_key(due: str, ident: str) -> str:
    """The due index's sort key: when the item may next be claimed (lapse of a lease, or its
    retry time), then its id."""
    return sort_key(due, ident)


def outbox_indexes(item: Item) -> Item:
    """The outbox message's index attributes for its status: due-index ones only while pending."""
    status, ident = item["status"], item["id"]
    indexed = {"spk": f"OUTBOX#{status}", "ssk": sort_key(item["created_at"], ident),
               "tpk": "OUTBOX", "tsk": sort_key(item["created_at"], ident)}
    if status == "pending":
        due = max(item.get("next_attempt_at") or item["created_at"], item.get("lease_until", ""))
        indexed.update(dpk="DUE#OUTBOX", dsk=due_key(due, ident))
    return indexed


def outbox_item(announcement: Announcement, message_id: str, now: datetime,
                trace_id: str | None = None) -> Item:
    """A new outbox message: pending, due now, unleased."""
    pk, sk = outbox_key(message_id)
    item: Item = {"pk": pk, "sk": sk, "kind": "outbox", "id": message_id,
                  "key": announcement.key, "type": announcement.type,
                  "order_id": announcement.order_id, "payload": doc(dict(announcement.payload)),
                  "created_at": ts(now), "status": "pending", "attempts": 0,
                  "next_attempt_at": ts(now),
                  **order_index(announcement.order_id, "O", ts(now), message_id)}
    if trace_id is not None:
        item["trace_id"] = trace_id
    return {**item, **outbox_indexes(item)}


def outbox_from(item: Item) -> OutboxMessage:
    """An outbox message from its item."""
    return OutboxMessage(id=item["id"], key=item["key"], type=item["type"],
                         order_id=item["order_id"], payload=dict(undoc(item["payload"])),
                         created_at=at(item["created_at"]), status=item["status"],
                         attempts=item["attempts"],
                         next_attempt_at=opt_at(item.get("next_attempt_at")),
                         lease_owner=item.get("lease_owner"),
                         lease_until=opt_at(item.get("lease_until")),
                         last_error=item.get("last_error"),
                         delivered_at=opt_at(item.get("delivered_at")),
                         trace_id=item.get("trace_id"))
