"""The store port's contract, run against every backend (the `store` fixture's parameters).

A backend passes when it keeps these promises: exact money and aware datetimes, compare-and-set
on the order version, put-if-absent and conditional claims whose results say who won (also under
real concurrency), and all-or-nothing units of work.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from paywire.domain.errors import ConflictError, NotFoundError, StorageError, ValidationError
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import HistoryEntry, IdempotencyRecord, ProviderOperation, Refund, Store
from paywire.store import migrate
from paywire.store.sql import SqlStore

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
S = OrderStatus


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def make_order(order_id: str, *, created: datetime = T0, status: OrderStatus = S.CREATED,
               provider_order_id: str | None = None) -> Order:
    """A two-line USD order."""
    lines = [OrderLine("sku-1", "Mug", 2, Money(1250, "USD")),
             OrderLine("sku-2", "Tea", 1, Money(499, "USD"))]
    order = Order.new(order_id, Intent.CAPTURE, lines, created)
    return dataclasses.replace(order, status=status, provider_order_id=provider_order_id)


def announcement(key: str, order_id: str = "o-1") -> Announcement:
    """An order.completed announcement under `key`."""
    return Announcement(key=key, type="order.completed", order_id=order_id,
                        payload={"type": "order.completed", "order_id": order_id,
                                 "amount": "29.99"})


def idem(key: str = "k-1", *, created: datetime = T0, ttl: float = 3600,
         lock: float = 30, request_hash: str = "h-1") -> IdempotencyRecord:
    """An in-flight idempotency record locked for `lock` seconds, expiring after `ttl`."""
    return IdempotencyRecord(scope="shop:POST /v1/orders", key=key, request_hash=request_hash,
                             status="in_flight", created_at=created,
                             expires_at=created + timedelta(seconds=ttl),
                             locked_until=created + timedelta(seconds=lock))


async def test_schema_matches_the_tables(store_url: str) -> None:
    """After `upgrade`, the database is at head and its schema equals the code's tables."""
    assert migrate.current(store_url) == migrate.head()
    assert migrate.check(store_url) == []


def test_check_reports_schema_drift(sqlite_template: Path, tmp_path: Path) -> None:
    """`migrate.check` names what a database lacks, so the check above is not vacuous."""
    path = tmp_path / "drifted.db"
    shutil.copyfile(sqlite_template, path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP INDEX ix_refunds_order_id_created_at")
        conn.commit()
    problems = migrate.check(f"sqlite:///{path}")
    assert problems == ["add_index ix_refunds_order_id_created_at"]


def test_check_ignores_another_applications_tables(sqlite_template: Path,
                                                    tmp_path: Path) -> None:
    """A database shared with a host application (a Django project's) is compared on paywire's
    tables alone: the host's tables are not drift, a missing paywire index still is."""
    path = tmp_path / "shared.db"
    shutil.copyfile(sqlite_template, path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE shop_product (id INTEGER PRIMARY KEY, sku TEXT UNIQUE)")
        conn.execute("CREATE INDEX shop_product_sku ON shop_product (sku)")
        conn.commit()
    assert migrate.check(f"sqlite:///{path}") == []
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP INDEX ix_refunds_order_id_created_at")
        conn.commit()
    assert migrate.check(f"sqlite:///{path}") == ["add_index ix_refunds_order_id_created_at"]


async def test_order_round_trip(store: Store) -> None:
    """An order reads back field for field: exact money, aware UTC datetimes, lines, metadata."""
    kwd = [OrderLine("gold", "Gold bar", 3, Money(9_007_199_254_740_993, "KWD"))]
    order = dataclasses.replace(
        Order.new("o-1", Intent.AUTHORIZE, kwd, T0.astimezone(timezone(timedelta(hours=3)))),
        status=S.PARTIALLY_REFUNDED, provider_order_id="PP-1", approve_url="https://x/approve",
        capture_id="CAP-1", authorization_id="AUTH-1", captured=Money(27_021_597_764_222_979,
                                                                      "KWD"),
        refunded=Money(1, "KWD"), refund_reserved=Money(0, "KWD"), disputed=True,
        needs_attention="amount mismatch", capture_attempt=3,
        metadata={"cart": "c-9", "note": "ünïcode ✓"})
    async with store.transaction() as uow:
        await uow.insert_order(order)
    async with store.transaction() as uow:
        got = await uow.get_order("o-1")
        missing = await uow.get_order("nope")
    assert got == order
    assert missing is None
    assert got is not None and got.created_at.tzinfo is UTC and got.updated_at.utcoffset() == \
        timedelta(0)
    assert got.amount == Money(27_021_597_764_222_979, "KWD")


async def test_insert_duplicate_order_conflicts(store: Store) -> None:
    """A duplicate id or provider order id is a ConflictError that leaves the transaction usable."""
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1", provider_order_id="PP-1"))
    async with store.transaction() as uow:
        with pytest.raises(ConflictError):
            await uow.insert_order(make_order("o-1"))
        with pytest.raises(ConflictError):
            await uow.insert_order(make_order("o-2", provider_order_id="PP-1"))
        await uow.insert_order(make_order("o-3"))  # the transaction survived both conflicts
    async with store.transaction() as uow:
        assert [o.id for o in await uow.list_orders()] == ["o-3", "o-1"]


async def test_update_order_compare_and_set(store: Store) -> None:
    """An update at the expected version wins and bumps it; a stale one is a ConflictError."""
    order = make_order("o-1")
    async with store.transaction() as uow:
        await uow.insert_order(order)
    approved = order.evolve(at(5), status=S.APPROVED, provider_order_id="PP-1")
    async with store.transaction() as uow:
        await uow.update_order(approved, expected_version=1)
    async with store.transaction() as uow:
        with pytest.raises(ConflictError):
            await uow.update_order(order.evolve(at(6), status=S.VOIDED), expected_version=1)
        with pytest.raises(ValueError, match="expected_version"):
            await uow.update_order(approved, expected_version=2)
        with pytest.raises(ConflictError):
            await uow.update_order(make_order("ghost").evolve(at(1)), expected_version=1)
        got = await uow.get_order("o-1")
    assert got == approved
    assert got is not None and got.version == 2 and got.lines == order.lines


async def test_find_order_by_provider_id(store: Store) -> None:
    """Orders are found by (provider, provider order id), not by the id alone."""
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1", provider_order_id="PP-1"))
        await uow.insert_order(make_order("o-2"))
        found = await uow.find_order_by_provider_id("paypal", "PP-1")
        other = await uow.find_order_by_provider_id("aps", "PP-1")
    assert found is not None and found.id == "o-1"
    assert other is None


async def test_list_orders_pages_newest_first(store: Store) -> None:
    """Keyset pages walk every order newest first (ties by id) and filter by status."""
    created = {"a": at(1), "b": at(2), "c": at(2), "d": at(3), "e": at(4)}
    async with store.transaction() as uow:
        for oid, when in created.items():
            status = S.COMPLETED if oid in "bde" else S.CREATED
            await uow.insert_order(make_order(oid, created=when, status=status))
    seen: list[str] = []
    before: tuple[datetime, str] | None = None
    async with store.transaction() as uow:
        while page := await uow.list_orders(limit=2, before=before):
            assert len(page) <= 2
            seen += [o.id for o in page]
            before = (page[-1].created_at, page[-1].id)
        completed = await uow.list_orders(status=S.COMPLETED, limit=10)
        after_d = await uow.list_orders(status=S.COMPLETED, before=(at(3), "d"))
        with pytest.raises(ValidationError):
            await uow.list_orders(limit=0)
    assert seen == ["e", "d", "c", "b", "a"]
    assert [o.id for o in completed] == ["e", "d", "b"]
    assert [o.id for o in after_d] == ["b"]
    assert all(len(o.lines) == 2 for o in completed)


async def test_history_appends_in_order(store: Store) -> None:
    """History reads back oldest first, per order, with its JSON detail."""
    entries = [HistoryEntry("o-1", at(i), "webhook", "APPLY", S.CREATED, S.APPROVED,
                            {"event_id": f"WH-{i}", "n": i}) for i in (3, 1, 2)]
    async with store.transaction() as uow:
        for entry in entries:
            await uow.append_history(entry)
        await uow.append_history(HistoryEntry("o-2", T0, "api", "NOTE", S.CREATED, S.CREATED))
    async with store.transaction() as uow:
        got = await uow.history("o-1")
        other = await uow.history("o-2")
    assert got == sorted(entries, key=lambda e: e.at)
    assert other == [HistoryEntry("o-2", T0, "api", "NOTE", S.CREATED, S.CREATED, {})]


async def test_announcements_put_if_absent(store: Store) -> None:
    """A second announcement with the same key returns False and writes nothing."""
    async with store.transaction() as uow:
        assert await uow.add_announcement(announcement("order.completed:o-1"), "msg-1", T0)
    async with store.transaction() as uow:
        assert not await uow.add_announcement(announcement("order.completed:o-1"), "msg-2",
                                              at(1))
        assert await uow.add_announcement(announcement("refund:R-1"), "msg-3", at(2))
        messages = await uow.outbox_for_order("o-1")
    assert [(m.id, m.key) for m in messages] == [("msg-1", "order.completed:o-1"),
                                                 ("msg-3", "refund:R-1")]
    first = messages[0]
    assert (first.status, first.attempts, first.next_attempt_at, first.created_at) == \
        ("pending", 0, T0, T0)
    assert (first.lease_owner, first.lease_until) == (None, None)
    assert first.payload == announcement("x").payload and first.type == "order.completed"


async def test_operation_put_claim_finish(store: Store) -> None:
    """Operations are put once; a claim takes a lapsed lease only; finishing releases it."""
    op = ProviderOperation("capture:o-1:1", "o-1", "capture", "pending", T0, T0)
    async with store.transaction() as uow:
        assert await uow.put_operation(op)
        assert not await uow.put_operation(dataclasses.replace(op, kind="refund"))
        assert await uow.claim_operation(op.key, at(0), lease_until=at(30))
        assert not await uow.claim_operation(op.key, at(10), lease_until=at(40))  # lease live
        assert await uow.claim_operation(op.key, at(31), lease_until=at(60))  # lease lapsed
        assert not await uow.claim_operation("missing", at(31), lease_until=at(60))
    async with store.transaction() as uow:
        await uow.finish_operation(op.key, "succeeded", {"capture_id": "CAP-1"}, None, at(40))
        assert not await uow.claim_operation(op.key, at(100), lease_until=at(130))  # not pending
        with pytest.raises(NotFoundError):
            await uow.finish_operation("missing", "failed", None, {"name": "X"}, at(40))
        got = await uow.get_operation(op.key)
        assert await uow.get_operation("missing") is None
    assert got == dataclasses.replace(op, status="succeeded", updated_at=at(40),
                                      result={"capture_id": "CAP-1"})


async def test_refunds_round_trip(store: Store) -> None:
    """Refunds insert once, update their status and provider id, and list per order."""
    first = Refund("r-1", "o-1", Money(500, "USD"), "pending", "refund:r-1", T0, T0)
    second = Refund("r-2", "o-1", Money(1, "JPY"), "pending", "refund:r-2", at(1), at(1),
                    reason="damaged")
    async with store.transaction() as uow:
        await uow.insert_refund(first)
        await uow.insert_refund(second)
        with pytest.raises(ConflictError):
            await uow.insert_refund(first)
    done = dataclasses.replace(first, status="completed", provider_refund_id="PR-1",
                               updated_at=at(9))
    async with store.transaction() as uow:
        await uow.update_refund(done)
        with pytest.raises(NotFoundError):
            await uow.update_refund(dataclasses.replace(first, id="r-404"))
        assert await uow.get_refund("r-1") == done
        assert await uow.get_refund("r-404") is None
        assert await uow.refunds_for_order("o-1") == [done, second]
        assert await uow.refunds_for_order("o-2") == []


async def test_idempotency_put_get_complete(store: Store) -> None:
    """A key is put once, read back, completed with its answer, and stays done."""
    record = idem()
    async with store.transaction() as uow:
        assert await uow.put_idempotency(record)
        assert not await uow.put_idempotency(idem(created=at(5), request_hash="other"))
        assert await uow.get_idempotency(record.scope, record.key, at(1)) == record
        await uow.complete_idempotency(record.scope, record.key, "o-1", 201, {"id": "o-1"})
        await uow.delete_idempotency(record.scope, record.key)  # a done answer is kept
        got = await uow.get_idempotency(record.scope, record.key, at(2))
        assert not await uow.lock_idempotency(record.scope, record.key, at(100), at(130))
        with pytest.raises(NotFoundError):
            await uow.complete_idempotency(record.scope, "missing", None, 500, {})
    assert got == dataclasses.replace(record, status="done", locked_until=None,
                                      resource_id="o-1", response_status=201,
                                      response_body={"id": "o-1"})


async def test_idempotency_expired_reads_absent_and_is_replaced(store: Store) -> None:
    """An expired record reads as absent and a new put replaces it; an unexpired one stays."""
    async with store.transaction() as uow:
        assert await uow.put_idempotency(idem(ttl=60))
        await uow.complete_idempotency(idem().scope, "k-1", "o-1", 201, {"id": "o-1"})
        assert await uow.get_idempotency(idem().scope, "k-1", at(59)) is not None
        assert await uow.get_idempotency(idem().scope, "k-1", at(60)) is None
        assert not await uow.put_idempotency(idem(created=at(59), request_hash="early"))
        fresh = idem(created=at(60), request_hash="h-2")
        assert await uow.put_idempotency(fresh)
        assert await uow.get_idempotency(fresh.scope, "k-1", at(61)) == fresh


async def test_idempotency_lock_takeover_and_delete(store: Store) -> None:
    """A lapsed in-flight lock can be taken over once; delete forgets an in-flight record."""
    record = idem(lock=30)
    async with store.transaction() as uow:
        assert await uow.put_idempotency(record)
        assert not await uow.lock_idempotency(record.scope, record.key, at(10), at(40))
        assert await uow.lock_idempotency(record.scope, record.key, at(31), at(61))
        assert not await uow.lock_idempotency(record.scope, record.key, at(32), at(62))
        got = await uow.get_idempotency(record.scope, record.key, at(32))
        assert got is not None and got.locked_until == at(61)
        await uow.delete_idempotency(record.scope, record.key)
        assert await uow.get_idempotency(record.scope, record.key, at(33)) is None
        assert await uow.put_idempotency(idem(created=at(33)))


async def test_rollback_on_exception_writes_nothing(store: Store) -> None:
    """An exception inside a unit of work undoes every write it made, and is re-raised."""
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.transaction() as uow:
            await uow.insert_order(make_order("o-1"))
            await uow.append_history(HistoryEntry("o-1", T0, "api", "NOTE", S.CREATED,
                                                  S.CREATED))
            assert await uow.add_announcement(announcement("k"), "msg-1", T0)
            assert await uow.put_operation(
                ProviderOperation("op-1", "o-1", "create", "pending", T0, T0))
            await uow.insert_refund(Refund("r-1", "o-1", Money(5, "USD"), "pending", "op", T0,
                                           T0))
            assert await uow.put_idempotency(idem())
            raise Boom
    async with store.transaction() as uow:
        assert await uow.get_order("o-1") is None
        assert await uow.list_orders() == []
        assert await uow.history("o-1") == []
        assert await uow.outbox_for_order("o-1") == []
        assert await uow.get_operation("op-1") is None
        assert await uow.get_refund("r-1") is None
        assert await uow.get_idempotency(idem().scope, "k-1", T0) is None


async def test_unit_of_work_ends_with_its_transaction(store: Store) -> None:
    """A unit of work cannot be used after its transaction has committed."""
    async with store.transaction() as uow:
        pass
    with pytest.raises(RuntimeError, match="ended"):
        await uow.get_order("o-1")


async def test_naive_datetimes_are_refused(store: Store) -> None:
    """A naive datetime is a ValueError, never stored as a guess at its zone."""
    async with store.transaction() as uow:
        with pytest.raises(ValueError, match="naive"):
            await uow.get_idempotency("s", "k", datetime(2025, 1, 1))  # noqa: DTZ001


async def test_concurrent_compare_and_set_has_one_winner(store: Store) -> None:
    """Of N concurrent updates from the same version, exactly one commits; the rest conflict."""
    order = make_order("o-1")
    async with store.transaction() as uow:
        await uow.insert_order(order)

    async def attempt(n: int) -> bool:
        try:
            async with store.transaction() as uow:
                await uow.update_order(order.evolve(at(n), needs_attention=f"writer {n}"), 1)
                await asyncio.sleep(0.01)  # hold the row so the others really overlap
            return True
        except ConflictError:
            return False

    results = await asyncio.gather(*(attempt(n) for n in range(8)))
    assert results.count(True) == 1
    async with store.transaction() as uow:
        got = await uow.get_order("o-1")
    assert got is not None and got.version == 2
    assert got.needs_attention == f"writer {results.index(True)}"


async def test_concurrent_read_modify_write_loses_no_update(store: Store) -> None:
    """N concurrent read-then-update units of work, retried on conflict, all land."""
    # On SQLite this is what fails with "database is locked" unless each unit of work takes
    # the write lock when it begins (BEGIN IMMEDIATE).
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1"))

    async def bump(n: int) -> int:
        for attempt in range(50):
            try:
                async with store.transaction() as uow:
                    current = await uow.get_order("o-1")
                    assert current is not None
                    await asyncio.sleep(0.002)  # widen the read-to-write window
                    await uow.update_order(current.evolve(at(n)), current.version)
                return attempt
            except ConflictError:
                continue
        raise AssertionError(f"task {n} never got its update in")

    await asyncio.gather(*(bump(n) for n in range(8)))
    async with store.transaction() as uow:
        got = await uow.get_order("o-1")
    assert got is not None and got.version == 9


async def test_concurrent_announcements_write_once(store: Store) -> None:
    """Of N concurrent announcements with one key, exactly one is written."""
    async def attempt(n: int) -> bool:
        # A store that can only check the key at commit (DynamoDB) fails the losers' units
        # with a ConflictError there: nothing of theirs is written, as with a False.
        with contextlib.suppress(ConflictError):
            async with store.transaction() as uow:
                written = await uow.add_announcement(announcement("order.completed:o-1"),
                                                     f"msg-{n}", at(n))
                await asyncio.sleep(0.01)  # keep the insert uncommitted while others arrive
            return written
        return False

    results = await asyncio.gather(*(attempt(n) for n in range(8)))
    assert results.count(True) == 1
    async with store.transaction() as uow:
        messages = await uow.outbox_for_order("o-1")
    assert [m.id for m in messages] == [f"msg-{results.index(True)}"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_unusable_database_is_a_storage_error(backend: str, tmp_path: Path) -> None:
    """A database that cannot be used (not a database file, no server) raises StorageError."""
    if backend == "sqlite":
        # Not a missing directory: aiosqlite then stops its worker thread without waiting for
        # it, which can outlive the test's event loop.
        (tmp_path / "junk.db").write_bytes(b"this is not an SQLite database" * 100)
        url = f"sqlite+aiosqlite:///{tmp_path / 'junk.db'}"
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/paywire?connect_timeout=2"
    store = SqlStore(url)
    try:
        with pytest.raises(StorageError):
            async with store.transaction():
                pass
    finally:
        await store.close()
