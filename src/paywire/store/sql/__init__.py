"""The SQL store (SQLite, PostgreSQL): one module per aggregate, composed into one unit of work.

    store        `SqlStore`: URLs and drivers, SQLite's locking, the transaction and snapshot
    sqlite       SQLite's one writer per process (turns, group commit) and its readers
    unit         `SqlUnitOfWork`, composed of the aggregate classes below
    base         the connection, error translation, leased claims (shared by outbox and truth)
    orders, refunds, history, outbox, operations, idempotency, inbox, rejections, truth,
    reconcile    one aggregate's statements each
    tables, rows the schema (what the Alembic migrations in `paywire/store/migrations` create)
                 and the row <-> record mapping
"""

from paywire.store.sql.sqlite import SQLITE_BUSY_TIMEOUT_MS
from paywire.store.sql.store import SqlStore, async_url, configure_sqlite, sync_url

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "SqlStore", "async_url", "configure_sqlite", "sync_url"]
