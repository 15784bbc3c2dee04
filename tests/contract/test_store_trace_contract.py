"""The store port keeps trace ids, run against every backend (the `store` fixture: SQLite,
PostgreSQL, DynamoDB on moto).

An order, its history lines, its outbox rows and its provider operations are read back with the
trace id they were written with, through every later write (an order's update, an outbox
claim and outcome, an operation's claim and outcome); a record written without one reads back
None (rows from before traces were kept). Migration 0005 adds the columns and takes them away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from apikit import postgres_database
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import HistoryEntry, ProviderOperation, Store
from paywire.store import migrate
from paywire.store.sql import SqlStore, tables

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "0af7651916cd43dd8448eb211c80319c"
S = OrderStatus


def _order(order_id: str, trace_id: str | None) -> Order:
    return Order.new(order_id, Intent.CAPTURE, [OrderLine("mug", "Mug", 1, Money(1250, "USD"))],
                     T0, trace_id=trace_id)


async def test_an_order_keeps_its_trace_through_updates(store: Store) -> None:
    """The trace an order was created in reads back, and stays when the order moves on."""
    async with store.transaction() as uow:
        await uow.insert_order(_order("o-traced", TRACE))
        await uow.insert_order(_order("o-plain", None))
    async with store.transaction() as uow:
        traced = await uow.get_order("o-traced")
        assert traced is not None and traced.trace_id == TRACE
        await uow.update_order(traced.evolve(T0 + timedelta(seconds=1), status=S.APPROVED),
                               traced.version)
    async with store.transaction() as uow:
        moved = await uow.get_order("o-traced")
        plain = await uow.get_order("o-plain")
        listed = await uow.list_orders()
    assert moved is not None and (moved.status, moved.trace_id) == (S.APPROVED, TRACE)
    assert plain is not None and plain.trace_id is None
    assert {o.id: o.trace_id for o in listed} == {"o-traced": TRACE, "o-plain": None}


async def test_history_lines_keep_each_its_own_trace(store: Store) -> None:
    """Lines of one order written in different traces (the checkout's, an operator's) and
    without one read back each with its own."""
    base = HistoryEntry(order_id="o-1", at=T0, source="api", verdict="APPLY",
                        from_status=S.CREATED, to_status=S.CREATED, detail={"n": 1})
    async with store.transaction() as uow:
        await uow.append_history(dataclasses.replace(base, trace_id=TRACE))
        await uow.append_history(dataclasses.replace(base, at=T0 + timedelta(seconds=1),
                                                     source="operator", trace_id=OTHER))
        await uow.append_history(dataclasses.replace(base, at=T0 + timedelta(seconds=2)))
    async with store.transaction() as uow:
        lines = await uow.history("o-1")
    assert [(e.source, e.trace_id) for e in lines] == [("api", TRACE), ("operator", OTHER),
                                                       ("api", None)]


async def test_an_outbox_row_keeps_its_trace_through_claim_and_outcome(store: Store) -> None:
    """The trace an announcement was written in reads back from every way the outbox is
    read: by order, by id, claimed, listed, after a retry and once delivered."""
    def announced(n: int) -> Announcement:
        return Announcement(key=f"k-{n}", type="order.completed", order_id="o-1",
                            payload={"n": n})

    async with store.transaction() as uow:
        assert await uow.add_announcement(announced(1), "msg-1", T0, trace_id=TRACE)
        assert await uow.add_announcement(announced(2), "msg-2", T0 + timedelta(seconds=1))
        assert not await uow.add_announcement(announced(1), "msg-3", T0, trace_id=OTHER)
    async with store.transaction() as uow:
        by_order = {m.id: m.trace_id for m in await uow.outbox_for_order("o-1")}
        claimed = {m.id: m.trace_id for m in await uow.claim_outbox(
            "w", T0 + timedelta(seconds=5), T0 + timedelta(seconds=65), 10)}
    assert by_order == claimed == {"msg-1": TRACE, "msg-2": None}
    later = T0 + timedelta(seconds=6)
    async with store.transaction() as uow:
        assert await uow.finish_outbox("msg-1", "w", status="pending", attempts=1,
                                       next_attempt_at=later, last_error="503", now=later)
    async with store.transaction() as uow:
        [again] = await uow.claim_outbox("w2", later, later + timedelta(seconds=60), 10)
        assert (again.id, again.trace_id) == ("msg-1", TRACE)
        assert await uow.finish_outbox("msg-1", "w2", status="delivered", attempts=2,
                                       next_attempt_at=None, last_error=None, now=later)
    async with store.transaction() as uow:
        done = await uow.get_outbox("msg-1")
        listed = await uow.list_outbox(status="delivered")
    assert done is not None and (done.status, done.trace_id) == ("delivered", TRACE)
    assert [(m.id, m.trace_id) for m in listed] == [("msg-1", TRACE)]


async def test_an_operation_keeps_the_trace_that_first_wrote_it(store: Store) -> None:
    """An operation's trace stays through a re-claim and its outcome."""
    op = ProviderOperation(key="o-1:capture:1", order_id="o-1", kind="capture",
                           status="pending", created_at=T0, updated_at=T0,
                           lease_until=T0 + timedelta(seconds=30), trace_id=TRACE)
    async with store.transaction() as uow:
        assert await uow.put_operation(op)
        assert await uow.put_operation(dataclasses.replace(op, key="o-1:create",
                                                           kind="create", trace_id=None))
    later = T0 + timedelta(seconds=60)
    async with store.transaction() as uow:
        assert await uow.claim_operation(op.key, later, later + timedelta(seconds=30))
        await uow.finish_operation(op.key, "succeeded", {"status": "COMPLETED"}, None, later)
    async with store.transaction() as uow:
        done = await uow.get_operation(op.key)
        plain = await uow.get_operation("o-1:create")
    assert done is not None and (done.status, done.trace_id) == ("succeeded", TRACE)
    assert plain is not None and plain.trace_id is None


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migration_0005_adds_nullable_trace_columns_both_ways(
        backend: str, tmp_path: Path) -> None:
    """Down to 0004 the columns go; a line written then reads back at head with no trace;
    the schema at head is the code's again."""
    with _fresh(backend, tmp_path) as url:
        _downgrade(url, "0004")
        engine = migrate.sync_engine(url)
        try:
            assert all("trace_id" not in {c["name"] for c in sa.inspect(engine).get_columns(t)}
                       for t in ("orders", "history", "outbox", "provider_operations"))
            with engine.begin() as conn:
                conn.execute(sa.insert(tables.history).values(
                    order_id="o-old", at=T0, source="api", verdict="APPLY",
                    from_status="CREATED", to_status="CREATED", detail={}))
        finally:
            engine.dispose()
        migrate.upgrade(url)
        assert migrate.check(url) == []
        store = SqlStore(url)
        try:
            async with store.transaction() as uow:
                [old] = await uow.history("o-old")
        finally:
            await store.close()
        assert old.trace_id is None


@contextmanager
def _fresh(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrated.db'}"
        migrate.upgrade(url)
        yield url
        return
    with postgres_database() as url:  # migrated to head
        yield url


def _downgrade(url: str, revision: str) -> None:
    config = migrate.alembic_config(url)
    engine = migrate.sync_engine(url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        engine.dispose()
