"""The SQL store's hot writes and its order and inbox reads on SQLite go straight to the driver
(`SqlBase._write`, `SqlBase._select`), compiled once: they store and read exactly what
SQLAlchemy's execution would, report the same row counts, and fail with the same errors;
statements that need more than binding still go through SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from paywire.domain.errors import ConflictError
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine
from paywire.ports import HistoryEntry, InboxEvent, TruthTask
from paywire.store import migrate
from paywire.store.sql import SqlStore, rows
from paywire.store.sql.base import SqlBase
from paywire.store.sql.orders import _BY_ID
from paywire.store.sql.tables import history, order_lines

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def entry(order_id: str, detail: dict[str, Any]) -> HistoryEntry:
    """A history line."""
    return HistoryEntry(order_id=order_id, at=T0, source="api", verdict="APPLY",
                        from_status="CREATED", to_status="APPROVED", detail=detail,
                        trace_id="4bf92f3577b34da6a3ce929d0e0e4736")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A migrated SQLite file."""
    path = tmp_path / "paywire.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SqlStore]:
    """A store on the file, closed afterwards."""
    opened = SqlStore(f"sqlite+aiosqlite:///{db}")
    try:
        yield opened
    finally:
        await opened.close()


@contextlib.contextmanager
def through_sqlalchemy() -> Iterator[list[str]]:
    """The statements SQLAlchemy's execution layer runs meanwhile (any engine)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", before)


def stored(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows as the file holds them, read with the plain driver."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


async def test_a_write_is_stored_as_sqlalchemy_would_store_it(store: SqlStore, db: Path) -> None:
    """A history line written through the driver and one written through SQLAlchemy's
    execution are stored alike (the time as UTC text, the detail as JSON text), and only the
    second is seen by SQLAlchemy's execution layer."""
    detail = {"amount": "12.50", "note": "ü ☃", "n": [1, None]}
    with through_sqlalchemy() as seen:
        async with store.transaction() as uow:
            base: Any = uow
            assert isinstance(base, SqlBase)
            assert await base._write(sa.insert(history), rows.history_values(
                entry("ord_driver", detail))) == 1
            await base._run(sa.insert(history), rows.history_values(entry("ord_sa", detail)))
    assert [s.split(" (")[0] for s in seen] == ["INSERT INTO history"]
    driver, via_sa = stored(db, "SELECT order_id, at, source, verdict, from_status, to_status, "
                                "detail, trace_id FROM history ORDER BY id")
    assert driver[0] == "ord_driver" and via_sa[0] == "ord_sa"
    assert driver[1:] == via_sa[1:]
    async with store.snapshot() as snap:
        assert [h.detail for h in await snap.history("ord_driver")] == [detail]


async def test_row_counts_and_conflicts_match(store: SqlStore) -> None:
    """An UPDATE reports the rows it matched (0 for none); a constraint violation is a
    ConflictError worded as SQLAlchemy's path words it; a refused value is raised as itself;
    a list of rows is written as an executemany."""
    line = {"order_id": "ord_missing", "position": 0, "sku": "mug", "name": "Mug",
            "quantity": 1, "currency": "USD", "unit_price_minor": 1250}
    errors = []
    for route in ("_write", "_run"):
        with contextlib.suppress(ConflictError):
            async with store.transaction() as uow:
                base: Any = uow
                with pytest.raises(ConflictError) as raised:
                    await getattr(base, route)(sa.insert(order_lines), line)  # no such order
                errors.append(str(raised.value))
    assert errors[0] == errors[1] and "FOREIGN KEY" in errors[0]
    async with store.transaction() as uow:
        base = uow
        stmt = sa.update(history).where(history.c.order_id == sa.bindparam("b_id"))
        assert await base._write(stmt, {"source": "x", "b_id": "nobody"}) == 0
        two = [rows.history_values(entry("ord_a", {})), rows.history_values(entry("ord_a", {}))]
        assert await base._write(sa.insert(history), two) == 2
        assert await base._write(stmt, {"source": "webhook", "b_id": "ord_a"}) == 2
        with pytest.raises(ValueError, match="naive"):
            await base._write(sa.insert(history), {
                **rows.history_values(entry("ord_b", {})), "at": datetime(2025, 3, 4)})  # noqa: DTZ001


async def test_a_statement_needing_more_than_binding_goes_through_sqlalchemy(
        store: SqlStore) -> None:
    """A write with an expanding IN list is not compiled for the driver: SQLAlchemy runs it
    (and its row count is still the answer)."""
    async with store.transaction() as uow:
        base: Any = uow
        for order_id in ("ord_x", "ord_y", "ord_z"):
            await base._write(sa.insert(history), rows.history_values(entry(order_id, {})))
    with through_sqlalchemy() as seen:
        async with store.transaction() as uow:
            base = uow
            stmt = sa.delete(history).where(
                history.c.order_id.in_(sa.bindparam("b_ids", expanding=True)))
            assert await base._write(stmt, {"b_ids": ["ord_x", "ord_z", "ord_none"]}) == 2
    assert len(seen) == 1 and seen[0].startswith("DELETE FROM history")


async def test_an_order_read_through_the_driver_is_sqlalchemys_read(store: SqlStore) -> None:
    """An order's joined read (times, a flag, JSON metadata, NULLs, two lines) gives the same
    mappings through the driver as through SQLAlchemy's `mappings()`, unseen by the latter."""
    order = Order.new("ord_read", Intent.CAPTURE,
                      [OrderLine("mug", "Mug", 2, Money(1250, "USD")),
                       OrderLine("tee", "Tee", 1, Money(2000, "USD"))], T0, provider="paypal")
    order = dataclasses.replace(order, metadata={"customer_email": "b@ex.com"}, disputed=True)
    async with store.transaction() as uow:
        await uow.insert_order(order)
    async with store.snapshot() as snap:
        base: Any = snap
        with through_sqlalchemy() as seen:
            driver = await base._select(_BY_ID, {"b_id": "ord_read"})
        assert seen == []
        via_sa = [dict(row) for row in (await base._run(_BY_ID, {"b_id": "ord_read"})).mappings()]
        assert sorted(map(dict, driver), key=lambda r: r["line_position"]) == sorted(
            via_sa, key=lambda r: r["line_position"])
        assert driver[0]["created_at"] == T0 and driver[0]["disputed"] is True
        assert driver[0]["metadata"] == {"customer_email": "b@ex.com"}
        assert await snap.get_order("ord_read") == order


async def test_a_webhooks_inbox_and_truth_queue_statements_go_to_the_driver(
        store: SqlStore) -> None:
    """What every delivery runs (the inbox's put-if-absent and read, the truth queue's upsert
    and outcome) bypasses SQLAlchemy's execution on SQLite and keeps the port's answers: a
    second put and a pending task's re-queue write nothing, a finished task re-opens."""
    event = InboxEvent(provider="paypal", event_id="WH-1", event_type="PAYMENT.CAPTURE.COMPLETED",
                       received_at=T0, body=b'{"id":"WH-1"}', transmission_id="tx-1",
                       status="confirming", order_id=None, note="queued")
    task = TruthTask(id="paypal:capture:CAP-1", provider="paypal", kind="capture",
                     resource_id="CAP-1", reason="a delivery", created_at=T0,
                     next_attempt_at=T0, lease_owner="me", lease_until=T0 + timedelta(seconds=12))
    with through_sqlalchemy() as seen:
        async with store.transaction() as uow:
            assert await uow.put_inbox_event(event) is True
            assert await uow.put_inbox_event(dataclasses.replace(event, body=b"other")) is False
            assert await uow.enqueue_truth(task) is True
            assert await uow.enqueue_truth(task) is False  # pending: left as it is
            assert await uow.finish_truth_task(task.id, "me", status="done", attempts=1,
                                               next_attempt_at=T0, last_error=None,
                                               now=T0) is True
            assert await uow.finish_truth_task(task.id, "me", status="done", attempts=1,
                                               next_attempt_at=T0, last_error=None,
                                               now=T0) is False  # the lease is released
            assert await uow.enqueue_truth(dataclasses.replace(task, reason="again")) is True
        async with store.snapshot() as snap:
            assert await snap.get_inbox_event("paypal", "WH-1") == event
            assert await snap.get_inbox_event("paypal", "WH-2") is None
    assert seen == []
    async with store.snapshot() as snap:
        [reopened] = await snap.list_truth_tasks(status="pending")
    assert (reopened.reason, reopened.attempts, reopened.lease_owner) == ("again", 0, "me")
