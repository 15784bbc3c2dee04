"""PostgreSQL's connection pool (`PgPool`): how many connections a process keeps, and how a
dead one is found before a unit of work is handed it, without a round trip for a connection in
steady use.

paywire pools psycopg's connections itself, since statements run straight on psycopg
(`store.sql.pgrun`: SQLAlchemy's asyncio engine and its pool cost a unit of work more client
CPU than its statements did).

Why these rules (issue 18's profile of webhook ingest on PostgreSQL, py-spy, c8). A delivery
then ran four units of work (the duplicate check, the ingest, the confirmation's claim and its
answer); with SQLAlchemy's `pool_pre_ping` each began with a `SELECT 1` round trip, a tenth of
paywire's CPU per delivery, and with five pooled connections a burst of more than five units
(eight deliveries and their confirmations) opened overflow connections and closed them again
on return: about one new server backend per delivery, a fork and an authentication on the
database server's share of the same cores.

What instead:

- `POOL_SIZE` connections are kept, enough for a worker's concurrent units at the benches' and
  a shop's usual concurrency, `MAX_OVERFLOW` more opened for bursts; a unit beyond both waits up
  to `POOL_TIMEOUT_SECONDS`, then fails with `StorageError` (transient);
- a connection opened for a burst is kept too, and closed once it has gone unused for
  `OVERFLOW_IDLE_SECONDS` (the pool hands out the most recently returned connection first, so
  the ones beyond what the load needs are the ones left unused), as found when a unit of work
  next takes or returns a connection (the background loops of `paywire serve` take one each
  round). Closing each on return, as SQLAlchemy's pool does, cost a new server backend (a fork
  and an authentication) whenever the load stood just above `POOL_SIZE`: 42 of them in 600
  webhook deliveries at concurrency 8 (the bench's sessions, `pg_stat_database`), each
  delivery's request and its confirmation after the answer holding a connection at once;
- before a kept connection is handed out, it is tested by asking the kernel whether its socket
  is readable, without waiting (`poll` with a zero timeout). An idle connection has nothing to
  read: the server only writes to it when asked, so anything readable means the server has
  closed it (a restart, `pg_terminate_backend`, an idle timeout: PostgreSQL sends its FATAL
  notice and closes, and the socket reads the notice or end-of-file) or is in a state the pool
  cannot vouch for. Such a connection is closed and the next one tried, as a pre-ping would
  have, for the price of one system call instead of a round trip;
- a connection comes back to the pool only from a unit that ended with it idle (committed or
  rolled back, no statement in flight): one cancelled mid-statement, broken, or left in a
  transaction is closed, so no unit inherits another's state.

A connection idle for longer than `IDLE_PING_SECONDS` is still pinged (`SELECT 1`) before it
is handed out: a peer gone without a goodbye (a NAT or load balancer that dropped the idle flow
and answers with a reset, a failover keeping its address) shows nothing readable, and only a
round trip finds it. Connections in steady use skip that round trip; an idle one pays it once,
at a moment when nothing is busy.

What neither sees: a connection that dies between the check and its first statement. The unit
of work then fails with `StorageError`, transient everywhere (5xx to a provider, which retries),
and the broken connection is closed when returned.
"""

from __future__ import annotations

import asyncio
import select
import time
from contextlib import suppress
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import pq
from sqlalchemy.ext.asyncio import create_async_engine

from paywire.domain.errors import StorageError
from paywire.store.sql.base import translated
from paywire.store.sql.pgrun import PgCompiler, pg_translated

POOL_SIZE = 10  # connections kept per process
MAX_OVERFLOW = 10  # opened beyond them for a burst (closed once unused: OVERFLOW_IDLE_SECONDS)
IDLE_PING_SECONDS = 30.0  # idle longer than this: pinged before use (below common NAT timeouts)
OVERFLOW_IDLE_SECONDS = 60.0  # a connection beyond POOL_SIZE unused this long is closed
POOL_TIMEOUT_SECONDS = 30.0  # a unit of work waits this long for a connection when all are in use
CONNECT_ATTEMPTS = 3  # new connections found unusable in a row before giving up


def closed_by_server(dbapi_connection: Any) -> bool:
    """Whether a pooled (idle) psycopg connection is unusable: broken or closed as far as
    psycopg knows, or its socket readable, which for an idle connection means the server has
    said goodbye."""
    conn = getattr(dbapi_connection, "_connection", dbapi_connection)  # under SQLAlchemy's adapter
    if conn.closed or conn.broken:
        return True
    try:
        fd = conn.pgconn.socket
    except Exception:  # noqa: BLE001 - psycopg raises OperationalError on a bad connection
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


class PgPool:
    """psycopg connections in autocommit mode, kept for units of work (`store.sql.pgrun`).

    At most `size + overflow` connections are in use at once (a unit of work beyond that waits
    up to `timeout` seconds, then fails with `StorageError`); each is kept when returned, and
    those beyond `size` are closed once unused for `OVERFLOW_IDLE_SECONDS`. The most recently
    returned connection is handed out first (its socket and the server's caches are warm),
    after the liveness checks of the module docstring. A connection comes back reusable only if
    its unit ended cleanly (idle, no transaction open); any other is closed, so no unit ever
    inherits another's state.
    """

    def __init__(self, url: sa.URL, *, size: int = POOL_SIZE, overflow: int = MAX_OVERFLOW,
                 timeout: float | None = None) -> None:
        # SQLAlchemy's engine only to initialise its dialect (server version, JSON codecs) and
        # to read the URL as its psycopg dialect would: it keeps no connection.
        self._engine = create_async_engine(url, poolclass=sa.NullPool)
        self.dialect = self._engine.dialect
        self._size = size
        self._timeout = POOL_TIMEOUT_SECONDS if timeout is None else timeout
        self._slots = asyncio.Semaphore(size + overflow)
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []
        self._in_use = 0  # connections handed out and not yet returned
        self._compiler: PgCompiler | None = None
        self._ready = asyncio.Lock()
        self._closed = False

    async def compiler(self) -> PgCompiler:
        """The dialect's compiler, once the dialect has seen the server."""
        if self._compiler is None:
            async with self._ready:
                if self._compiler is None:
                    with translated():
                        async with self._engine.connect():
                            pass  # first connect: the dialect initialises itself
                    self._compiler = PgCompiler(self.dialect)
        return self._compiler

    async def acquire(self) -> psycopg.AsyncConnection[Any]:
        """A live connection, idle and in autocommit mode; `release` it."""
        if self._closed:
            raise StorageError("database error: the store is closed")
        try:
            if self._slots.locked():  # all in use: wait, bounded (a task only then)
                await asyncio.wait_for(self._slots.acquire(), self._timeout)
            else:
                await self._slots.acquire()
        except TimeoutError:
            raise StorageError(f"database error: no connection free after {self._timeout:.0f} "
                               "s (every pooled connection in use)") from None
        try:
            if self._closed:  # closed while this unit waited
                raise StorageError("database error: the store is closed")
            await self._trim()
            conn = await self._live()
            self._in_use += 1
            return conn
        except BaseException:
            self._slots.release()
            raise

    async def _live(self) -> psycopg.AsyncConnection[Any]:
        while self._idle:
            conn, since = self._idle.pop()
            if closed_by_server(conn):
                await _close(conn)
                continue
            if time.monotonic() - since > IDLE_PING_SECONDS:
                try:
                    await conn.execute("SELECT 1")
                except Exception:  # noqa: BLE001 - any failure: not a usable connection
                    await _close(conn)
                    continue
                except BaseException:  # cancelled mid-ping: the connection is nobody's now
                    await _close(conn)
                    raise
            return conn
        cargs, cparams = self.dialect.create_connect_args(self._engine.url)
        for _ in range(CONNECT_ATTEMPTS):
            with pg_translated():
                conn = await psycopg.AsyncConnection.connect(*cargs, autocommit=True, **cparams)
            if not closed_by_server(conn):
                return conn
            await _close(conn)
        raise StorageError(f"database error: no usable connection: {CONNECT_ATTEMPTS} new "
                           "connections in a row were closed at once")

    async def release(self, conn: psycopg.AsyncConnection[Any], *, reusable: bool) -> None:
        """Return a connection: kept if `reusable` and idle, else closed; then close the kept
        connections beyond the pool's size that have gone unused for `OVERFLOW_IDLE_SECONDS`
        (the least recently returned first)."""
        self._in_use -= 1
        try:
            keep = (reusable and not self._closed and not conn.closed and not conn.broken
                    and conn.info.transaction_status == pq.TransactionStatus.IDLE)
            if keep:
                self._idle.append((conn, time.monotonic()))
            else:
                await _close(conn)
            await self._trim()
        finally:
            self._slots.release()

    async def _trim(self) -> None:
        """Close the kept connections beyond the pool's size (counting those in use) that have
        gone unused for `OVERFLOW_IDLE_SECONDS`, the least recently returned first."""
        now = time.monotonic()
        while (self._in_use + len(self._idle) > self._size and self._idle
               and now - self._idle[0][1] > OVERFLOW_IDLE_SECONDS):
            stale, _ = self._idle.pop(0)
            await _close(stale)

    async def close(self) -> None:
        """Close every kept connection; those in use are closed when returned."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await _close(conn)
        await self._engine.dispose()


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    with suppress(Exception):
        await conn.close()
