"""The store port: one transaction (a unit of work) over the narrow per-aggregate protocols, and
what each service may do in one.

Each aggregate has its own protocol (`Orders`, `Refunds`, `History`, `Announcements`,
`Operations`, `IdempotencyKeys`, `Inbox`, `Rejections`, `TruthQueue`, `Outbox`,
`Reconciliation`, `OperatorReads`, `AuditLog`, `DeliveryLog`).
A service is given `Transactions[U]`: something that opens units of work of
type `U`, the part of the store it uses, named here after it:

    unit               made of                         used by
    OrderMoves         Orders, History, Announcements  moving an order (services.transitions:
                                                       `apply_fact`, `flag_attention`)
    RefundMoves        OrderMoves, Refunds             a provider refund counted, refund
                                                       records in step (`apply_provider_refund`)
    OrderLookups       Orders, Refunds                 OrderQueries
    ProviderTruthUnit  OrderMoves, Operations,         TruthApplier (the truth queue: for the
                       TruthQueue                      fetcher's hook that closes its task)
    CheckoutUnit       ProviderTruthUnit, Refunds,     Checkout (and the queries and applier
                       IdempotencyKeys                 it builds when not given them; the
                                                       API's Idempotency-Key record is written
                                                       in the new order's own units)
    RefundsUnit        RefundMoves, Operations         Refunds
    WebhookUnit        RefundMoves, TruthQueue,        WebhookIngest
                       Inbox, Rejections
    TruthFetchUnit     RefundMoves, TruthQueue         TruthFetcher
    ReconcileUnit      RefundMoves, Reconciliation     Reconciler
    DeliveryUnit       OrderMoves, Outbox,             OutboxWorker, QueueDelivery
                       DeliveryLog
    OpsUnitOfWork      all of them, with OperatorReads `Store.transaction`; the operator's
                       AuditLog and HealthReadings     commands and the dashboard
                                                       (`services.dashboard`) use it, and the
                                                       health read model (`HealthGauges`)
                                                       through `snapshot()`

A service that needs one aggregate names its protocol (`OperationRunner`: `Operations`), and a
helper the narrowest part it touches (`must_order`: `Orders`). `Transactions` is covariant, so
a `Store` (whose units are `OpsUnitOfWork`) is a `Transactions[U]` for every `U` above: the
composition root passes the one store to each service and mypy proves it fits. Each backend
implements all of them in one class (`paywire.store.sql`, `paywire.store.dynamo`).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from paywire.ports.health import HealthReadings
from paywire.ports.history import History
from paywire.ports.idempotency import IdempotencyKeys
from paywire.ports.inbox import Inbox
from paywire.ports.operations import Operations
from paywire.ports.operator import AuditLog, DeliveryLog, OperatorReads
from paywire.ports.orders import Orders
from paywire.ports.outbox import Announcements, Outbox
from paywire.ports.reconcile import Reconciliation
from paywire.ports.refunds import Refunds
from paywire.ports.rejections import Rejections
from paywire.ports.truth import TruthQueue

U_co = TypeVar("U_co", covariant=True)


class OrderMoves(Orders, History, Announcements, Protocol):
    """An order's compare-and-set, its history lines and its announcements, written together."""


class RefundMoves(OrderMoves, Refunds, Protocol):
    """Moving an order by a refund, with paywire's refund records kept in step."""


class OrderLookups(Orders, Refunds, Protocol):
    """Orders and refunds read by id (`OrderQueries`)."""


class ProviderTruthUnit(OrderMoves, Operations, TruthQueue, Protocol):
    """A provider's answer applied, the operation that led to it closed, and (through the
    caller's hook) the truth task that asked for it closed too (`TruthApplier`)."""


class CheckoutUnit(ProviderTruthUnit, Refunds, IdempotencyKeys, Protocol):
    """Checkout's writes, its `OrderQueries` and its `TruthApplier` (`Checkout`), and the
    caller's Idempotency-Key record written beside a new order (`Alongside`)."""


class RefundsUnit(RefundMoves, Operations, Protocol):
    """A refund reserved, made under its operation key and settled (`Refunds`)."""


class WebhookUnit(RefundMoves, TruthQueue, Inbox, Rejections, Protocol):
    """An event stored in the inbox with what it does (a move or a queued truth fetch), or a
    refused delivery in the rejection log (`WebhookIngest`)."""


class TruthFetchUnit(RefundMoves, TruthQueue, Protocol):
    """Truth tasks claimed and closed, and what the provider's answer does (`TruthFetcher`)."""


class ReconcileUnit(RefundMoves, Reconciliation, Protocol):
    """Due orders and pending refunds found, settled and scheduled again (`Reconciler`)."""


class DeliveryUnit(OrderMoves, Outbox, DeliveryLog, Protocol):
    """Outbox messages claimed and settled, each attempt logged, an undeliverable one's order
    flagged (`OutboxWorker`, `QueueDelivery`)."""


class OpsUnitOfWork(Orders, Refunds, History, Announcements, Operations, IdempotencyKeys,
                    Inbox, Rejections, TruthQueue, Outbox, Reconciliation, OperatorReads,
                    AuditLog, DeliveryLog, HealthReadings, Protocol):
    """One transaction over every aggregate: everything written through it commits together
    or not at all (and the health readings over them all)."""


class Transactions(Protocol[U_co]):
    """Opens units of work of type `U_co`: a service's view of the store."""

    def transaction(self) -> AbstractAsyncContextManager[U_co]:
        """A unit of work: commits on normal exit, rolls back on exception.

        Transient failures raise `StorageError`; version conflicts `ConflictError`.
        """
        ...

    def snapshot(self) -> AbstractAsyncContextManager[U_co]:
        """A read-only unit of work: what was committed, read without waiting for writers
        (answering a duplicate webhook must not queue behind them). Nothing in it may write:
        a write raises `StorageError` and writes nothing. A reading only; anything decided on
        it that must hold is decided again in a transaction."""
        ...


class Store(Transactions[OpsUnitOfWork], Protocol):
    """A transactional store of orders, history, outbox, operations, refunds and keys."""

    async def close(self) -> None:
        """Release connections."""
        ...
