"""The store port: one transaction (a unit of work) over the narrow per-aggregate protocols.

Each aggregate has its own protocol (`Orders`, `Refunds`, `History`, `Announcements`,
`Operations`, `IdempotencyKeys`, `Inbox`, `Rejections`, `TruthQueue`, `Outbox`,
`Reconciliation`), so a function can say which part of the store it touches. The units of work
below are those protocols composed, named after the services that grew them: `UnitOfWork` is
what checkout and refunds write, `WebhookUnitOfWork` adds what webhook ingest needs, and
`OpsUnitOfWork` (what `Store.transaction` gives) adds outbox delivery and reconciliation. Each
backend implements all of them in one class (`paywire.store.sql`, `paywire.store.dynamo`).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from paywire.ports.history import History
from paywire.ports.idempotency import IdempotencyKeys
from paywire.ports.inbox import Inbox
from paywire.ports.operations import Operations
from paywire.ports.orders import Orders
from paywire.ports.outbox import Announcements, Outbox
from paywire.ports.reconcile import Reconciliation
from paywire.ports.refunds import Refunds
from paywire.ports.rejections import Rejections
from paywire.ports.truth import TruthQueue


class UnitOfWork(Orders, Refunds, History, Announcements, Operations, IdempotencyKeys,
                 Protocol):
    """One transaction: everything written through it commits together or not at all."""


class WebhookUnitOfWork(UnitOfWork, Inbox, Rejections, TruthQueue, Protocol):
    """The unit of work with the webhook inbox, rejection log and truth-fetch queue."""


class OpsUnitOfWork(WebhookUnitOfWork, Outbox, Reconciliation, Protocol):
    """The unit of work with outbox delivery and reconciliation bookkeeping."""


class Store(Protocol):
    """A transactional store of orders, history, outbox, operations, refunds and keys."""

    def transaction(self) -> AbstractAsyncContextManager[OpsUnitOfWork]:
        """A unit of work: commits on normal exit, rolls back on exception.

        Transient failures raise `StorageError`; version conflicts `ConflictError`.
        """
        ...

    def snapshot(self) -> AbstractAsyncContextManager[OpsUnitOfWork]:
        """A read-only unit of work: what was committed, read without waiting for writers
        (answering a duplicate webhook must not queue behind them). Nothing in it may write:
        a write raises `StorageError` and writes nothing. A reading only; anything decided on
        it that must hold is decided again in a transaction."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
