"""PostgreSQL's connection pool: how many connections a process keeps, and how a dead one is
found before a unit of work is handed it, without a round trip for a connection in steady use.

Why (issue 18's profile of webhook ingest on PostgreSQL, py-spy, c8). A delivery then ran four
units of work (the duplicate check, the ingest, the confirmation's claim and its answer); with
`pool_pre_ping` each began with a `SELECT 1` round trip, a tenth of paywire's CPU per delivery
(`AsyncConnection.start`: 9.3 % of the process), and with five pooled connections a burst of
more than five units (eight deliveries and their confirmations) opened overflow connections and
closed them again on return: about one new server backend per delivery, a fork and an
authentication on the database server's share of the same cores.

What instead:

- `POOL_SIZE` connections are kept, enough for a worker's concurrent units at the benches' and
  a shop's usual concurrency, `MAX_OVERFLOW` more opened for bursts (and closed after);
- at checkout, a connection is tested by asking the kernel whether its socket is readable,
  without waiting (`poll` with a zero timeout). An idle connection has nothing to read: the
  server only writes to it when asked, so anything readable means the server has closed it
  (a restart, `pg_terminate_backend`, an idle timeout: PostgreSQL sends its FATAL notice and
  closes, and the socket reads the notice or end-of-file) or is in a state the pool cannot
  vouch for. Such a connection is discarded and the pool checks out another (SQLAlchemy's
  `DisconnectionError` protocol), as `pool_pre_ping` would have, for the price of one system
  call instead of a round trip.

A connection idle for longer than `IDLE_PING_SECONDS` is still pinged (`SELECT 1`) before it
is handed out, as `pool_pre_ping` pinged every one: a peer gone without a goodbye (a NAT or
load balancer that dropped the idle flow and answers with a reset, a failover keeping its
address) shows nothing readable, and only a round trip finds it. Connections in steady use
skip that round trip; an idle one pays it once, at a moment when nothing is busy.

What neither sees: a connection that dies between the check and its first statement. The unit
of work then fails with `StorageError`, transient everywhere (5xx to a provider, which retries),
and SQLAlchemy invalidates the pool's connections of that age.
"""

from __future__ import annotations

import select
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

POOL_SIZE = 10  # connections kept per process
MAX_OVERFLOW = 10  # opened beyond them for a burst, closed when returned
IDLE_PING_SECONDS = 30.0  # idle longer than this: pinged before use (below common NAT timeouts)


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


def postgres_liveness(engine: sa.Engine) -> None:
    """Discard a pooled connection the server has closed, or one idle for a while that does not
    answer a ping, at checkout (module docstring)."""

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["paywire_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if closed_by_server(dbapi_connection):
            raise sa_exc.DisconnectionError("the server closed this pooled connection")
        since = record.info.get("paywire_idle_since")  # none for a new connection
        if since is not None and time.monotonic() - since > IDLE_PING_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise sa_exc.DisconnectionError("a pooled connection idle for "
                                                f"{time.monotonic() - since:.0f} s did not "
                                                "answer a ping") from exc
