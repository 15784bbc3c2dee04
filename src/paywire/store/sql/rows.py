"""Records <-> table rows for the SQL store: pure mapping, no I/O.

An order's captured, refunded and reserved amounts are stored as minor units in the order's own
currency (one `currency` column), so a different currency there is refused on write rather than
silently re-labelled on read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import (
    HistoryEntry,
    IdempotencyRecord,
    InboxEvent,
    OutboxMessage,
    ProviderOperation,
    ReconcileState,
    Refund,
    TruthTask,
    WebhookRejection,
)
from paywire.store.columns import minor_in, money_of
from paywire.store.sql.base import Row


def order_values(order: Order) -> dict[str, Any]:
    """The `orders` row of an order (its lines go to `order_lines`)."""
    currency = order.amount.currency
    return {
        "id": order.id, "version": order.version, "status": str(order.status),
        "intent": str(order.intent), "currency": currency, "amount_minor": order.amount.minor,
        "captured_minor": minor_in(order.captured, currency, "captured"),
        "refunded_minor": minor_in(order.refunded, currency, "refunded"),
        "refund_reserved_minor": minor_in(order.refund_reserved, currency, "refund_reserved"),
        "created_at": order.created_at, "updated_at": order.updated_at,
        "provider": order.provider, "provider_order_id": order.provider_order_id,
        "approve_url": order.approve_url, "capture_id": order.capture_id,
        "authorization_id": order.authorization_id, "disputed": order.disputed,
        "needs_attention": order.needs_attention, "capture_attempt": order.capture_attempt,
        "metadata": dict(order.metadata), "trace_id": order.trace_id,
    }


def line_values(order: Order) -> list[dict[str, Any]]:
    """The `order_lines` rows of an order, numbered in order."""
    return [{"order_id": order.id, "position": i, "sku": line.sku, "name": line.name,
             "quantity": line.quantity, "currency": line.unit_price.currency,
             "unit_price_minor": line.unit_price.minor}
            for i, line in enumerate(order.lines)]


def order_from(row: Mapping[Any, Any], lines: Sequence[Mapping[Any, Any]]) -> Order:
    """An order from its row and its line rows (in position order)."""
    currency = row["currency"]
    return Order(
        id=row["id"], status=OrderStatus(row["status"]), intent=Intent(row["intent"]),
        lines=tuple(OrderLine(sku=ln["sku"], name=ln["name"], quantity=ln["quantity"],
                              unit_price=Money(ln["unit_price_minor"], ln["currency"]))
                    for ln in lines),
        amount=Money(row["amount_minor"], currency),
        created_at=row["created_at"], updated_at=row["updated_at"], version=row["version"],
        provider=row["provider"], provider_order_id=row["provider_order_id"],
        approve_url=row["approve_url"], capture_id=row["capture_id"],
        authorization_id=row["authorization_id"],
        captured=money_of(row["captured_minor"], currency),
        refunded=money_of(row["refunded_minor"], currency),
        refund_reserved=money_of(row["refund_reserved_minor"], currency),
        disputed=bool(row["disputed"]), needs_attention=row["needs_attention"],
        capture_attempt=row["capture_attempt"], metadata=dict(row["metadata"] or {}),
        trace_id=row["trace_id"],
    )


def history_values(entry: HistoryEntry) -> dict[str, Any]:
    """The `history` row of an entry (the id is the database's)."""
    return {"order_id": entry.order_id, "at": entry.at, "source": entry.source,
            "verdict": entry.verdict, "from_status": str(entry.from_status),
            "to_status": str(entry.to_status), "detail": dict(entry.detail),
            "trace_id": entry.trace_id}


def history_from(row: Row) -> HistoryEntry:
    """A history entry from its row."""
    return HistoryEntry(order_id=row["order_id"], at=row["at"], source=row["source"],
                        verdict=row["verdict"], from_status=OrderStatus(row["from_status"]),
                        to_status=OrderStatus(row["to_status"]), detail=dict(row["detail"]),
                        trace_id=row["trace_id"])


def outbox_values(announcement: Announcement, message_id: str, now: datetime,
                  trace_id: str | None = None) -> dict[str, Any]:
    """A new `outbox` row: pending, due now, unleased."""
    return {"id": message_id, "key": announcement.key, "type": announcement.type,
            "order_id": announcement.order_id, "payload": dict(announcement.payload),
            "created_at": now, "status": "pending", "attempts": 0, "next_attempt_at": now,
            "lease_owner": None, "lease_until": None, "last_error": None, "delivered_at": None,
            "trace_id": trace_id}


def outbox_from(row: Row) -> OutboxMessage:
    """An outbox message from its row."""
    return OutboxMessage(id=row["id"], key=row["key"], type=row["type"],
                         order_id=row["order_id"], payload=dict(row["payload"]),
                         created_at=row["created_at"], status=row["status"],
                         attempts=row["attempts"], next_attempt_at=row["next_attempt_at"],
                         lease_owner=row["lease_owner"], lease_until=row["lease_until"],
                         last_error=row["last_error"], delivered_at=row["delivered_at"],
                         trace_id=row["trace_id"])


def operation_values(op: ProviderOperation) -> dict[str, Any]:
    """The `provider_operations` row of an operation."""
    return {"key": op.key, "order_id": op.order_id, "kind": op.kind, "status": op.status,
            "created_at": op.created_at, "updated_at": op.updated_at,
            "lease_until": op.lease_until, "result": op.result, "error": op.error,
            "trace_id": op.trace_id}


def operation_from(row: Row) -> ProviderOperation:
    """A provider operation from its row."""
    return ProviderOperation(key=row["key"], order_id=row["order_id"], kind=row["kind"],
                             status=row["status"], created_at=row["created_at"],
                             updated_at=row["updated_at"], lease_until=row["lease_until"],
                             result=row["result"], error=row["error"], trace_id=row["trace_id"])


def refund_values(refund: Refund) -> dict[str, Any]:
    """The `refunds` row of a refund."""
    return {"id": refund.id, "order_id": refund.order_id, "currency": refund.amount.currency,
            "amount_minor": refund.amount.minor, "status": refund.status,
            "operation_key": refund.operation_key,
            "provider_refund_id": refund.provider_refund_id, "reason": refund.reason,
            "created_at": refund.created_at, "updated_at": refund.updated_at}


def refund_from(row: Row) -> Refund:
    """A refund from its row."""
    return Refund(id=row["id"], order_id=row["order_id"],
                  amount=Money(row["amount_minor"], row["currency"]), status=row["status"],
                  operation_key=row["operation_key"], created_at=row["created_at"],
                  updated_at=row["updated_at"], provider_refund_id=row["provider_refund_id"],
                  reason=row["reason"])


def idempotency_values(record: IdempotencyRecord) -> dict[str, Any]:
    """The `idempotency_keys` row of a record."""
    return {"scope": record.scope, "key": record.key, "request_hash": record.request_hash,
            "status": record.status, "created_at": record.created_at,
            "expires_at": record.expires_at, "locked_until": record.locked_until,
            "resource_id": record.resource_id, "response_status": record.response_status,
            "response_body": record.response_body}


def idempotency_from(row: Row) -> IdempotencyRecord:
    """An idempotency record from its row."""
    return IdempotencyRecord(scope=row["scope"], key=row["key"],
                             request_hash=row["request_hash"], status=row["status"],
                             created_at=row["created_at"], expires_at=row["expires_at"],
                             locked_until=row["locked_until"], resource_id=row["resource_id"],
                             response_status=row["response_status"],
                             response_body=row["response_body"])


def inbox_values(event: InboxEvent) -> dict[str, Any]:
    """The `inbox_events` row of an event, its body byte for byte."""
    return {"provider": event.provider, "event_id": event.event_id,
            "event_type": event.event_type, "received_at": event.received_at,
            "body": bytes(event.body), "transmission_id": event.transmission_id,
            "status": event.status, "order_id": event.order_id, "note": event.note}


def inbox_from(row: Row) -> InboxEvent:
    """An inbox event from its row (drivers may hand back a memoryview for binary columns)."""
    return InboxEvent(provider=row["provider"], event_id=row["event_id"],
                      event_type=row["event_type"], received_at=row["received_at"],
                      body=bytes(row["body"]), transmission_id=row["transmission_id"],
                      status=row["status"], order_id=row["order_id"], note=row["note"])


def rejection_values(rejection: WebhookRejection) -> dict[str, Any]:
    """The `webhook_rejections` row of a rejection."""
    return {"provider": rejection.provider, "transmission_id": rejection.transmission_id,
            "received_at": rejection.received_at, "check": rejection.check,
            "reason": rejection.reason, "likely_cause": rejection.likely_cause,
            "event_id": rejection.event_id, "event_type": rejection.event_type,
            "cert_url": rejection.cert_url, "body_sha256": rejection.body_sha256}


def rejection_from(row: Row) -> WebhookRejection:
    """A rejection from its row."""
    return WebhookRejection(provider=row["provider"], transmission_id=row["transmission_id"],
                            received_at=row["received_at"], check=row["check"],
                            reason=row["reason"], likely_cause=row["likely_cause"],
                            event_id=row["event_id"], event_type=row["event_type"],
                            cert_url=row["cert_url"], body_sha256=row["body_sha256"])


def truth_values(task: TruthTask) -> dict[str, Any]:
    """The `truth_tasks` row of a task."""
    return {"id": task.id, "provider": task.provider, "kind": task.kind,
            "resource_id": task.resource_id, "reason": task.reason,
            "created_at": task.created_at, "next_attempt_at": task.next_attempt_at,
            "status": task.status, "attempts": task.attempts, "order_id": task.order_id,
            "lease_owner": task.lease_owner, "lease_until": task.lease_until,
            "last_error": task.last_error}


def truth_from(row: Row) -> TruthTask:
    """A truth task from its row."""
    return TruthTask(id=row["id"], provider=row["provider"], kind=row["kind"],
                     resource_id=row["resource_id"], reason=row["reason"],
                     created_at=row["created_at"], next_attempt_at=row["next_attempt_at"],
                     status=row["status"], attempts=row["attempts"], order_id=row["order_id"],
                     lease_owner=row["lease_owner"], lease_until=row["lease_until"],
                     last_error=row["last_error"])


def reconcile_values(state: ReconcileState) -> dict[str, Any]:
    """The `reconcile_states` row of a state."""
    return {"order_id": state.order_id, "attempts": state.attempts,
            "next_check_at": state.next_check_at, "first_checked_at": state.first_checked_at,
            "last_checked_at": state.last_checked_at}


def reconcile_from(row: Row) -> ReconcileState:
    """A reconciliation state from its row."""
    return ReconcileState(order_id=row["order_id"], attempts=row["attempts"],
                          next_check_at=row["next_check_at"],
                          first_checked_at=row["first_checked_at"],
                          last_checked_at=row["last_checked_at"])
