"""Provider operations, refunds and Idempotency-Key records <-> DynamoDB items (the records of
calls, as `items` holds those of orders and their outbox). Pure, no I/O; the scalars, keys and
JSON documents are `items`'."""

from __future__ import annotations

from paywire.domain.money import Money
from paywire.ports import IdempotencyRecord, ProviderOperation, Refund
from paywire.store.dynamo.items import (
    TTL_ATTRIBUTE,
    Item,
    at,
    compact,
    doc,
    epoch,
    idempotency_key,
    operation_key,
    opt_at,
    order_index,
    refund_key,
    sort_key,
    ts,
    undoc,
)


def operation_item(op: ProviderOperation) -> Item:
    """A provider operation's item."""
    pk, sk = operation_key(op.key)
    return compact({"pk": pk, "sk": sk, "kind": "operation", "key": op.key,
                    "order_id": op.order_id, "op_kind": op.kind, "status": op.status,
                    "created_at": ts(op.created_at), "updated_at": ts(op.updated_at),
                    "lease_until": None if op.lease_until is None else ts(op.lease_until),
                    "result": None if op.result is None else doc(op.result),
                    "error": None if op.error is None else doc(op.error),
                    "trace_id": op.trace_id,
                    **operation_index(op.order_id, ts(op.created_at), op.key)})


def operation_index(order_id: str, created: str, key: str) -> Item:
    """The by-order index attributes of a provider operation (its order's timeline lists it);
    `created` is its `created_at` text."""
    return order_index(order_id, "P", created, key)


def operation_from(item: Item) -> ProviderOperation:
    """A provider operation from its item."""
    return ProviderOperation(key=item["key"], order_id=item["order_id"], kind=item["op_kind"],
                             status=item["status"], created_at=at(item["created_at"]),
                             updated_at=at(item["updated_at"]),
                             lease_until=opt_at(item.get("lease_until")),
                             result=undoc(item.get("result")), error=undoc(item.get("error")),
                             trace_id=item.get("trace_id"))


def refund_item(refund: Refund) -> Item:
    """A refund's item, indexed by status and last update (pending refunds)."""
    pk, sk = refund_key(refund.id)
    updated = ts(refund.updated_at)
    return compact({"pk": pk, "sk": sk, "kind": "refund", "id": refund.id,
                    "order_id": refund.order_id, "currency": refund.amount.currency,
                    "amount_minor": refund.amount.minor, "status": refund.status,
                    "operation_key": refund.operation_key,
                    "provider_refund_id": refund.provider_refund_id, "reason": refund.reason,
                    "created_at": ts(refund.created_at), "updated_at": updated,
                    "spk": f"REFUND#{refund.status}", "ssk": sort_key(updated, refund.id),
                    **order_index(refund.order_id, "R", ts(refund.created_at), refund.id)})


def refund_from(item: Item) -> Refund:
    """A refund from its item."""
    return Refund(id=item["id"], order_id=item["order_id"],
                  amount=Money(item["amount_minor"], item["currency"]), status=item["status"],
                  operation_key=item["operation_key"], created_at=at(item["created_at"]),
                  updated_at=at(item["updated_at"]),
                  provider_refund_id=item.get("provider_refund_id"), reason=item.get("reason"))


def idempotency_item(record: IdempotencyRecord) -> Item:
    """An Idempotency-Key record, with the TTL attribute DynamoDB deletes it by."""
    pk, sk = idempotency_key(record.scope, record.key)
    return compact({
        "pk": pk, "sk": sk, "kind": "idempotency", "scope": record.scope, "key": record.key,
        "request_hash": record.request_hash, "status": record.status,
        "created_at": ts(record.created_at), "expires_at": ts(record.expires_at),
        TTL_ATTRIBUTE: epoch(record.expires_at),
        "locked_until": None if record.locked_until is None else ts(record.locked_until),
        "resource_id": record.resource_id, "response_status": record.response_status,
        "response_body": None if record.response_body is None else doc(record.response_body)})


def idempotency_from(item: Item) -> IdempotencyRecord:
    """An Idempotency-Key record from its item."""
    return IdempotencyRecord(scope=item["scope"], key=item["key"],
                             request_hash=item["request_hash"], status=item["status"],
                             created_at=at(item["created_at"]),
                             expires_at=at(item["expires_at"]),
                             locked_until=opt_at(item.get("locked_until")),
                             resource_id=item.get("resource_id"),
                             response_status=item.get("response_status"),
                             response_body=undoc(item.get("response_body")))
