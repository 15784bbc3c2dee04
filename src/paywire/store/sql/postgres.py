"""PostgreSQL's connection pool: how many connections a process keeps, and how a dead one is
found before a unit of work is handed it, without a round trip.

Why (issue 18's profile of webhook ingest on PostgreSQL, py-spy, c8). A delivery runs four units
of work (the duplicate check, the ingest, the confirmation's claim and its answer); with
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

What this does not see: a peer that vanished without closing (a cable cut, a dropped NAT
entry). `pool_pre_ping` did not see it either until its TCP timeout; either way the unit of
work fails with `StorageError`, which is transient everywhere (5xx to a provider, which
retries), and SQLAlchemy invalidates the rest of the pool's connections of that age.
"""

from __future__ import annotations

import select
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

POOL_SIZE = 10  # connections kept per process
MAX_OVERFLOW = 10  # opened beyond them for a burst, closed when returned


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
    """Discard a pooled connection the server has closed, at checkout (module docstring)."""

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if closed_by_server(dbapi_connection):
            raise sa_exc.DisconnectionError("the server closed this pooled connection")
