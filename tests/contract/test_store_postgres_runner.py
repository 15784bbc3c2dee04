"""PostgreSQL's statements straight on psycopg (`paywire.store.sql.pgrun`) and paywire's own
pool (`postgres.PgPool`): what SQLAlchemy's engine did for the store and the store relies on.
The store contract suites prove the statements' results; these prove the edges: errors as
paywire's, no unit inheriting another's state, a bounded pool and a bounded compiled cache."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg import pq

from contract.conftest import PostgresDatabase
from paywire.domain.errors import ConflictError, StorageError
from paywire.ports import InboxEvent
from paywire.store.sql import SqlStore, observe, postgres
from paywire.store.sql.pgrun import PgCompiler
from paywire.store.sql.tables import inbox_events

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _event(event_id: str, at: datetime = NOW) -> InboxEvent:
    return InboxEvent(provider="paypal", event_id=event_id, event_type="X", received_at=at,
                      body=b'{"id": "%s"}' % event_id.encode())


def _backends(database: PostgresDatabase) -> set[int]:
    with database.engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")).scalars())


def _stored(database: PostgresDatabase) -> list[str]:
    with database.engine.connect() as conn:
        return sorted(conn.execute(sa.select(inbox_events.c.event_id)).scalars())


@pytest.fixture
def database(postgres_database: PostgresDatabase) -> PostgresDatabase:
    postgres_database.truncate()
    return postgres_database


async def test_a_violated_constraint_is_a_conflict_and_the_unit_writes_nothing(
        database: PostgresDatabase) -> None:
    store = SqlStore(database.url, pool_size=1, max_overflow=0)
    try:
        async with store.transaction() as uow:
            await uow.put_inbox_event(_event("WH-1"))
        pid = _backends(database)
        statement = sa.insert(inbox_events).values(
            provider="paypal", event_id="WH-1", event_type="X", received_at=NOW, body=b"{}",
            status="applied")
        with pytest.raises(ConflictError, match="constraint violated"):
            async with store.transaction() as uow:
                await uow.put_inbox_event(_event("WH-2"))
                await uow._run(statement)  # type: ignore[attr-defined]
        assert _stored(database) == ["WH-1"]  # WH-2 rolled back with the failed statement
        async with store.transaction() as uow:  # the rolled-back connection serves again
            assert await uow.get_inbox_event("paypal", "WH-1") is not None
        assert _backends(database) == pid
    finally:
        await store.close()


async def test_a_value_the_binding_refuses_raises_as_itself(
        database: PostgresDatabase) -> None:
    store = SqlStore(database.url)
    try:
        with pytest.raises(ValueError, match="naive datetime"):
            async with store.transaction() as uow:
                await uow.put_inbox_event(_event("WH-1"))
                await uow.put_inbox_event(_event("WH-2", at=NOW.replace(tzinfo=None)))
        assert _stored(database) == []
    finally:
        await store.close()


async def test_a_cancelled_unit_leaves_no_connection_behind_mid_statement(
        database: PostgresDatabase) -> None:
    store = SqlStore(database.url, pool_size=1, max_overflow=0)
    try:
        async with store.snapshot() as view:
            await view.get_inbox_event("paypal", "WH-none")
        [first] = _backends(database)

        async def stuck() -> None:
            async with store.transaction() as uow:
                await uow.put_inbox_event(_event("WH-1"))
                await uow._run(sa.text("SELECT pg_sleep(30)"))  # type: ignore[attr-defined]

        task = asyncio.create_task(stuck())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The connection cancelled mid-statement was closed, not pooled: the next unit has a
        # fresh one, and nothing the cancelled unit wrote was committed.
        async with store.transaction() as uow:
            assert await uow.get_inbox_event("paypal", "WH-1") is None
            await uow.put_inbox_event(_event("WH-3"))
        assert first not in _backends(database)
        assert _stored(database) == ["WH-3"]
    finally:
        await store.close()


async def test_units_beyond_the_pool_wait_then_fail_as_storage_errors(
        database: PostgresDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "POOL_TIMEOUT_SECONDS", 0.3)
    store = SqlStore(database.url, pool_size=1, max_overflow=1)
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with store.transaction() as uow:
            await uow.get_inbox_event("paypal", "WH-none")
            held.set()
            await release.wait()

    try:
        holders = [asyncio.create_task(hold()) for _ in range(2)]
        while len(_backends(database)) < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(StorageError, match="no connection free"):
            async with store.snapshot() as view:
                await view.get_inbox_event("paypal", "WH-none")
        release.set()
        await asyncio.gather(*holders)
        # Both were kept (the overflow one until unused for OVERFLOW_IDLE_SECONDS).
        assert len(_backends(database)) == 2
        async with store.snapshot() as view:
            assert await view.get_inbox_event("paypal", "WH-none") is None
    finally:
        await store.close()


async def test_the_compiled_statements_kept_are_bounded(database: PostgresDatabase) -> None:
    store = SqlStore(database.url)
    try:
        async with store.transaction() as uow:
            await uow.put_inbox_event(_event("WH-1"))
        compiler = PgCompiler(store._pool.dialect, size=4)  # type: ignore[union-attr]
        for limit in range(1, 40):  # a distinct statement each time (LIMIT is literal here)
            compiled, _, _ = compiler.compile(
                sa.select(inbox_events.c.event_id).limit(sa.literal_column(str(limit))),
                [], many=False)
            assert compiled.string.endswith(f"LIMIT {limit}")
        assert len(compiler._sa_cache) == 4
        assert len(compiler._ours) <= 8
    finally:
        await store.close()


async def test_expanding_lists_and_literal_values_bind_per_execution(
        database: PostgresDatabase) -> None:
    """One cached compiled form serves statements that differ only in their bound values (an
    `IN` list of another length, another literal): each runs with its own."""
    store = SqlStore(database.url)
    try:
        async with store.transaction() as uow:
            for n in range(5):
                await uow.put_inbox_event(_event(f"WH-{n}"))

        def ids(*wanted: str) -> sa.Select[tuple[str]]:
            t = inbox_events
            return (sa.select(t.c.event_id)
                    .where(t.c.event_id.in_(wanted), t.c.provider == "paypal")
                    .order_by(t.c.event_id))

        async with store.snapshot() as view:
            run = view._run  # type: ignore[attr-defined]
            assert list((await run(ids("WH-1", "WH-3"))).scalars()) == ["WH-1", "WH-3"]
            assert list((await run(ids("WH-4"))).scalars()) == ["WH-4"]
            assert list((await run(ids("WH-0", "WH-2", "WH-4", "WH-9"))).scalars()) == [
                "WH-0", "WH-2", "WH-4"]
    finally:
        await store.close()


async def test_rows_are_read_as_sqlalchemy_reads_them(database: PostgresDatabase) -> None:
    """Result columns by name where a textual statement lists them in another order than the
    server answers; each through its type's processor with the type the server reported (a
    NUMERIC reads as a Decimal); a statement whose columns share a name is refused."""
    store = SqlStore(database.url)
    try:
        async with store.transaction() as uow:
            run = uow._run  # type: ignore[attr-defined]
            row = (await run(sa.text("SELECT 'x' AS b, 1 AS a").columns(
                a=sa.Integer, b=sa.String))).mappings().one()
            assert dict(row) == {"b": "x", "a": 1}
            money = (await run(sa.select(sa.cast(1.5, sa.Numeric(10, 2)).label("n"))
                               )).scalar_one()
            assert money == Decimal("1.50")
            with pytest.raises(RuntimeError, match="ambiguous"):
                await run(sa.select(sa.literal(1).label("n"), sa.literal(2).label("n")))
    finally:
        await store.close()


async def test_several_rows_with_returning_are_refused_not_answered_empty(
        database: PostgresDatabase) -> None:
    store = SqlStore(database.url)
    rows = [{"provider": "paypal", "event_id": f"WH-{n}", "event_type": "X", "received_at": NOW,
             "body": b"{}", "status": "applied"} for n in range(2)]
    try:
        with pytest.raises(RuntimeError, match="RETURNING with several"):
            async with store.transaction() as uow:
                await uow._run(sa.insert(inbox_events).returning(  # type: ignore[attr-defined]
                    inbox_events.c.event_id), rows)
        assert _stored(database) == []
    finally:
        await store.close()


async def test_a_unit_that_went_on_after_a_failed_statement_does_not_commit_silently(
        database: PostgresDatabase) -> None:
    """PostgreSQL answers the COMMIT of an aborted transaction with a rollback: the unit is
    told (StorageError), not left believing its writes were kept."""
    store = SqlStore(database.url)
    try:
        with pytest.raises(StorageError, match="rolled it back"):
            async with store.transaction() as uow:
                await uow.put_inbox_event(_event("WH-1"))
                with pytest.raises(StorageError):
                    await uow._run(sa.text("SELECT 1/0"))  # type: ignore[attr-defined]
        assert _stored(database) == []
    finally:
        await store.close()


async def test_statements_sent_are_observable(database: PostgresDatabase) -> None:
    store = SqlStore(database.url)
    sent: list[tuple[str, Mapping[str, Any], bool]] = []
    try:
        with observe.observing(lambda sql, params, several: sent.append((sql, params, several))):
            async with store.transaction() as uow:
                await uow.put_inbox_event(_event("WH-1"))
        async with store.snapshot() as view:  # no longer observed
            await view.get_inbox_event("paypal", "WH-1")
        [(sql, params, several)] = sent
        assert sql.startswith("INSERT INTO inbox_events") and params["event_id"] == "WH-1"
        assert not several
    finally:
        await store.close()


async def _show(raw: Any, setting: str) -> str:
    cursor = await raw.execute(f"SHOW {setting}")
    row = await cursor.fetchone()
    return str(row[0])


async def test_a_unit_of_work_runs_at_read_committed_whatever_the_server_s_default(
        database: PostgresDatabase) -> None:
    """A unit's BEGIN names READ COMMITTED, the level the store's compare-and-set units are
    written for, even where the server's default is another (here SERIALIZABLE, through the
    connection's options); a snapshot begins no transaction at all."""
    url = (sa.make_url(database.url)
           .update_query_dict({"options": "-c default_transaction_isolation=serializable"})
           .render_as_string(hide_password=False))
    store = SqlStore(url)
    try:
        async with store.transaction() as uow:
            raw = uow._conn.raw  # type: ignore[attr-defined]
            assert await uow.get_inbox_event("paypal", "WH-1") is None
            assert raw.info.transaction_status == pq.TransactionStatus.INTRANS
            assert await _show(raw, "transaction_isolation") == "read committed"
            assert await uow.put_inbox_event(_event("WH-1"))
        assert _stored(database) == ["WH-1"]
        async with store.snapshot() as view:
            raw = view._conn.raw  # type: ignore[attr-defined]
            assert await view.get_inbox_event("paypal", "WH-1") is not None
            assert raw.info.transaction_status == pq.TransactionStatus.IDLE
            assert await _show(raw, "default_transaction_isolation") == "serializable"
    finally:
        await store.close()
