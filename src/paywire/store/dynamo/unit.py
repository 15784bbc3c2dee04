"""`DynamoUnitOfWork`: the DynamoDB store's one unit of work, every aggregate over one overlay and
one TransactWriteItems.

Each aggregate lives in its own module as a class over `DynamoUnit` (the overlay, reads through
it, buffered and immediate writes, claims, lookup items); this class only composes them, as
`paywire.store.sql.unit` does for SQL and for the same reason: the port is a flat set of
methods, which mixins give without a forwarding method per port method, and mypy checks each
mixin against `DynamoUnit` and the composed class against `OpsUnitOfWork` below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paywire.store.dynamo.health import DynamoHealth
from paywire.store.dynamo.history import DynamoHistory
from paywire.store.dynamo.idempotency import DynamoIdempotencyKeys
from paywire.store.dynamo.inbox import DynamoInbox
from paywire.store.dynamo.operations import DynamoOperations
from paywire.store.dynamo.operator import DynamoOperatorReads
from paywire.store.dynamo.orders import DynamoOrders
from paywire.store.dynamo.outbox import DynamoOutbox
from paywire.store.dynamo.reconcile import DynamoReconciliation
from paywire.store.dynamo.refunds import DynamoRefunds
from paywire.store.dynamo.rejections import DynamoRejections
from paywire.store.dynamo.truth import DynamoTruthQueue

if TYPE_CHECKING:
    from paywire.ports import OpsUnitOfWork


class DynamoUnitOfWork(DynamoOperatorReads, DynamoOrders, DynamoRefunds, DynamoHistory,
                       DynamoOutbox, DynamoOperations, DynamoIdempotencyKeys, DynamoInbox,
                       DynamoRejections, DynamoTruthQueue, DynamoReconciliation,
                       DynamoHealth):
    """Orders, refunds, history, the outbox, provider operations, idempotency keys, the inbox,
    the rejection log, the truth queue, reconciliation state, and the dashboard's searches,
    audit log and delivery attempts, in one unit of work (and the health readings
    over them)."""


if TYPE_CHECKING:
    def _conforms(uow: DynamoUnitOfWork) -> OpsUnitOfWork:
        return uow  # mypy checks the composed unit of work against the port
