"""`SqlStore`: the store port on SQLAlchemy Core: SQLite through the sqlite3 module, one writer
per process (`store.sql.sqlite`), PostgreSQL through psycopg 3 on asyncio, its statements
compiled by SQLAlchemy and run on psycopg's connections from paywire's own pool
(`store.sql.pgrun`, `store.sql.postgres`). Tables are created by the Alembic migrations
(`paywire.store.migrate`), never here.

SQLite notes. Python's sqlite3 driver begins transactions lazily, only before DML: a
transaction that reads and then writes starts as a reader and must upgrade its lock, and two
such transactions deadlock into "database is locked" however long busy_timeout is. So the
driver's own transaction handling is switched off and every unit of work runs in a transaction
begun with `BEGIN IMMEDIATE`, taking the write lock up front: between processes, writers queue
on busy_timeout instead of failing; inside one, they take turns on the store's one writer
connection and share commits (`SqliteWriter`). WAL lets readers on other connections (and
`snapshot`) proceed meanwhile. URLs say `sqlite+aiosqlite://` (the async driver this store used
before, kept as the settings' spelling): the store opens the file with sqlite3 itself.

PostgreSQL runs at READ COMMITTED (each unit's BEGIN says so, whatever the server's default):
a compare-and-set `UPDATE ... WHERE version = :v` that waits on a concurrent writer re-checks
its condition against the committed row, and a conflicting `INSERT ... ON CONFLICT DO NOTHING`
waits for the other insert's outcome, so the row counts the unit of work reads are exact under
concurrency. A unit of work sends BEGIN before its first statement and COMMIT at its end; a
snapshot is autocommit reads: at READ COMMITTED a transaction would add no consistency, only
two round trips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from paywire.domain.errors import ConfigError
from paywire.store.sql.pgrun import PgConnection
from paywire.store.sql.postgres import MAX_OVERFLOW, POOL_SIZE, PgPool
from paywire.store.sql.sqlite import (
    SQLITE_BUSY_TIMEOUT_MS,
    SqliteReaders,
    SqliteWriter,
    sqlite_pragmas,
)
from paywire.store.sql.unit import SqlUnitOfWork

if TYPE_CHECKING:
    from paywire.ports import OpsUnitOfWork, Store

# Async and sync drivers per backend: the store runs async, Alembic migrations run sync.
_DRIVERS = {
    "sqlite": ("sqlite+aiosqlite", "sqlite"),
    "postgresql": ("postgresql+psycopg", "postgresql+psycopg"),
}


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
    """Pragmas on every new SQLite connection; SQLAlchemy (not the driver) emits BEGIN IMMEDIATE
    (for the migrations: the store's own connections begin their transactions themselves)."""
    sqlite_pragmas(engine)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqlStore:
    """The store port on SQLite or PostgreSQL. Create once per process; `close()` at shutdown."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE,
                 max_overflow: int = MAX_OVERFLOW) -> None:
        parsed = async_url(url)
        self.dialect = parsed.get_backend_name()
        self._pool: PgPool | None = None
        self._writer: SqliteWriter | None = None
        self._readers: SqliteReaders | None = None
        if self.dialect == "sqlite":
            self._url = sync_url(url)
            # Connections are the writer's and the readers' own (not pooled): NullPool.
            writes = sa.create_engine(self._url, poolclass=sa.NullPool)
            sqlite_pragmas(writes)
            reads = sa.create_engine(self._url, poolclass=sa.NullPool)
            sqlite_pragmas(reads, read_only=True)
            self._sync_engines = (writes, reads)
            self._writer = SqliteWriter(writes, wait_seconds=SQLITE_BUSY_TIMEOUT_MS / 1000)
            self._readers = SqliteReaders(reads)
            return
        self._url = parsed
        self._pool = PgPool(parsed, size=pool_size, overflow=max_overflow)

    def __repr__(self) -> str:
        return f"SqlStore({self._url.render_as_string(hide_password=True)!r})"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[OpsUnitOfWork]:
        """A unit of work on one connection: commits on normal exit, rolls back on exception."""
        if self._writer is not None:
            async with self._writer.unit() as sync_conn:
                uow = SqlUnitOfWork(sync_conn)
                try:
                    yield uow
                finally:
                    uow.end()
            return
        async with self._connect(transactional=True) as conn:
            uow = SqlUnitOfWork(conn)
            try:
                yield uow
            except BaseException:
                uow.end()
                # The body's exception is what the caller needs; a failed rollback (the
                # connection died) leaves the connection unusable, and the pool closes it.
                with suppress(Exception):
                    await conn.rollback()
                raise
            uow.end()
            await conn.commit()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[OpsUnitOfWork]:
        """A read-only unit of work: what was committed, never waiting for writers; a write in
        it raises StorageError and writes nothing."""
        if self._readers is not None:
            async with self._readers.snapshot() as sync_conn:
                uow = SqlUnitOfWork(sync_conn, read_only=True)
                try:
                    yield uow
                finally:
                    uow.end()
            return
        async with self._connect(transactional=False) as conn:
            uow = SqlUnitOfWork(conn, read_only=True)
            try:
                yield uow
            finally:
                uow.end()

    @asynccontextmanager
    async def _connect(self, *, transactional: bool) -> AsyncIterator[PgConnection]:
        """A pooled PostgreSQL connection for one unit of work (or snapshot): returned to the
        pool when it ends, kept only if it ended idle (`PgPool.release`)."""
        if self._pool is None:
            raise RuntimeError("no PostgreSQL pool")  # pragma: no cover - SQLite has none
        compiler = await self._pool.compiler()
        raw = await self._pool.acquire()
        reusable = False
        try:
            yield PgConnection(raw, compiler, transactional=transactional)
            reusable = True
        except Exception:
            reusable = True  # a unit that failed (and rolled back) leaves the connection idle
            raise
        finally:
            # A cancelled unit may have left a statement in flight: never reused.
            await self._pool.release(raw, reusable=reusable)

    async def close(self) -> None:
        """Release every connection (SQLite: once the commits in flight have finished)."""
        if self._writer is not None and self._readers is not None:
            await self._writer.close()
            self._readers.close()
            for engine in self._sync_engines:
                engine.dispose()
        if self._pool is not None:
            await self._pool.close()


if TYPE_CHECKING:
    def _conforms(store: SqlStore,
                  uow: SqlUnitOfWork) -> tuple[Store, OpsUnitOfWork]:
        return store, uow  # mypy checks SqlStore and SqlUnitOfWork against the ports
