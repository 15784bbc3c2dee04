"""Webhook records <-> DynamoDB items for `DynamoStore`: the inbox, the rejection log and the
truth-fetch queue. Pure, no I/O; the conventions are `dynamo.items`'s.
"""

from __future__ import annotations

from datetime import datetime

from paywire.ports import InboxEvent, TruthTask, WebhookRejection
from paywire.store.dynamo.items import (
    TTL_ATTRIBUTE,
    Item,
    at,
    compact,
    due_key,
    epoch,
    inbox_key,
    opt_at,
    order_index,
    rejection_key,
    sort_key,
    truth_key,
    ts,
)


def inbox_item(event: InboxEvent) -> Item:
    """A stored event: its body byte for byte (Binary), indexed by receipt time."""
    pk, sk = inbox_key(event.provider, event.event_id)
    received = ts(event.received_at)
    return compact({"pk": pk, "sk": sk, "kind": "inbox", "provider": event.provider,
                    "event_id": event.event_id, "event_type": event.event_type,
                    "received_at": received, "body": bytes(event.body),
                    "transmission_id": event.transmission_id, "status": event.status,
                    "order_id": event.order_id, "note": event.note,
                    "tpk": "INBOX", "tsk": sort_key(received, event.event_id, event.provider),
                    **({} if event.order_id is None else
                       inbox_index(event.order_id, received, event.provider, event.event_id))})


def inbox_index(order_id: str, received: str, provider: str, event_id: str) -> Item:
    """The by-order index attributes of a stored event of an order (its timeline lists it);
    `received` is its `received_at` text."""
    return order_index(order_id, "I", received, f"{provider}:{event_id}")


def inbox_from(item: Item) -> InboxEvent:
    """A stored event from its item."""
    return InboxEvent(provider=item["provider"], event_id=item["event_id"],
                      event_type=item["event_type"], received_at=at(item["received_at"]),
                      body=bytes(item["body"]), transmission_id=item.get("transmission_id"),
                      status=item["status"], order_id=item.get("order_id"),
                      note=item.get("note"))


def rejection_item(rejection: WebhookRejection, expires_at: datetime) -> Item:
    """A rejected delivery, expiring (TTL) at `expires_at`."""
    pk, sk = rejection_key(rejection.provider, rejection.transmission_id)
    received = ts(rejection.received_at)
    return compact({
        "pk": pk, "sk": sk, "kind": "rejection", "provider": rejection.provider,
        "transmission_id": rejection.transmission_id, "received_at": received,
        "check": rejection.check, "reason": rejection.reason,
        "likely_cause": rejection.likely_cause, "event_id": rejection.event_id,
        "event_type": rejection.event_type, "cert_url": rejection.cert_url,
        "body_sha256": rejection.body_sha256, "expires_at": ts(expires_at),
        TTL_ATTRIBUTE: epoch(expires_at),
        "tpk": "REJECTION", "tsk": sort_key(received, rejection.transmission_id,
                                            rejection.provider)})


def rejection_from(item: Item) -> WebhookRejection:
    """A rejection from its item."""
    return WebhookRejection(provider=item["provider"], transmission_id=item["transmission_id"],
                            received_at=at(item["received_at"]), check=item["check"],
                            reason=item["reason"], likely_cause=item.get("likely_cause"),
                            event_id=item.get("event_id"), event_type=item.get("event_type"),
                            cert_url=item.get("cert_url"), body_sha256=item.get("body_sha256"))


def truth_indexes(item: Item) -> Item:
    """The truth task's index attributes: by due time, by status, and (pending) the due index."""
    status, ident, nxt = item["status"], item["id"], item["next_attempt_at"]
    indexed = {"tpk": "TRUTH", "tsk": sort_key(nxt, ident),
               "spk": f"TRUTH#{status}", "ssk": sort_key(nxt, ident)}
    if status == "pending":
        indexed.update(dpk="DUE#TRUTH", dsk=due_key(max(nxt, item.get("lease_until", "")),
                                                    ident))
    return indexed


def truth_item(task: TruthTask) -> Item:
    """A truth-fetch task's item."""
    pk, sk = truth_key(task.id)
    item = compact({
        "pk": pk, "sk": sk, "kind": "truth", "id": task.id, "provider": task.provider,
        "res_kind": task.kind, "resource_id": task.resource_id, "reason": task.reason,
        "created_at": ts(task.created_at), "next_attempt_at": ts(task.next_attempt_at),
        "status": task.status, "attempts": task.attempts, "order_id": task.order_id,
        "lease_owner": task.lease_owner,
        "lease_until": None if task.lease_until is None else ts(task.lease_until),
        "last_error": task.last_error})
    return {**item, **truth_indexes(item)}


def truth_from(item: Item) -> TruthTask:
    """A truth-fetch task from its item."""
    return TruthTask(id=item["id"], provider=item["provider"], kind=item["res_kind"],
                     resource_id=item["resource_id"], reason=item["reason"],
                     created_at=at(item["created_at"]),
                     next_attempt_at=at(item["next_attempt_at"]), status=item["status"],
                     attempts=item["attempts"], order_id=item.get("order_id"),
                     lease_owner=item.get("lease_owner"),
                     lease_until=opt_at(item.get("lease_until")),
                     last_error=item.get("last_error"))
