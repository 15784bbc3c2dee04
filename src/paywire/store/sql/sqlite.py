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
  first served), so inside a process nobody busy-waits. Between processes (`paywire serve` +
  `paywire worker` on one file) SQLite's own lock still decides, as before: the turn
  supplements it, it does not replace it;
- statements (and BEGIN, SAVEPOINT) run on the event loop's thread, straight through the
  sqlite3 module: once a unit holds the write lock, a statement on a WAL database waits for
  nothing and takes microseconds, less than a hop to a thread. A unit's statements therefore
  run without a pause and the turn is almost never contended;
- `BEGIN IMMEDIATE` is tried without the busy handler: when another process holds the write
  lock, it is tried again after growing naps (as the busy handler would) without blocking the
  loop, up to busy_timeout;
- group commit. A unit releases its SAVEPOINT and the turn at once, leaving the transaction
  open; a flush scheduled by the first unit to end commits it after the units ready to run
  now have joined it. A COMMIT with something to write runs in a thread (the fsync); units
  that arrive meanwhile wait for it together, then run one after another in one turn of the
  loop, in the next transaction. The thread is the writer's own (`_Committer`), not
  asyncio's default executor: a hand-off through `asyncio.to_thread` (context copy,
  concurrent future, chained asyncio future, a pool of threads) cost about three times the
  CPU of a queue to one waiting thread and one wake-up of the loop, on every commit (issue 18:
  a checkout order commits four times). Each unit's `transaction()` returns only once its work is
  durable, and a failed commit fails every unit in it (nothing of theirs was written). A unit
  that raises rolls back to its savepoint: only its own work is undone.

    units:  A · B · C ──flush──────────── D · E ──flush── ...
    SQL:    BEGIN IMMEDIATE · sp A · sp B · sp C · COMMIT (thread) │ BEGIN IMMEDIATE · sp D ...
    A,B,C:  wait for that COMMIT, then return; D, E arrived during it and waited for it

A unit that changed nothing in a batch that changed nothing returns without waiting: there is
nothing to make durable and nothing uncommitted it could have read.

Snapshots read on connections of their own (`query_only`, never the write lock): WAL gives them
the last committed state while the writer works, so a read never queues behind writers.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from paywire.domain.errors import StorageError
from paywire.store.sql.base import translated

SQLITE_BUSY_TIMEOUT_MS = 10_000  # how long a connection waits for another's lock
FIRST_NAP, LAST_NAP = 0.001, 0.025  # seconds between tries of BEGIN IMMEDIATE (another process)


def _changes(conn: sa.Connection) -> int:
    """Rows the connection has inserted, updated or deleted since it opened (sqlite3's
    `total_changes`): whether a transaction has anything to make durable."""
    dbapi: Any = conn.connection.dbapi_connection
    return int(dbapi.total_changes)


def _driver_sql(conn: sa.Connection, sql: str) -> None:
    """A savepoint statement straight on the sqlite3 connection: SQLAlchemy's own savepoints
    cost more than the unit of work's statements (a tenth of the webhook path's CPU)."""
    dbapi: Any = conn.connection.dbapi_connection
    try:
        dbapi.execute(sql)
    except sqlite3.Error as exc:
        raise StorageError(f"database error: {type(exc).__name__}: {exc}") from exc


def _in_transaction(conn: sa.Connection) -> bool:
    dbapi: Any = conn.connection.dbapi_connection
    return bool(dbapi.in_transaction)


def _busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def sqlite_pragmas(engine: sa.Engine, *, read_only: bool = False) -> None:
    """Pragmas on every new SQLite connection of `engine`, and the driver's own transaction
    handling off (`read_only`: `query_only` connections too). A pool listener only: an engine
    with connection listeners (a `begin` one) dispatches events around every statement."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver stops issuing its own BEGIN
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            if read_only:
                cursor.execute("PRAGMA query_only = ON")
        finally:
            cursor.close()


def _begin(conn: sa.Connection, sql: str) -> sa.RootTransaction:
    """`sql` (a BEGIN) on the driver's connection, then SQLAlchemy's transaction over it
    (which emits nothing itself on SQLite and COMMITs or ROLLs BACK through the driver)."""
    dbapi: Any = conn.connection.dbapi_connection
    dbapi.execute(sql)
    return conn.begin()


def _begin_now(conn: sa.Connection) -> sa.RootTransaction:
    """BEGIN IMMEDIATE without SQLite's busy handler: it succeeds at once or raises "database
    is locked" at once."""
    dbapi: Any = conn.connection.dbapi_connection
    dbapi.execute("PRAGMA busy_timeout = 0")
    try:
        return _begin(conn, "BEGIN IMMEDIATE")
    finally:
        dbapi.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")


COMMIT_THREAD_IDLE_SECONDS = 0.5  # the commit thread ends after this long without a COMMIT


class _Committer:
    """One thread running a writer's COMMITs, so their fsync never blocks the event loop.

    A job is a function and the future (on the calling loop) that hears its outcome: the
    thread runs it and settles the future through one `call_soon_threadsafe`. The thread is
    started by a job when none is serving (again in a forked child, where the parent's thread
    does not exist) and ends when `close` asks (the store's, which first lets the commits in
    flight finish) or after `COMMIT_THREAD_IDLE_SECONDS` without a job. It is not a daemon:
    like the default executor's threads it replaced, the interpreter waits for a COMMIT in
    flight at exit instead of abandoning it; being idle-ended, a store never closed holds
    neither the process nor its connection for longer than that."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], StorageError | None], asyncio.Future[StorageError | None],
                  asyncio.AbstractEventLoop] | None] = queue.SimpleQueue()
        self._serving = False
        self._pid = os.getpid()

    def run(self, job: Callable[[], StorageError | None]) -> asyncio.Future[StorageError | None]:
        """`job` in the thread; the future of what it returns (or raises)."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[StorageError | None] = loop.create_future()
        if self._pid != os.getpid():
            self._reset()  # a forked child: the parent's thread is not here
        with self._lock:
            self._jobs.put((job, outcome, loop))
            if not self._serving:
                self._serving = True
                threading.Thread(target=self._serve, args=(self._lock, self._jobs),
                                 name="paywire-sqlite-commit").start()
        return outcome

    def close(self) -> None:
        """End the thread once the jobs queued before have run (it is not waited for)."""
        with self._lock:
            if self._serving:
                self._jobs.put(None)
                self._serving = False
                self._jobs = queue.SimpleQueue()

    def _serve(self, lock: threading.Lock, jobs: queue.SimpleQueue[Any]) -> None:
        while True:
            try:
                item = jobs.get(timeout=COMMIT_THREAD_IDLE_SECONDS)
            except queue.Empty:
                with lock:
                    if jobs.empty():  # none arrived meanwhile: the next job starts a thread
                        if jobs is self._jobs:
                            self._serving = False
                        return
                continue
            if item is None:
                return
            job, outcome, loop = item
            del item
            result: StorageError | None = None
            error: BaseException | None = None
            try:
                result = job()
            except BaseException as exc:  # noqa: BLE001 - the waiter hears it, as from a pool
                error = exc
            with suppress(RuntimeError):  # the loop is closed: nobody is left to hear it
                loop.call_soon_threadsafe(_settle, outcome, result, error)
            # Nothing of the job (its batch, connection, loop) is kept while the thread waits.
            del job, outcome, loop, result, error


def _settle(outcome: asyncio.Future[StorageError | None], result: StorageError | None,
            error: BaseException | None) -> None:
    if outcome.done():
        return  # its waiter was cancelled
    if error is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(result)


def _committed(trans: sa.RootTransaction) -> StorageError | None:
    """COMMIT `trans`: None, or the error every unit of work in it must hear."""
    try:
        with translated():
            trans.commit()
    except Exception as exc:  # noqa: BLE001 - every unit of the batch must hear of it
        return exc if isinstance(exc, StorageError) else StorageError(
            f"database error: the commit failed: {type(exc).__name__}")
    return None


@dataclass(eq=False)
class _Batch:
    """One SQLite transaction shared by the units of work that end before it is committed."""

    trans: sa.RootTransaction
    done: asyncio.Future[None]
    changes: int  # `_changes` at BEGIN
    units: int = 0
    flushing: bool = False


class SqliteWriter:
    """The write side of a SQLite `SqlStore`: one connection, units of work one at a time,
    commits shared (module docstring). `wait_seconds` bounds the wait for the turn, as
    busy_timeout bounds the wait for another process's lock: past it, StorageError."""

    def __init__(self, engine: sa.Engine, *, wait_seconds: float) -> None:
        self._engine = engine
        self._wait = wait_seconds
        self._conn: sa.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turn = asyncio.Lock()  # one unit's statements at a time
        self._batch: _Batch | None = None  # the open transaction
        self._committing: asyncio.Future[None] | None = None  # its COMMIT, in a thread
        self._tasks: set[asyncio.Task[None]] = set()  # commits in flight
        self._committer = _Committer()

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[sa.Connection]:
        """The connection, inside a savepoint of the shared transaction, for one unit of work;
        exits once the work is committed (or raises StorageError if the commit failed)."""
        await self._acquire()
        batch = self._batch
        try:
            batch = batch or await self._begin()
            conn = self._connection()
            batch.units += 1
            savepoint = f"unit_{batch.units}"
            _driver_sql(conn, f"SAVEPOINT {savepoint}")
        except BaseException:
            self._finish(batch)
            raise
        try:
            yield conn
            _driver_sql(conn, f"RELEASE {savepoint}")  # the work joins the shared transaction
        except BaseException:
            self._undo(savepoint, batch)
            self._finish(batch)
            raise
        durable = self._finish(batch)
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
        self._committer.close()

    # --- the turn ------------------------------------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A store used from a second event loop (asyncio.run after asyncio.run): the old
            # loop's waiters are gone with it, and no transaction outlives its loop.
            self._loop, self._turn, self._batch, self._committing = loop, asyncio.Lock(), None, None
            if self._conn is not None and _in_transaction(self._conn):
                self._drop_connection()
        return self._turn

    async def _acquire(self) -> None:
        """The turn, once no COMMIT is running (units arriving meanwhile wait for it together,
        then go one after another in one turn of the loop: their statements never wait)."""
        turn = self._lock()
        try:
            async with asyncio.timeout(self._wait):
                while True:
                    if self._committing is not None:
                        await asyncio.shield(self._committing)
                        continue
                    await turn.acquire()
                    if self._committing is None:
                        return
                    turn.release()
        except TimeoutError:
            raise StorageError(f"database error: OperationalError: no turn to write within "
                               f"{self._wait:.0f} s (database is locked)") from None

    def _release(self) -> None:
        self._turn.release()

    def _finish(self, batch: _Batch | None) -> asyncio.Future[None] | None:
        """The unit holding the turn is done: pass the turn on and see that the open transaction
        is committed soon (after the units ready to run now have joined it). The future to
        wait for before the unit's work is durable: none if the transaction changed nothing."""
        self._release()
        if batch is None or batch is not self._batch:
            return None  # BEGIN failed, or the transaction already failed
        changed = _changes(self._connection()) != batch.changes
        if not batch.flushing:
            batch.flushing = True
            task: asyncio.Task[None] = asyncio.ensure_future(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return batch.done if changed else None

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
        if self._conn is None:
            with translated():
                self._conn = await asyncio.to_thread(self._engine.connect)
        conn = self._conn
        while True:
            try:
                trans = _begin_now(conn)
                break
            except sqlite3.Error as exc:
                if not _busy(exc) or loop.time() + nap > deadline:
                    self._drop_connection()
                    raise StorageError(f"database error: {type(exc).__name__}: {exc}") from exc
            await asyncio.sleep(nap)
            nap = min(2 * nap, LAST_NAP)
        done: asyncio.Future[None] = loop.create_future()
        # Nobody may be left waiting for it (units that changed nothing): never "unretrieved".
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._batch = _Batch(trans, done, _changes(conn))
        return self._batch

    def _undo(self, savepoint: str, batch: _Batch) -> None:
        """Roll a failed unit back to its savepoint; if SQLite rolled back the whole
        transaction instead (an I/O error, a full disk), every unit in it failed."""
        conn = self._connection()
        try:
            _driver_sql(conn, f"ROLLBACK TO {savepoint}")
            _driver_sql(conn, f"RELEASE {savepoint}")
            lost = not _in_transaction(conn)
        except Exception:  # noqa: BLE001 - any failure here means the transaction is unusable
            lost = True
        if lost:
            self._fail(batch, StorageError("database error: the transaction was rolled back "
                                           "by SQLite after a failed statement"))

    async def _flush(self, batch: _Batch) -> None:
        """COMMIT the open transaction once the unit holding the turn (if any) is done: in a
        thread when there is something to fsync, while the units that arrive wait for it."""
        await self._turn.acquire()
        try:
            if batch is not self._batch:
                return  # it failed meanwhile
            self._batch = None
            if _changes(self._connection()) == batch.changes:
                self._commit(batch)  # nothing written: no fsync, no thread
                return
            self._committing = asyncio.get_running_loop().create_future()
        finally:
            self._release()
        try:
            try:
                error = await self._committer.run(lambda: _committed(batch.trans))
            except asyncio.CancelledError:
                # The loop is going away mid-COMMIT: whether the thread finished it is unknown,
                # so the units hear so, and the connection (maybe still in that thread) is let
                # go.
                self._conn = None
                if not batch.done.done():
                    batch.done.set_exception(StorageError("database error: the commit was "
                                                          "interrupted; its outcome is unknown"))
                raise
            self._settle_commit(batch, error)
        finally:
            committing, self._committing = self._committing, None
            if committing is not None:
                committing.set_result(None)

    def _commit(self, batch: _Batch) -> None:
        self._settle_commit(batch, _committed(batch.trans))

    def _settle_commit(self, batch: _Batch, error: StorageError | None) -> None:
        if error is not None:
            self._fail(batch, error)
        else:
            _resolve(batch.done)

    def _fail(self, batch: _Batch, error: StorageError) -> None:
        """Nothing of this transaction was written: tell its units, start afresh."""
        if self._batch is batch:
            self._batch = None
        with suppress(Exception):
            batch.trans.rollback()
        self._drop_connection()
        _resolve(batch.done, error)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.invalidate()
                conn.close()


def _resolve(done: asyncio.Future[None], error: StorageError | None = None) -> None:
    """Settle a batch's future, from the loop's thread or a worker thread."""
    def settle() -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    loop = done.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()
    else:
        loop.call_soon_threadsafe(settle)


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
            try:
                trans = _begin(conn, "BEGIN")  # deferred: a WAL snapshot from the first read
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {type(exc).__name__}: {exc}") from exc
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
