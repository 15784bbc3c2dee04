"""`SqlStore`: the store port on SQLAlchemy Core over asyncio (SQLite via aiosqlite, PostgreSQL via
psycopg 3). Tables are created by the Alembic migrations (`paywire.store.migrate`), never here.

SQLite notes. Python's sqlite3 driver (and so aiosqlite) begins transactions lazily, only before
DML: a transaction that reads and then writes starts as a reader and must upgrade its lock, and
two such transactions deadlock into "database is locked" however long busy_timeout is. So the
driver's own transaction handling is switched off and every unit of work starts with
`BEGIN IMMEDIATE`, taking the write lock up front: concurrent writers queue on busy_timeout
instead of failing. WAL lets readers on other connections proceed meanwhile.

PostgreSQL runs at READ COMMITTED: a compare-and-set `UPDATE ... WHERE version = :v` that waits
on a concurrent writer re-checks its condition against the committed row, and a conflicting
`INSERT ... ON CONFLICT DO NOTHING` waits for the other insert's outcome, so the row counts the
unit of work reads are exact under concurrency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from paywire.domain.errors import ConfigError
from paywire.store.sql.base import translated
from paywire.store.sql.unit import SqlUnitOfWork

if TYPE_CHECKING:
    from paywire.ports import OpsUnitOfWork, Store

# Async and sync drivers per backend: the store runs async, Alembic migrations run sync.
_DRIVERS = {
    "sqlite": ("sqlite+aiosqlite", "sqlite"),
    "postgresql": ("postgresql+psycopg", "postgresql+psycopg"),
}
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _parse(url: str) -> tuple[sa.URL, str]:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {exc}") from exc
    backend = "postgresql" if parsed.get_backend_name() == "postgres" else parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise ConfigError(f"unsupported database {backend!r}: use sqlite or postgresql")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        # An in-memory database is one connection shared by every transaction (and one the
        # migrations cannot reach): units of work would see each other's uncommitted writes.
        raise ConfigError("SQLite needs a file path (sqlite+aiosqlite:///path/to/paywire.db)")
    return parsed, backend


def async_url(url: str) -> sa.URL:
    """`url` with the async driver the store uses (sqlite -> aiosqlite, postgresql -> psycopg)."""
    parsed, backend = _parse(url)
    return parsed.set(drivername=_DRIVERS[backend][0])


def sync_url(url: str) -> sa.URL:
    """`url` with the sync driver the migrations use (pysqlite, psycopg)."""
    parsed, backend = _parse(url)
    return parsed.set(drivername=_DRIVERS[backend][1])


def configure_sqlite(engine: sa.Engine) -> None:
    """Pragmas on every new SQLite connection; SQLAlchemy (not the driver) emits BEGIN IMMEDIATE."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver stops issuing its own BEGIN
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqlStore:
    """The store port on SQLite or PostgreSQL. Create once per process; `close()` at shutdown."""

    def __init__(self, url: str, *, pool_size: int = 5, max_overflow: int = 10) -> None:
        parsed = async_url(url)
        options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": max_overflow}
        if parsed.get_backend_name() == "postgresql":
            # A server restart leaves dead pooled connections; test each before handing it out.
            options["pool_pre_ping"] = True
        self._engine: AsyncEngine = create_async_engine(parsed, **options)
        self.dialect = self._engine.dialect.name
        if self.dialect == "sqlite":
            configure_sqlite(self._engine.sync_engine)

    def __repr__(self) -> str:
        return f"SqlStore({self._engine.url.render_as_string(hide_password=True)!r})"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[OpsUnitOfWork]:
        """A unit of work on one connection: commits on normal exit, rolls back on exception."""
        with translated():
            conn = await self._engine.connect()
        try:
            with translated():
                await conn.begin()
            uow = SqlUnitOfWork(conn)
            try:
                yield uow
            except BaseException:
                uow.end()
                # The body's exception is what the caller needs; a failed rollback (the
                # connection died) is settled by closing the connection below.
                with suppress(Exception):
                    await conn.rollback()
                raise
            uow.end()
            with translated():
                await conn.commit()
        finally:
            with suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Release every pooled connection."""
        await self._engine.dispose()


if TYPE_CHECKING:
    def _conforms(store: SqlStore,
                  uow: SqlUnitOfWork) -> tuple[Store, OpsUnitOfWork]:
        return store, uow  # mypy checks SqlStore and SqlUnitOfWork against the ports
