"""The ports services need: a store (unit of work), a payment provider, a clock, and where
announcements and counters go. One module per port, and per aggregate of the store:

    orders, refunds, history, outbox, operations,   the store's aggregates: each a record (or
    idempotency, inbox, rejections, truth,          the domain's `Order`) and a narrow protocol
    reconcile, operator                             of what the store does with it
    store                                           each service's part of the store (those
                                                    composed), `Transactions[U]` that opens
                                                    one, and `Store`, which opens them all
    provider, webhooks                              a payment provider; a webhook's verifier
                                                    and parser
    health                                          the counts of the health read model
    delivery, clock, metrics                        where announcements go; the time; counters

The store port is shaped so SQL and DynamoDB can both implement it (architecture.md, "The store
port must fit DynamoDB too"): orders carry a version and every update is a compare-and-set on
it; inbox, announcements, provider operations and idempotency keys are put-if-absent; claims are
conditional updates with a lease, never a lock held across a network call.

Every public name is re-exported here, so `from paywire.ports import X` is the one spelling.
"""

from paywire.ports.clock import Clock, SystemClock
from paywire.ports.delivery import DeliveryTarget
from paywire.ports.health import HealthReadings
from paywire.ports.history import History, HistoryEntry
from paywire.ports.idempotency import IdempotencyKeys, IdempotencyRecord
from paywire.ports.inbox import Inbox, InboxEvent
from paywire.ports.metrics import Metrics, NoMetrics
from paywire.ports.operations import Operations, ProviderOperation
from paywire.ports.operator import (
    AuditEntry,
    AuditLog,
    DeliveryAttempt,
    DeliveryLog,
    OperatorReads,
    OrderFilter,
    OrderPage,
)
from paywire.ports.orders import Orders
from paywire.ports.outbox import Announcements, Outbox, OutboxMessage
from paywire.ports.provider import (
    AuthorizationResult,
    CaptureResult,
    CheckoutForm,
    DisputeResult,
    PaymentProvider,
    ProviderOrder,
    ProviderOrderState,
    RefundResult,
)
from paywire.ports.reconcile import ReconcileState, Reconciliation
from paywire.ports.refunds import Refund, Refunds
from paywire.ports.rejections import Rejections, WebhookRejection
from paywire.ports.store import (
    CheckoutUnit,
    DeliveryUnit,
    OpsUnitOfWork,
    OrderLookups,
    OrderMoves,
    ProviderTruthUnit,
    ReconcileUnit,
    RefundMoves,
    RefundsUnit,
    Store,
    Transactions,
    TruthFetchUnit,
    WebhookUnit,
)
from paywire.ports.truth import TruthQueue, TruthTask
from paywire.ports.webhooks import (
    DeliveryMarks,
    EventParser,
    VerifiedDelivery,
    WebhookVerifier,
)

__all__ = [
    "Announcements",
    "AuditEntry",
    "AuditLog",
    "AuthorizationResult",
    "CaptureResult",
    "CheckoutForm",
    "CheckoutUnit",
    "Clock",
    "DeliveryAttempt",
    "DeliveryLog",
    "DeliveryMarks",
    "DeliveryTarget",
    "DeliveryUnit",
    "DisputeResult",
    "EventParser",
    "HealthReadings",
    "History",
    "HistoryEntry",
    "IdempotencyKeys",
    "IdempotencyRecord",
    "Inbox",
    "InboxEvent",
    "Metrics",
    "NoMetrics",
    "Operations",
    "OperatorReads",
    "OpsUnitOfWork",
    "OrderFilter",
    "OrderLookups",
    "OrderMoves",
    "OrderPage",
    "Orders",
    "Outbox",
    "OutboxMessage",
    "PaymentProvider",
    "ProviderOperation",
    "ProviderOrder",
    "ProviderOrderState",
    "ProviderTruthUnit",
    "ReconcileState",
    "ReconcileUnit",
    "Reconciliation",
    "Refund",
    "RefundMoves",
    "RefundResult",
    "Refunds",
    "RefundsUnit",
    "Rejections",
    "Store",
    "SystemClock",
    "Transactions",
    "TruthFetchUnit",
    "TruthQueue",
    "TruthTask",
    "VerifiedDelivery",
    "WebhookRejection",
    "WebhookUnit",
    "WebhookVerifier",
]
