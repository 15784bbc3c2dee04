"""The SQLite store's one writer per process (`paywire.store.sql.sqlite`), on real files: units
of work take turns and share commits, a failing unit undoes only its own work, a waiter that
leaves strands nobody, and another connection's write lock (another process's) is waited for
without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from paywire.ports import InboxEvent
from paywire.store import migrate
from paywire.store.sql import SqlStore

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def event(event_id: str) -> InboxEvent:
    """A stored webhook event."""
    return InboxEvent(provider="paypal", event_id=event_id, event_type="PAYMENT.CAPTURE.COMPLETED",
                      received_at=T0, body=event_id.encode())


class Boom(Exception):
    """A unit of work's own failure."""


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
def commits() -> Iterator[list[int]]:
    """Count the COMMITs of every engine meanwhile (one entry each)."""
    seen: list[int] = []

    def count(_conn: Any) -> None:
        seen.append(1)

    sa.event.listen(sa.engine.Engine, "commit", count)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "commit", count)


def stored(db: Path) -> set[str]:
    """The event ids on disk, read by a connection of its own."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM inbox_events")}


async def hold_turn(store: SqlStore, started: asyncio.Event, release: asyncio.Event) -> None:
    """A unit of work that writes, then keeps the turn until `release`."""
    async with store.transaction() as uow:
        await uow.put_inbox_event(event("first"))
        started.set()
        await release.wait()


async def test_concurrent_units_share_commits(store: SqlStore, db: Path) -> None:
    """Units of work that queue for the turn commit together: every one is on disk when its
    `transaction()` returns, with fewer COMMITs than units."""
    started, release = asyncio.Event(), asyncio.Event()
    on_disk: dict[str, bool] = {}

    async def put(n: int) -> None:
        async with store.transaction() as uow:
            await uow.put_inbox_event(event(f"e-{n}"))
        on_disk[f"e-{n}"] = f"e-{n}" in stored(db)

    with commits() as seen:
        first = asyncio.create_task(hold_turn(store, started, release))
        await started.wait()
        others = [asyncio.create_task(put(n)) for n in range(16)]
        await asyncio.sleep(0.05)  # every unit is queued for the turn
        release.set()
        await asyncio.gather(first, *others)
    assert on_disk == {f"e-{n}": True for n in range(16)}
    assert stored(db) == {"first", *on_disk}
    assert 1 <= len(seen) < 17


async def test_a_failing_unit_undoes_only_its_own_work(store: SqlStore, db: Path) -> None:
    """In a shared transaction, a unit that raises rolls back its own writes only: the units
    before and after it commit."""
    started, release = asyncio.Event(), asyncio.Event()

    async def put(event_id: str, *, fail: bool = False) -> None:
        async with store.transaction() as uow:
            await uow.put_inbox_event(event(event_id))
            if fail:
                raise Boom

    first = asyncio.create_task(hold_turn(store, started, release))
    await started.wait()
    units = [asyncio.create_task(put("before")), asyncio.create_task(put("bad", fail=True)),
             asyncio.create_task(put("after"))]
    await asyncio.sleep(0.05)
    release.set()
    results = await asyncio.gather(first, *units, return_exceptions=True)
    assert [type(r) for r in results] == [type(None), type(None), Boom, type(None)]
    assert stored(db) == {"first", "before", "after"}


async def test_a_waiter_leaving_when_handed_the_transaction_strands_nobody(
        store: SqlStore, db: Path) -> None:
    """A unit handed the open transaction but cancelled before it starts leaves it to be
    committed all the same: the unit before it returns, its work on disk."""
    started, release = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(hold_turn(store, started, release))
    await started.wait()

    async def waiter() -> None:
        async with store.transaction() as uow:
            await uow.put_inbox_event(event("never"))

    queued = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)  # queued for the turn
    release.set()
    await asyncio.sleep(0)  # the first unit ends and hands the transaction on
    queued.cancel()
    await asyncio.wait_for(first, timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert stored(db) == {"first"}


async def test_another_connections_write_lock_is_waited_for_off_the_loop(
        store: SqlStore, db: Path) -> None:
    """While another connection (another process) holds the write lock, a unit of work waits
    for it without blocking the event loop, then commits."""
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        async def put() -> float:
            began = time.monotonic()
            async with store.transaction() as uow:
                await uow.put_inbox_event(event("waited"))
            return time.monotonic() - began

        ticking = asyncio.create_task(ticker())
        unit = asyncio.create_task(put())
        await asyncio.sleep(0.3)
        assert not unit.done()
        assert ticks >= 20  # the loop ran on while the unit waited
        other.execute("COMMIT")
        waited = await asyncio.wait_for(unit, timeout=5)
        ticking.cancel()
        assert waited >= 0.3
    finally:
        other.close()
    assert stored(db) == {"waited"}


@contextlib.contextmanager
def commit_threads() -> Iterator[list[threading.Thread]]:
    """The thread of every COMMIT any engine runs meanwhile (one entry each)."""
    threads: list[threading.Thread] = []

    def record(_conn: Any) -> None:
        threads.append(threading.current_thread())

    sa.event.listen(sa.engine.Engine, "commit", record)
    try:
        yield threads
    finally:
        sa.event.remove(sa.engine.Engine, "commit", record)


async def test_commits_run_on_the_writers_own_thread_until_close(db: Path) -> None:
    """A COMMIT with something to write runs off the event loop, on the store's one commit
    thread (the same for every commit); closing the store ends that thread."""
    opened = SqlStore(f"sqlite+aiosqlite:///{db}")
    try:
        with commit_threads() as threads:
            for n in range(3):
                async with opened.transaction() as uow:
                    await uow.put_inbox_event(event(f"t-{n}"))
    finally:
        await opened.close()
    assert len(threads) == 3 and len(set(threads)) == 1
    committer = threads[0]
    assert committer is not threading.current_thread()
    assert committer.name == "paywire-sqlite-commit"
    committer.join(timeout=5)
    assert not committer.is_alive()
    assert stored(db) == {"t-0", "t-1", "t-2"}


async def test_a_store_never_closed_lets_its_commit_thread_end(db: Path) -> None:
    """Idle for COMMIT_THREAD_IDLE_SECONDS, the commit thread ends by itself (a store dropped
    without `close()` keeps no thread, and through it no connection); the next commit starts
    another."""
    opened = SqlStore(f"sqlite+aiosqlite:///{db}")
    try:
        with commit_threads() as threads:
            async with opened.transaction() as uow:
                await uow.put_inbox_event(event("t-0"))
            first = threads[0]
            await asyncio.to_thread(first.join, 5)
            assert not first.is_alive()
            async with opened.transaction() as uow:
                await uow.put_inbox_event(event("t-1"))
        assert len(threads) == 2 and threads[1] is not first
    finally:
        await opened.close()
    assert stored(db) == {"t-0", "t-1"}


_EXIT_MID_COMMIT = """
import asyncio, sys, time
from datetime import UTC, datetime
import sqlalchemy as sa
from paywire.ports import InboxEvent
from paywire.store.sql import SqlStore

sa.event.listen(sa.engine.Engine, "commit", lambda conn: time.sleep(0.5))  # a slow fsync
store = SqlStore(f"sqlite+aiosqlite:///{sys.argv[1]}")

async def unit():
    async with store.transaction() as uow:
        await uow.put_inbox_event(InboxEvent(provider="paypal", event_id="mid-commit",
            event_type="X", received_at=datetime(2026, 1, 1, tzinfo=UTC), body=b"{}"))

async def main():
    task = asyncio.create_task(unit())
    await asyncio.sleep(0.2)  # the COMMIT is in its thread now
    task.cancel()  # the unit hears "unknown"; the process then ends without closing the store
    try:
        await task
    except asyncio.CancelledError:
        pass

asyncio.run(main())
"""


def test_a_commit_in_flight_when_the_process_ends_is_finished(db: Path) -> None:
    """A process that ends (without closing its store) while a COMMIT runs in the commit
    thread waits for it, as it waited for the default executor's threads before: what was
    being made durable is, not abandoned half way."""
    done = subprocess.run([sys.executable, "-c", _EXIT_MID_COMMIT, str(db)],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "mid-commit" in stored(db)
