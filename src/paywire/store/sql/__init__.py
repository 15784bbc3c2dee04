"""The SQL store (SQLite, PostgreSQL): one module per aggregate, composed into one unit of work.

    store        `SqlStore`: URLs and drivers, SQLite's locking, the transaction
    unit         `SqlUnitOfWork`, composed of the aggregate classes below
    base         the connection, error translation, leased claims (shared by outbox and truth)
    orders, refunds, history, outbox, operations, idempotency, inbox, rejections, truth,
    reconcile    one aggregate's statements each
    tables, rows the schema (what the Alembic migrations in `paywire/store/migrations` create)
                 and the row <-> record mapping
"""

from paywire.store.sql.store import (
    SQLITE_BUSY_TIMEOUT_MS,
    SqlStore,
    async_url,
    configure_sqlite,
    sync_url,
)

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "SqlStore", "async_url", "configure_sqlite", "sync_url"]
