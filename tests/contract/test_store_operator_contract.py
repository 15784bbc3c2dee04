"""The dashboard's store ports (`OperatorReads`, `AuditLog`, `DeliveryLog`) behave alike on every
backend (the `store` fixture: SQLite, PostgreSQL, DynamoDB on moto), and the SQL searches walk
the indexes migration 0006 adds (their query plans, on SQLite and PostgreSQL).

Searches: each filter alone and together, newest first, keyset pages that cover every match
exactly once, and a search whose matches are rare answering short pages that resume where the
walk stopped (never an unbounded walk).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import (
    AuditEntry,
    DeliveryAttempt,
    InboxEvent,
    OrderFilter,
    ProviderOperation,
    Store,
)
from paywire.store.dynamo import operator as dynamo_operator
from paywire.store.sql import operator as sql_operator

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
S = OrderStatus


def _order(n: int, *, status: S = S.CREATED, provider: str = "paypal", minor: int = 1000,
           currency: str = "USD", flag: str | None = None) -> Order:
    order = Order.new(f"o-{n:03d}", Intent.CAPTURE,
                      [OrderLine("mug", "Mug", 1, Money(minor, currency))],
                      T0 + timedelta(minutes=n), provider=provider)
    return dataclasses.replace(order, status=status, needs_attention=flag)


async def _insert(store: Store, orders: list[Order]) -> None:
    for i in range(0, len(orders), 20):
        async with store.transaction() as uow:
            for order in orders[i:i + 20]:
                await uow.insert_order(order)


async def _all(store: Store, where: OrderFilter, limit: int) -> tuple[list[str], int]:
    """Every order the search finds, page by page: the ids and how many calls it took."""
    seen: list[str] = []
    before = None
    calls = 0
    while True:
        calls += 1
        async with store.snapshot() as uow:
            page = await uow.search_orders(where, limit=limit, before=before)
        seen += [o.id for o in page.orders]
        if page.next_before is None:
            return seen, calls
        assert calls < 200, "a search that never ends"
        before = page.next_before


def _ids(orders: list[Order]) -> list[str]:
    return [o.id for o in sorted(orders, key=lambda o: (o.created_at, o.id), reverse=True)]


async def test_search_filters_and_pages_alike(store: Store) -> None:
    """Each filter keeps exactly its orders, newest first, and pages cover them once."""
    orders = [_order(n, status=S.COMPLETED if n % 3 == 0 else S.CREATED,
                     provider="aps" if n % 4 == 0 else "paypal",
                     minor=500 + 100 * n, currency="SAR" if n == 7 else "USD",
                     flag="stuck:PENDING" if n % 5 == 0 else None) for n in range(1, 31)]
    await _insert(store, orders)
    cases = {
        "all": (OrderFilter(), lambda o: True),
        "status": (OrderFilter(status=S.COMPLETED), lambda o: o.status is S.COMPLETED),
        "provider": (OrderFilter(provider="aps"), lambda o: o.provider == "aps"),
        "attention": (OrderFilter(needs_attention=True), lambda o: o.needs_attention),
        "dates": (OrderFilter(created_from=T0 + timedelta(minutes=10),
                              created_to=T0 + timedelta(minutes=20)),
                  lambda o: T0 + timedelta(minutes=10) <= o.created_at
                  < T0 + timedelta(minutes=20)),
        "amount": (OrderFilter(min_minor=1000, max_minor=2000, currency="USD"),
                   lambda o: 1000 <= o.amount.minor <= 2000 and o.amount.currency == "USD"),
        "currency": (OrderFilter(currency="SAR"), lambda o: o.amount.currency == "SAR"),
        "together": (OrderFilter(status=S.CREATED, provider="paypal", needs_attention=True,
                                 created_from=T0),
                     lambda o: (o.status is S.CREATED and o.provider == "paypal"
                                and o.needs_attention is not None)),
    }
    for name, (where, keeps) in cases.items():
        expected = _ids([o for o in orders if keeps(o)])
        for limit in (4, 50):
            found, _ = await _all(store, where, limit)
            assert found == expected, (name, limit)


async def test_flag_cleared_leaves_the_attention_queue(store: Store) -> None:
    """An order whose flag is cleared is no longer found by the needs-attention search."""
    await _insert(store, [_order(1, flag="undelivered:order.completed"), _order(2)])
    async with store.transaction() as uow:
        flagged = await uow.get_order("o-001")
        assert flagged is not None
        await uow.update_order(flagged.evolve(T0 + timedelta(hours=1), needs_attention=None),
                               flagged.version)
    found, _ = await _all(store, OrderFilter(needs_attention=True), 10)
    assert found == []


async def test_a_rare_match_is_found_in_bounded_steps(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """With at most 7 index entries read per call, a search for the one matching order among
    40 answers short pages that resume where the walk stopped, and finds it exactly once."""
    monkeypatch.setattr(sql_operator, "SCAN", 7)
    monkeypatch.setattr(dynamo_operator, "SCAN", 7)
    monkeypatch.setattr(dynamo_operator, "PAGE", 7)
    orders = [_order(n, minor=999_900 if n == 3 else 1000) for n in range(1, 41)]
    await _insert(store, orders)
    found, calls = await _all(store, OrderFilter(min_minor=999_000, currency="USD"), 5)
    assert found == ["o-003"]
    assert calls >= 40 // 7  # it was never one unbounded walk


async def test_an_orders_operations_and_events_are_read_by_order(store: Store) -> None:
    """`operations_for_order` and `inbox_for_order` give the order's own, oldest first."""
    await _insert(store, [_order(1), _order(2)])
    async with store.transaction() as uow:
        for key, order_id, minutes in (("o-001:capture:1", "o-001", 5),
                                       ("o-001:create", "o-001", 1), ("o-002:create", "o-002", 2)):
            await uow.put_operation(ProviderOperation(
                key=key, order_id=order_id, kind=key.split(":")[1], status="pending",
                created_at=T0 + timedelta(minutes=minutes),
                updated_at=T0 + timedelta(minutes=minutes)))
    async with store.transaction() as uow:
        await uow.finish_operation("o-001:create", "succeeded", {"id": "PP-1"}, None,
                                   T0 + timedelta(minutes=1, seconds=1))
        for event_id, order_id, minutes in (("WH-2", "o-001", 9), ("WH-1", "o-001", 3),
                                            ("WH-3", "o-002", 4), ("WH-4", None, 5)):
            await uow.put_inbox_event(InboxEvent(
                provider="paypal", event_id=event_id, event_type="PAYMENT.CAPTURE.COMPLETED",
                received_at=T0 + timedelta(minutes=minutes), body=b'{"id": "x"}',
                order_id=order_id))
    async with store.snapshot() as uow:
        ops = await uow.operations_for_order("o-001")
        events = await uow.inbox_for_order("o-001")
        none = await uow.operations_for_order("o-404")
    assert [(o.key, o.status, o.result) for o in ops] == [
        ("o-001:create", "succeeded", {"id": "PP-1"}), ("o-001:capture:1", "pending", None)]
    assert [e.event_id for e in events] == ["WH-1", "WH-2"]
    assert none == []


async def test_the_audit_log_appends_and_lists(store: Store) -> None:
    """Entries read back whole, per order oldest first, and newest first with keyset pages."""
    entries = [AuditEntry(id=f"aud_{n:02d}", at=T0 + timedelta(seconds=n), actor="ops (key_1)",
                          action="refund" if n % 2 else "login",
                          order_id="o-001" if n % 2 else None,
                          outcome="refused" if n == 3 else "ok",
                          detail={"amount": "5.00", "n": n}, trace_id="ab" * 16 if n == 1 else None)
               for n in range(1, 8)]
    async with store.transaction() as uow:
        for entry in entries:
            await uow.record_audit(entry)
    async with store.snapshot() as uow:
        mine = await uow.audit_for_order("o-001")
        first = await uow.list_audit(limit=4)
        rest = await uow.list_audit(limit=4, before=(first[-1].at, first[-1].id))
    assert mine == [e for e in entries if e.order_id == "o-001"]
    assert [e.id for e in first + rest] == [e.id for e in reversed(entries)]
    assert first[-1] == entries[3]


async def test_delivery_attempts_are_kept_per_order(store: Store) -> None:
    """Each attempt, with the shop's answer, read back per order in the order they happened."""
    attempts = [DeliveryAttempt(message_id="msg_1", order_id="o-001", at=T0, attempt=1,
                                outcome="pending", error="http: 503 from the shop",
                                message_type="order.completed", trace_id="cd" * 16),
                DeliveryAttempt(message_id="msg_1", order_id="o-001",
                                at=T0 + timedelta(seconds=5), attempt=2, outcome="delivered",
                                message_type="order.completed"),
                DeliveryAttempt(message_id="msg_2", order_id="o-002", at=T0, attempt=1,
                                outcome="dead", error="http: 410")]
    async with store.transaction() as uow:
        await uow.record_delivery_attempts(attempts[:2])
        await uow.record_delivery_attempts([])
    async with store.transaction() as uow:
        await uow.record_delivery_attempts(attempts[2:])
    async with store.snapshot() as uow:
        assert await uow.delivery_attempts("o-001") == attempts[:2]
        assert await uow.delivery_attempts("o-002") == attempts[2:]
        assert await uow.delivery_attempts("o-404") == []


async def test_a_snapshot_refuses_the_logs_writes(store: Store) -> None:
    """The audit and delivery logs are written in transactions only."""
    from paywire.domain.errors import StorageError

    entry = AuditEntry(id="aud_x", at=T0, actor="a", action="login")
    with pytest.raises(StorageError):
        async with store.snapshot() as uow:
            await uow.record_audit(entry)
    async with store.snapshot() as uow:
        assert await uow.list_audit() == []


# --- the query plans (SQL) ------------------------------------------------------------------


def _plan(url: str, sql: str, params: dict[str, object]) -> str:
    sync_url = sa.make_url(url)
    sync_url = sync_url.set(drivername="sqlite" if sync_url.get_backend_name() == "sqlite"
                            else "postgresql+psycopg")
    engine = sa.create_engine(sync_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: ask for
                rows = conn.execute(sa.text(f"EXPLAIN {sql}"), params).all()  # the index
                return "\n".join(str(r[0]) for r in rows)
            rows = conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"), params).all()
            return "\n".join(str(r[-1]) for r in rows)
    finally:
        engine.dispose()


PLANS = {
    "ix_orders_attention_created_at_id": "SELECT id FROM orders WHERE needs_attention IS NOT "
                                         "NULL ORDER BY created_at DESC, id DESC LIMIT 50",
    "ix_orders_status_created_at_id": "SELECT id FROM orders WHERE status = :s "
                                      "ORDER BY created_at DESC, id DESC LIMIT 50",
    "ix_orders_provider_created_at_id": "SELECT id FROM orders WHERE provider = :p "
                                        "ORDER BY created_at DESC, id DESC LIMIT 50",
    "ix_audit_log_order_id_at": "SELECT id FROM audit_log WHERE order_id = :o ORDER BY at",
    "ix_delivery_attempts_order_id_at_id":
        "SELECT id FROM delivery_attempts WHERE order_id = :o ORDER BY at, id",
    "ix_inbox_events_order_id_received_at":
        "SELECT event_id FROM inbox_events WHERE order_id = :o ORDER BY received_at",
}


def test_searches_walk_the_dashboards_indexes(store_url: str) -> None:
    """Each dashboard read is an index walk (docs/operating.md shows these plans): no sort of
    the table, no full scan, whatever the table's size."""
    url, backend = store_url, store_url.split(":")[0]
    params = {"s": "CREATED", "p": "paypal", "o": "o-001"}
    for index, sql in PLANS.items():
        plan = _plan(url, sql, params)
        assert index in plan, f"{backend}: {sql}\n{plan}"
        assert "TEMP B-TREE" not in plan and "Sort" not in plan.split("->")[0], plan
