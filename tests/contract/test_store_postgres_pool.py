"""PostgreSQL's pool (`paywire.store.sql.postgres`): a connection the server closed is found at
checkout without a round trip and replaced, and a burst of units of work within the pool's size
reuses the kept connections instead of opening new server backends."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import sqlalchemy as sa

from contract.conftest import PostgresDatabase
from paywire.domain.errors import StorageError
from paywire.store.sql import SqlStore, postgres
from paywire.store.sql.postgres import POOL_SIZE, closed_by_server


def _backends(database: PostgresDatabase) -> set[int]:
    """The server processes connected to the test database (other than the one asking)."""
    with database.engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")).scalars())


def _terminate(database: PostgresDatabase) -> int:
    """End every other connection to the test database, as a server restart would."""
    with database.engine.connect() as conn:
        ended = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
        conn.commit()
    return int(ended)


async def _read(store: SqlStore, hold: float = 0.0) -> None:
    async with store.transaction() as uow:
        assert await uow.get_inbox_event("paypal", "WH-none") is None
        await asyncio.sleep(hold)


async def _until_closed(conn: psycopg.AsyncConnection[object]) -> None:
    """Wait (bounded) for the server's goodbye to reach the client's socket."""
    for _ in range(200):
        if closed_by_server(conn):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the terminated connection never became readable")


@pytest.fixture
def database(postgres_database: PostgresDatabase) -> PostgresDatabase:
    postgres_database.truncate()
    return postgres_database


async def test_an_idle_connection_is_alive_until_the_server_ends_it(
        database: PostgresDatabase) -> None:
    conn = await psycopg.AsyncConnection.connect(
        sa.make_url(database.url).set(drivername="postgresql").render_as_string(
            hide_password=False))
    try:
        await conn.execute("SELECT 1")
        await conn.rollback()
        assert not closed_by_server(conn)
        assert _terminate(database) == 1
        await _until_closed(conn)
    finally:
        await conn.close()
    assert closed_by_server(conn)


async def test_units_of_work_after_the_server_ended_every_pooled_connection_succeed(
        database: PostgresDatabase) -> None:
    store = SqlStore(database.url)
    try:
        await asyncio.gather(*(_read(store, hold=0.05) for _ in range(3)))
        async with store.snapshot() as view:
            assert await view.get_inbox_event("paypal", "WH-none") is None
        assert _terminate(database) == 3
        await asyncio.sleep(0.2)  # the server's goodbye reaches the pooled sockets
        # No pre-ping round trip: each checkout sees the readable socket and takes a new one.
        await asyncio.gather(*(_read(store) for _ in range(3)))
        async with store.snapshot() as view:
            assert await view.get_inbox_event("paypal", "WH-none") is None
    finally:
        await store.close()


async def test_a_burst_within_the_pool_reuses_its_connections(
        database: PostgresDatabase) -> None:
    store = SqlStore(database.url)
    burst = min(8, POOL_SIZE)
    try:
        await asyncio.gather(*(_read(store, hold=0.1) for _ in range(burst)))
        first = _backends(database)
        assert len(first) == burst
        await asyncio.gather(*(_read(store, hold=0.1) for _ in range(burst)))
        assert _backends(database) == first  # no backend closed, none opened
    finally:
        await store.close()


async def test_a_burst_beyond_the_pool_keeps_its_connections_until_they_go_unused(
        database: PostgresDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections opened beyond the pool's size for a burst are kept for the next burst (no
    backend opened or closed), and closed once unused for OVERFLOW_IDLE_SECONDS, down to the
    pool's size, when a unit of work next takes a connection (or returns one)."""
    monkeypatch.setattr(postgres, "OVERFLOW_IDLE_SECONDS", 0.5)
    store = SqlStore(database.url, pool_size=1, max_overflow=2)
    try:
        await asyncio.gather(*(_read(store, hold=0.1) for _ in range(3)))
        first = _backends(database)
        assert len(first) == 3
        await asyncio.gather(*(_read(store, hold=0.1) for _ in range(3)))
        assert _backends(database) == first  # none closed on return, none opened
        await _read(store)
        assert _backends(database) == first  # not unused for long enough yet
        await asyncio.sleep(0.6)
        # The next unit to take a connection closes the two left unused (before it is done).
        holding = asyncio.create_task(_read(store, hold=2.0))
        for _ in range(150):
            if len(_backends(database)) == 1:
                break
            await asyncio.sleep(0.01)
        kept = _backends(database)
        assert not holding.done() and len(kept) == 1 and kept < first
        await holding
        await asyncio.gather(*(_read(store, hold=0.1) for _ in range(2)))
        assert len(_backends(database)) == 2  # a new burst opens what it needs again
    finally:
        await store.close()


async def test_a_long_idle_connection_is_pinged_before_use(
        database: PostgresDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection idle past IDLE_PING_SECONDS is pinged: a dead one the socket check cannot
    see (a peer gone without a goodbye: the check is blinded here) is replaced, not handed out.
    In steady use (under the threshold) no ping is made, and the blinded check lets it through."""
    monkeypatch.setattr(postgres, "closed_by_server", lambda _conn: False)
    store = SqlStore(database.url)
    try:
        await _read(store)
        assert _terminate(database) == 1
        await asyncio.sleep(0.2)
        with pytest.raises(StorageError):  # in steady use: no ping, the dead one is used
            await _read(store)
        await _read(store)  # the failed unit's connection was invalidated: a new one now
        assert _terminate(database) == 1
        await asyncio.sleep(0.2)
        monkeypatch.setattr(postgres, "IDLE_PING_SECONDS", 0.0)  # idle long enough: pinged
        await _read(store)
    finally:
        await store.close()


async def test_no_usable_connection_is_a_storage_error(
        database: PostgresDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection found dead at checkout (the pool gives up: "This connection is
    unstable!") is a transient StorageError, as any failure of the database is, not a 500."""
    monkeypatch.setattr(postgres, "closed_by_server", lambda _conn: True)
    store = SqlStore(database.url)
    try:
        with pytest.raises(StorageError, match="no usable connection"):
            await _read(store)
    finally:
        await store.close()
