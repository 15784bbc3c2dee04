"""`SqlUnitOfWork`: the SQL store's one unit of work, every aggregate's statements on one
connection.

Each aggregate lives in its own module as a class over `SqlBase` (the connection, `_run`,
dialect-specific INSERTs); this class only composes them. Mixins rather than helper objects
the unit forwards to: the port is a flat set of methods (`uow.get_order`, `uow.claim_outbox`),
so composition would mean a forwarding method per port method, while each mixin is checked by
mypy against `SqlBase` on its own and the composed class against `OpsUnitOfWork` below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paywire.store.sql.health import SqlHealth
from paywire.store.sql.history import SqlHistory
from paywire.store.sql.idempotency import SqlIdempotencyKeys
from paywire.store.sql.inbox import SqlInbox
from paywire.store.sql.operations import SqlOperations
from paywire.store.sql.operator import SqlOperatorReads
from paywire.store.sql.outbox import SqlOutbox
from paywire.store.sql.reconcile import SqlReconciliation
from paywire.store.sql.refunds import SqlRefunds
from paywire.store.sql.rejections import SqlRejections
from paywire.store.sql.truth import SqlTruthQueue

if TYPE_CHECKING:
    from paywire.ports import OpsUnitOfWork


class SqlUnitOfWork(SqlReconciliation, SqlOperatorReads, SqlRefunds, SqlHistory, SqlOutbox,
                    SqlOperations, SqlIdempotencyKeys, SqlInbox, SqlRejections, SqlTruthQueue,
                    SqlHealth):
    """Orders (through `SqlReconciliation` and `SqlOperatorReads`), refunds, history, the
    outbox, provider operations, idempotency keys, the inbox, the rejection log, the truth
    queue, and the dashboard's searches, audit log and delivery attempts, in one transaction
    (and the health readings over them)."""


if TYPE_CHECKING:
    def _conforms(uow: SqlUnitOfWork) -> OpsUnitOfWork:
        return uow  # mypy checks the composed unit of work against the port
