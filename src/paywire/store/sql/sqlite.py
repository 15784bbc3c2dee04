"""SQLite in one process: one writer connection whose units of work take turns and share
commits, and read-only connections for snapshots.

Why (issue 18's profile of webhook ingest). The async driver, aiosqlite, hops to a thread for
every driver call, about four per statement (cursor, execute, fetch, close) and forty-odd per
unit of work, each waiting for the event loop to come back to it, all inside the write lock that
`BEGIN IMMEDIATE` took; meanwhile the process's other units of work slept in SQLite's busy
handler (naps of 1, 2, 5 ... 100 ms: the second-long p99 under load). And every unit of work paid
an fsync of its own at COMMIT.

What instead:

- one writer connection per store; its units of work take turns (an asyncio lock, first come
  first served), so inside a process nobody busy-waits: the next unit starts when the last ends.
  Between processes (`paywire serve` + `paywire worker` on one file) SQLite's own lock and
  busy_timeout still decide, as before: the turn supplements them, it does not replace them;
- statements run on the event loop's thread, straight through the sqlite3 module: once a unit
  holds the write lock, a statement on a WAL database waits for nothing and takes microseconds,
  less than a hop to a thread;
- the two calls that can wait run in a thread: `BEGIN IMMEDIATE` (another process may hold the
  write lock) and a COMMIT with something to write (the fsync);
- group commit. A unit that ends while others wait for the turn releases its SAVEPOINT and
  leaves the transaction open; the next unit goes on in it, and the last one (no one waiting,
  `MAX_UNITS` units, or `MAX_AGE` seconds) commits for all. Each unit's `transaction()` returns
  only once its work is durable, and a failed commit fails every unit in it (nothing of theirs
  was written). A unit that raises rolls back to its savepoint: only its own work is undone.

    turn:   A ─ B ─ C ─────── D ─ ...      (C ends with no one waiting: it commits A, B, C)
    batch:  BEGIN IMMEDIATE · sp A · sp B · sp C · COMMIT │ BEGIN IMMEDIATE · sp D ...
    A, B:   ...wait for the COMMIT, then return              (a unit never sees its own
                                                              commit fail silently)

A unit that changed nothing in a batch that changed nothing returns without waiting: there is
nothing to make durable and nothing uncommitted it could have read.

Snapshots read on connections of their own (`query_only`, never the write lock): WAL gives them
the last committed state while the writer works, so a read never queues behind writers.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from paywire.domain.errors import StorageError
from paywire.store.sql.base import translated

SQLITE_BUSY_TIMEOUT_MS = 10_000  # how long a connection waits for another's lock
MAX_UNITS = 64  # units of work in one transaction at most
MAX_AGE = 0.05  # seconds: no unit joins a transaction older than this
FIRST_NAP, LAST_NAP = 0.001, 0.025  # seconds between tries of BEGIN IMMEDIATE (another process)


def _changes(conn: sa.Connection) -> int:
    """Rows the connection has inserted, updated or deleted since it opened (sqlite3's
    `total_changes`): whether a transaction has anything to make durable."""
    dbapi: Any = conn.connection.dbapi_connection
    return int(dbapi.total_changes)


def _in_transaction(conn: sa.Connection) -> bool:
    dbapi: Any = conn.connection.dbapi_connection
    return bool(dbapi.in_transaction)


def _busy(exc: sa_exc.OperationalError) -> bool:
    return getattr(exc.orig, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY,
                                                           sqlite3.SQLITE_LOCKED)


def _begin_now(conn: sa.Connection) -> sa.RootTransaction:
    """BEGIN IMMEDIATE (the engine's `begin` listener) without SQLite's busy handler: it
    succeeds at once or raises "database is locked" at once."""
    dbapi: Any = conn.connection.dbapi_connection
    dbapi.execute("PRAGMA busy_timeout = 0")
    try:
        return conn.begin()
    finally:
        dbapi.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")


@dataclass(eq=False)
class _Batch:
    """One SQLite transaction shared by consecutive units of work."""

    trans: sa.RootTransaction
    done: asyncio.Future[None]
    started: float
    changes: int  # `_changes` at BEGIN
    units: int = 0


class SqliteWriter:
    """The write side of a SQLite `SqlStore`: one connection, units of work one at a time,
    commits shared (module docstring). `wait_seconds` bounds the wait for the turn, as
    busy_timeout bounds the wait for another process's lock: past it, StorageError."""

    def __init__(self, engine: sa.Engine, *, wait_seconds: float) -> None:
        self._engine = engine
        self._wait = wait_seconds
        self._conn: sa.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turn = asyncio.Lock()
        self._queued = 0  # units waiting for the turn
        self._batch: _Batch | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # commits and flushes in flight

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[sa.Connection]:
        """The connection, inside a savepoint of the shared transaction, for one unit of work;
        exits once the work is committed (or raises StorageError if the commit failed)."""
        await self._acquire()
        try:
            batch = self._batch or await self._begin()
            conn = self._connection()
            with translated():
                savepoint = conn.begin_nested()
        except BaseException:
            self._end(self._batch, failed=True)
            raise
        batch.units += 1
        try:
            yield conn
            with translated():
                savepoint.commit()  # RELEASE: the work joins the shared transaction
        except BaseException:
            self._undo(savepoint, batch)
            self._end(batch, failed=True)
            raise
        durable = self._end(batch, failed=False)
        if durable is not None:
            await asyncio.shield(durable)

    async def close(self) -> None:
        """Let commits in flight finish, then close the connection."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with suppress(Exception):
                conn.close()

    # --- the turn ------------------------------------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A store used from a second event loop (asyncio.run after asyncio.run): the old
            # loop's waiters are gone with it, and no transaction outlives its loop.
            self._loop, self._turn, self._queued, self._batch = loop, asyncio.Lock(), 0, None
            if self._conn is not None and _in_transaction(self._conn):
                self._drop_connection()
        return self._turn

    async def _acquire(self) -> None:
        turn = self._lock()
        self._queued += 1
        got = False
        try:
            async with asyncio.timeout(self._wait):
                await turn.acquire()
            got = True
        except TimeoutError:
            raise StorageError(f"database error: OperationalError: no turn to write within "
                               f"{self._wait:.0f} s (database is locked)") from None
        finally:
            self._queued -= 1
            if not got and self._batch is not None and not self._queued and not turn.locked():
                # The turn was passed to us to go on with an open transaction, and we left:
                # someone must still commit it.
                self._spawn(self._flush())

    def _release(self) -> None:
        self._turn.release()

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        """Commit a transaction left open by a unit whose successor never came."""
        await self._acquire()
        batch = self._batch
        if batch is None:
            self._release()
        else:
            await self._commit(batch)

    # --- the shared transaction ------------------------------------------------------------

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            raise RuntimeError("no writer connection")  # pragma: no cover - _begin opens it
        return self._conn

    async def _begin(self) -> _Batch:
        """BEGIN IMMEDIATE, on the event loop when the write lock is free (it is, unless
        another process holds it); else tried again after growing naps, as SQLite's busy
        handler would, but without blocking the loop, until `wait_seconds` have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        nap = FIRST_NAP
        with translated():
            if self._conn is None:
                self._conn = await asyncio.to_thread(self._engine.connect)
            conn = self._conn
            while True:
                try:
                    trans = _begin_now(conn)
                    break
                except sa_exc.OperationalError as exc:
                    if not _busy(exc) or loop.time() + nap > deadline:
                        raise
                await asyncio.sleep(nap)
                nap = min(2 * nap, LAST_NAP)
        done: asyncio.Future[None] = loop.create_future()
        # Nobody may be left waiting for it (units that changed nothing): never "unretrieved".
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._batch = _Batch(trans, done, loop.time(), _changes(conn))
        return self._batch

    def _undo(self, savepoint: sa.NestedTransaction, batch: _Batch) -> None:
        """Roll a failed unit back to its savepoint; if SQLite rolled back the whole
        transaction instead (an I/O error, a full disk), every unit in it failed."""
        conn = self._connection()
        try:
            if savepoint.is_active:
                savepoint.rollback()
            lost = not _in_transaction(conn)
        except Exception:  # noqa: BLE001 - any failure here means the transaction is unusable
            lost = True
        if lost:
            self._fail(batch, StorageError("database error: the transaction was rolled back "
                                           "by SQLite after a failed statement"))

    def _end(self, batch: _Batch | None, *, failed: bool) -> asyncio.Future[None] | None:
        """The unit holding the turn is done: hand the open transaction to the next unit, or
        commit it. The future to wait for before the unit's work is durable, if any."""
        if batch is None or batch is not self._batch:
            self._release()  # no transaction (BEGIN failed) or it already failed
            return None
        conn = self._connection()
        changed = _changes(conn) != batch.changes
        fresh = asyncio.get_running_loop().time() - batch.started < MAX_AGE
        if self._queued and batch.units < MAX_UNITS and fresh:
            self._release()  # the next unit goes on in this transaction
        else:
            self._spawn(self._commit(batch))
        return batch.done if changed and not failed else None

    async def _commit(self, batch: _Batch) -> None:
        """COMMIT (in a thread when there is something to fsync), then pass the turn on."""
        try:
            conn = self._connection()
            with translated():
                if _changes(conn) != batch.changes:
                    await asyncio.to_thread(batch.trans.commit)
                else:
                    batch.trans.commit()  # nothing written: no fsync, no thread
        except asyncio.CancelledError:
            # The loop is going away mid-COMMIT: whether the thread finished it is unknown, so
            # the units hear so, and the connection (maybe still in that thread) is let go.
            self._conn = None
            if not batch.done.done():
                batch.done.set_exception(StorageError("database error: the commit was "
                                                      "interrupted; its outcome is unknown"))
            raise
        except Exception as exc:  # noqa: BLE001 - every unit of the batch must hear of it
            self._fail(batch, exc if isinstance(exc, StorageError) else StorageError(
                f"database error: the commit failed: {type(exc).__name__}"))
        else:
            if not batch.done.done():
                batch.done.set_result(None)
        finally:
            if self._batch is batch:
                self._batch = None
            self._release()

    def _fail(self, batch: _Batch, error: StorageError) -> None:
        """Nothing of this transaction was written: tell its units, start afresh."""
        if self._batch is batch:
            self._batch = None
        with suppress(Exception):
            batch.trans.rollback()
        self._drop_connection()
        if not batch.done.done():
            batch.done.set_exception(error)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.invalidate()
                conn.close()


class SqliteReaders:
    """Read-only connections for snapshots: `query_only`, a deferred BEGIN (a WAL snapshot from
    the first read to the end), never the write lock. Opened as needed, `keep` kept idle."""

    def __init__(self, engine: sa.Engine, *, keep: int = 4) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: list[sa.Connection] = []

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[sa.Connection]:
        """A connection inside a read transaction, rolled back at the end."""
        with translated():
            conn = self._idle.pop() if self._idle else await asyncio.to_thread(
                self._engine.connect)
        healthy = False
        try:
            with translated():
                trans = conn.begin()
            try:
                yield conn
            finally:
                with translated():
                    trans.rollback()
            healthy = True
        finally:
            if healthy and len(self._idle) < self._keep:
                self._idle.append(conn)
            else:
                with suppress(Exception):
                    conn.close()

    def close(self) -> None:
        """Close the idle connections."""
        idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                conn.close()
