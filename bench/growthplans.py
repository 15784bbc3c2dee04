"""Every query the SQL store issues, timed and explained on a seeded database (bench/growth.py).

Each method of the store port (`OpsUnitOfWork`) is called through a real `SqlStore` with
arguments naming rows that exist (a paid order from the middle of the history, its capture,
a refund, a delivered and a dead message, a stored webhook, ...) and, for listings, the
filters and cursors the API, the CLI and the background jobs pass: one transaction per call,
always rolled back, so the writes leave the database as seeded. The statements the store sends
are caught on their way to the driver; each is then explained with its own parameters
(SQLite `EXPLAIN QUERY PLAN`; PostgreSQL `EXPLAIN ANALYZE`, in a transaction rolled back).

A plan is flagged when it reads a whole table or index (`Statement.flags`); a plan that sorts
what it found, and the ratio of the two sizes' times, say whether an index could give the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import (
    AuditEntry,
    DeliveryAttempt,
    HistoryEntry,
    IdempotencyRecord,
    InboxEvent,
    OpsUnitOfWork,
    OrderFilter,
    ProviderOperation,
    ReconcileState,
    Refund,
    TruthTask,
    WebhookRejection,
)
from paywire.services.reconcile import DEFAULT_THRESHOLDS
from paywire.store.sql import SqlStore, observe, sync_url
from paywire.store.sql.tables import (
    idempotency_keys,
    inbox_events,
    orders,
    outbox,
    provider_operations,
    refunds,
    truth_tasks,
)

S = OrderStatus
OWNER = "growth-bench"


@dataclass
class Sample:
    """Rows of the seeded database the probes name (None where the database has none)."""

    now: datetime
    order: Order
    authorized: Order | None
    refund: Refund | None
    delivered: str
    dead: str | None
    operation: str
    idempotency: tuple[str, str] | None
    event: InboxEvent
    truth: str | None


Call = Callable[[OpsUnitOfWork, Sample], Awaitable[Any]]


def _new_order(s: Sample) -> Order:
    return Order.new("ord_growth_probe", Intent.CAPTURE,
                     [OrderLine("mug", "paywire mug", 1, Money(1250, "USD"))], s.now)


def _history(s: Sample) -> HistoryEntry:
    return HistoryEntry(order_id=s.order.id, at=s.now, source="api", verdict="NOTE",
                        from_status=s.order.status, to_status=s.order.status, detail={})


def _refund(s: Sample) -> Refund:
    return Refund(id="ref_growth_probe", order_id=s.order.id, amount=Money(100, "USD"),
                  status="pending", operation_key="ord:refund:probe", created_at=s.now,
                  updated_at=s.now)


def _stale(s: Sample) -> dict[OrderStatus, datetime]:
    return {status: s.now - wait for status, wait in DEFAULT_THRESHOLDS.items()}


def _need(value: Any, what: str) -> Any:
    if value is None:
        raise LookupError(f"the database has no {what}")
    return value


# Every method of the port, with the arguments its callers pass (the name before "[" is the
# method's; what follows says which of its uses this is).
PROBES: tuple[tuple[str, Call], ...] = (
    ("get_order", lambda u, s: u.get_order(s.order.id)),
    ("find_order_by_provider_id",
     lambda u, s: u.find_order_by_provider_id("paypal", s.order.provider_order_id or "")),
    ("find_order_by_capture_id", lambda u, s: u.find_order_by_capture_id(
        "paypal", s.order.capture_id or "")),
    ("find_order_by_capture_id[authorization]", lambda u, s: u.find_order_by_capture_id(
        "paypal", _need(s.authorized, "authorized order").authorization_id)),
    ("insert_order", lambda u, s: u.insert_order(_new_order(s))),
    ("update_order", lambda u, s: u.update_order(s.order.evolve(s.now), s.order.version)),
    ("list_orders", lambda u, s: u.list_orders(limit=51)),
    ("list_orders[before]", lambda u, s: u.list_orders(
        limit=51, before=(s.order.created_at, s.order.id))),
    ("list_orders[status]", lambda u, s: u.list_orders(status=S.COMPLETED, limit=51)),
    ("list_orders[rare status]", lambda u, s: u.list_orders(status=S.AUTHORIZED, limit=51)),
    ("list_orders[status, before]", lambda u, s: u.list_orders(
        status=S.COMPLETED, limit=51, before=(s.order.created_at, s.order.id))),
    ("append_history", lambda u, s: u.append_history(_history(s))),
    ("history", lambda u, s: u.history(s.order.id)),
    ("add_announcement", lambda u, s: u.add_announcement(Announcement(
        f"order.completed:{s.order.id}:probe", "order.completed", s.order.id, {}),
        "msg_growth_probe", s.now)),
    ("outbox_for_order", lambda u, s: u.outbox_for_order(s.order.id)),
    ("claim_outbox", lambda u, s: u.claim_outbox(OWNER, s.now, s.now + timedelta(minutes=1),
                                                 50)),
    ("finish_outbox", lambda u, s: u.finish_outbox(
        s.delivered, OWNER, status="delivered", attempts=1, next_attempt_at=None,
        last_error=None, now=s.now)),
    ("finish_outbox_many", lambda u, s: u.finish_outbox_many(
        [s.delivered, s.delivered], OWNER, status="delivered", attempts=1, next_attempt_at=None,
        last_error=None, now=s.now)),
    ("settle_outbox", lambda u, s: u.settle_outbox(s.delivered, status="delivered",
                                                   last_error=None, now=s.now)),
    ("get_outbox", lambda u, s: u.get_outbox(s.delivered)),
    ("list_outbox", lambda u, s: u.list_outbox(limit=51)),
    ("list_outbox[status dead]", lambda u, s: u.list_outbox(status="dead", limit=51)),
    ("list_outbox[status delivered]", lambda u, s: u.list_outbox(status="delivered",
                                                                 limit=51)),
    ("list_outbox[status pending]", lambda u, s: u.list_outbox(status="pending", limit=51)),
    ("list_outbox[status, before]", lambda u, s: u.list_outbox(
        status="delivered", limit=51, before=(s.order.created_at, "msg_"))),
    ("revive_outbox", lambda u, s: u.revive_outbox(_need(s.dead, "dead message"), s.now)),
    ("outbox_counts", lambda u, s: u.outbox_counts()),
    ("put_operation", lambda u, s: u.put_operation(ProviderOperation(
        key=f"{s.order.id}:probe", order_id=s.order.id, kind="capture", status="pending",
        created_at=s.now, updated_at=s.now))),
    ("get_operation", lambda u, s: u.get_operation(s.operation)),
    ("claim_operation", lambda u, s: u.claim_operation(s.operation, s.now,
                                                       s.now + timedelta(minutes=1))),
    ("finish_operation", lambda u, s: u.finish_operation(s.operation, "succeeded", {}, None,
                                                         s.now)),
    ("insert_refund", lambda u, s: u.insert_refund(_refund(s))),
    ("update_refund", lambda u, s: u.update_refund(_need(s.refund, "refund"))),
    ("get_refund", lambda u, s: u.get_refund(_need(s.refund, "refund").id)),
    ("refunds_for_order", lambda u, s: u.refunds_for_order(s.order.id)),
    ("find_refund_by_provider_id", lambda u, s: u.find_refund_by_provider_id(
        _need(s.refund, "refund").provider_refund_id)),
    ("pending_refunds", lambda u, s: u.pending_refunds(s.now - timedelta(hours=1), 100)),
    ("put_idempotency", lambda u, s: u.put_idempotency(IdempotencyRecord(
        scope="public|POST /v1/checkout/orders", key="growth-probe", request_hash="h",
        status="in_flight", created_at=s.now, expires_at=s.now + timedelta(days=1),
        locked_until=s.now + timedelta(seconds=30)))),
    ("get_idempotency", lambda u, s: u.get_idempotency(
        *_need(s.idempotency, "idempotency key"), s.now - timedelta(days=400))),
    ("lock_idempotency", lambda u, s: u.lock_idempotency(
        *_need(s.idempotency, "idempotency key"), s.now, s.now + timedelta(seconds=30))),
    ("complete_idempotency", lambda u, s: u.complete_idempotency(
        *_need(s.idempotency, "idempotency key"), s.order.id, 201, {})),
    ("delete_idempotency", lambda u, s: u.delete_idempotency(
        *_need(s.idempotency, "idempotency key"))),
    ("put_inbox_event", lambda u, s: u.put_inbox_event(dataclasses.replace(
        s.event, event_id="WH-GROWTH-PROBE", received_at=s.now))),
    ("get_inbox_event", lambda u, s: u.get_inbox_event("paypal", s.event.event_id)),
    ("list_inbox", lambda u, s: u.list_inbox(limit=51)),
    ("list_inbox[before]", lambda u, s: u.list_inbox(
        limit=51, before=(s.event.received_at, s.event.event_id))),
    ("record_rejection", lambda u, s: u.record_rejection(WebhookRejection(
        provider="paypal", transmission_id="growth-probe", received_at=s.now,
        check="signature", reason="probe"), 10_000)),
    ("list_rejections", lambda u, s: u.list_rejections(limit=51)),
    ("list_rejections[before]", lambda u, s: u.list_rejections(
        limit=51, before=(s.order.created_at, "~"))),
    ("enqueue_truth", lambda u, s: u.enqueue_truth(TruthTask(
        id="paypal:order:GROWTHPROBE", provider="paypal", kind="order",
        resource_id="GROWTHPROBE", reason="probe", created_at=s.now, next_attempt_at=s.now))),
    ("claim_truth_tasks", lambda u, s: u.claim_truth_tasks(
        OWNER, s.now, s.now + timedelta(minutes=2), 20)),
    ("claim_truth_task", lambda u, s: u.claim_truth_task(
        _need(s.truth, "truth task"), OWNER, s.now, s.now + timedelta(minutes=2))),
    ("finish_truth_task", lambda u, s: u.finish_truth_task(
        _need(s.truth, "truth task"), OWNER, status="done", attempts=1,
        next_attempt_at=s.now, last_error=None, now=s.now)),
    ("list_truth_tasks", lambda u, s: u.list_truth_tasks(limit=50)),
    ("list_truth_tasks[status]", lambda u, s: u.list_truth_tasks(status="pending", limit=50)),
    ("reconcile_candidates", lambda u, s: u.reconcile_candidates(_stale(s), s.now, 100)),
    ("save_reconcile_state", lambda u, s: u.save_reconcile_state(ReconcileState(
        order_id=s.order.id, attempts=1, next_check_at=s.now, first_checked_at=s.now,
        last_checked_at=s.now))),
    ("clear_reconcile_state", lambda u, s: u.clear_reconcile_state(s.order.id)),
    # the dashboard's reads and logs (ports/operator.py)
    ("search_orders", lambda u, s: u.search_orders(OrderFilter(), limit=50)),
    ("search_orders[status]", lambda u, s: u.search_orders(
        OrderFilter(status=OrderStatus.COMPLETED), limit=50)),
    ("search_orders[rare status]", lambda u, s: u.search_orders(
        OrderFilter(status=OrderStatus.VOIDED), limit=50)),
    ("search_orders[needs attention]", lambda u, s: u.search_orders(
        OrderFilter(needs_attention=True), limit=50)),
    ("search_orders[amount, dates]", lambda u, s: u.search_orders(OrderFilter(
        min_minor=1000, max_minor=2000, created_from=s.now - timedelta(days=30),
        created_to=s.now), limit=50)),
    ("search_orders[before]", lambda u, s: u.search_orders(
        OrderFilter(), limit=50, before=(s.order.created_at, s.order.id))),
    ("operations_for_order", lambda u, s: u.operations_for_order(s.order.id)),
    ("inbox_for_order", lambda u, s: u.inbox_for_order(s.order.id)),
    ("record_audit", lambda u, s: u.record_audit(AuditEntry(
        id="aud_growth_probe", at=s.now, actor="probe", action="reconcile",
        order_id=s.order.id))),
    ("audit_for_order", lambda u, s: u.audit_for_order(s.order.id)),
    ("list_audit", lambda u, s: u.list_audit(limit=50)),
    ("list_audit[before]", lambda u, s: u.list_audit(limit=50, before=(s.now, "~"))),
    ("record_delivery_attempts", lambda u, s: u.record_delivery_attempts([DeliveryAttempt(
        message_id=s.delivered, order_id=s.order.id, at=s.now, attempt=1,
        outcome="delivered")])),
    ("delivery_attempts", lambda u, s: u.delivery_attempts(s.order.id)),
    # the health read model (ports/health.py)
    ("outbox_due", lambda u, s: u.outbox_due(s.now)),
    ("outbox_dead_count", lambda u, s: u.outbox_dead_count()),
    ("truth_queue_depth", lambda u, s: u.truth_queue_depth()),
    ("needs_attention_count", lambda u, s: u.needs_attention_count()),
    ("orders_in_status_since", lambda u, s: u.orders_in_status_since(
        "CREATED", s.now - timedelta(hours=4))),
    ("orders_in_status_since[pending]", lambda u, s: u.orders_in_status_since(
        "PENDING", s.now - timedelta(days=7))),
    ("webhooks_received_since", lambda u, s: u.webhooks_received_since(
        s.now - timedelta(hours=1))),
    ("webhook_rejections_since", lambda u, s: u.webhook_rejections_since(
        s.now - timedelta(hours=1))),
)


def unprobed() -> list[str]:
    """Methods of the port no probe calls (a new one should get a probe)."""
    probed = {name.split("[")[0] for name, _ in PROBES}
    return sorted(n for n in dir(OpsUnitOfWork) if not n.startswith("_") and n not in probed)


# --- sampling the database -------------------------------------------------------------------


def _first(conn: sa.Connection, stmt: sa.Select[Any]) -> Any:
    return conn.execute(stmt.limit(1)).scalar()


async def sample(store: SqlStore, url: str, now: datetime) -> Sample:
    """Rows to name: the middle paid order (by creation), and the rest near it."""
    engine = sa.create_engine(sync_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            paid = conn.execute(sa.select(sa.func.count()).select_from(orders)
                                .where(orders.c.status == "COMPLETED")).scalar() or 0
            order_id = _first(conn, sa.select(orders.c.id).where(orders.c.status == "COMPLETED")
                              .order_by(orders.c.created_at).offset(paid // 2))
            authorized = _first(conn, sa.select(orders.c.id)
                                .where(orders.c.status == "AUTHORIZED"))
            refund = _first(conn, sa.select(refunds.c.id).order_by(refunds.c.id))
            delivered = _first(conn, sa.select(outbox.c.id)
                               .where(outbox.c.order_id == order_id))
            dead = _first(conn, sa.select(outbox.c.id).where(outbox.c.status == "dead"))
            operation = _first(conn, sa.select(provider_operations.c.key)
                               .where(provider_operations.c.order_id == order_id))
            key = conn.execute(sa.select(idempotency_keys.c.scope, idempotency_keys.c.key)
                               .where(idempotency_keys.c.resource_id == order_id)).first()
            if key is None:
                key = conn.execute(sa.select(idempotency_keys.c.scope,
                                             idempotency_keys.c.key).limit(1)).first()
            event = _first(conn, sa.select(inbox_events.c.event_id)
                           .where(inbox_events.c.order_id == order_id))
            truth = _first(conn, sa.select(truth_tasks.c.id)
                           .where(truth_tasks.c.status == "pending"))
            truth = truth or _first(conn, sa.select(truth_tasks.c.id))
    finally:
        engine.dispose()
    async with store.transaction() as uow:
        order = await uow.get_order(order_id)
        auth = await uow.get_order(authorized) if authorized else None
        found = await uow.get_refund(refund) if refund else None
        stored = await uow.get_inbox_event("paypal", event)
    assert order is not None and stored is not None
    return Sample(now=now, order=order, authorized=auth, refund=found, delivered=delivered,
                  dead=dead, operation=operation,
                  idempotency=(key[0], key[1]) if key else None, event=stored, truth=truth)


# --- timing, catching the statements, explaining them -----------------------------------------


SCANNED = 10_000  # rows a PostgreSQL plan node may read before it is flagged


@dataclass
class Statement:
    """One statement the store sent, with the parameters it was sent with."""

    sql: str
    params: Any
    plan: list[str] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        """What in its plan reads a whole table or index: SQLite's `SCAN t` (without an index,
        or through one with no LIMIT to stop it); on PostgreSQL a scan that read at least
        `SCANNED` rows (what it returned and what its filter removed)."""
        found = []
        limited = re.search(r"\bLIMIT\b", self.sql) is not None
        for i, line in enumerate(self.plan):
            text = line.strip().removeprefix("->").strip()
            if m := re.match(r"SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?$", text):
                if m.group(2) is None:
                    found.append(f"full scan of {m.group(1)}")
                elif not limited:
                    found.append(f"reads all of {m.group(2)}")
            elif m := re.match(r"(?:Parallel )?(Seq Scan on|Index Scan(?: Backward)? using|"
                               r"Index Only Scan using|Bitmap Heap Scan on) (\w+)"
                               r".* rows=(\d+) loops=(\d+)", text):
                read = int(m.group(3)) * int(m.group(4)) + _removed(self.plan, i)
                if read >= SCANNED:
                    kind = "full scan" if m.group(1) == "Seq Scan on" else "scan"
                    found.append(f"{kind} of {m.group(2)} ({read:,} rows)")
        return found

    @property
    def sorts(self) -> bool:
        """Whether the plan sorts all it read rather than reading it in order (SQLite's temp
        B-tree for the whole ORDER BY, PostgreSQL's Sort node; not their partial sorts)."""
        return any("USE TEMP B-TREE FOR ORDER BY" in line
                   or line.strip().removeprefix("->").strip().startswith("Sort (")
                   for line in self.plan)


def _removed(plan: list[str], node: int) -> int:
    """Rows the filter of the PostgreSQL plan node at line `node` removed."""
    indent = len(plan[node]) - len(plan[node].lstrip())
    for line in plan[node + 1:]:
        if len(line) - len(line.lstrip()) <= indent or line.strip().startswith("->"):
            break
        if m := re.search(r"Rows Removed by (?:Filter|Index Recheck): (\d+)", line):
            return int(m.group(1))
    return 0


@dataclass
class Probed:
    """One port method's use: its median time and its statements."""

    name: str
    seconds: float | None  # None: the database had nothing for it to name
    statements: list[Statement]
    error: str | None = None

    @property
    def flags(self) -> list[str]:
        """Every statement's flags."""
        return [f for st in self.statements for f in st.flags]


class _Rollback(Exception):
    pass


async def probe_all(url: str, now: datetime, repeats: int) -> list[Probed]:
    """Time every probe (median of `repeats`, each in a transaction rolled back) and explain
    the statements it sent."""
    store = SqlStore(url)
    caught: list[Statement] = []

    def catch(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        first = statement.lstrip().split(None, 1)[0].upper()
        if not executemany and first in ("SELECT", "UPDATE", "DELETE", "INSERT", "WITH"):
            caught.append(Statement(statement, parameters))

    def sent(statement: str, parameters: Any, several: bool) -> None:
        catch(None, None, statement, parameters, None, several)

    # SQLite: the store's own writer and reader engines (sqlite3, no async driver);
    # PostgreSQL: statements sent straight to psycopg (`observe.observing`).
    engines = store._sync_engines if store.dialect == "sqlite" else ()
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", catch)
    observed = contextlib.ExitStack()
    observed.enter_context(observe.observing(sent))
    results = []
    try:
        s = await sample(store, url, now)
        for name, call in PROBES:
            times = []
            error = None
            caught.clear()
            for attempt in range(repeats + 1):  # the first (untimed) one is caught
                started = time.perf_counter()
                try:
                    async with store.transaction() as uow:
                        await call(uow, s)
                        raise _Rollback
                except _Rollback:
                    if attempt:
                        times.append(time.perf_counter() - started)
                except LookupError as exc:
                    error = str(exc)
                    break
                if attempt == 0:
                    statements = list(caught)
            if error is not None:
                results.append(Probed(name, None, [], error))
                continue
            results.append(Probed(name, statistics.median(times), statements))
    finally:
        observed.close()
        await store.close()
    explain(url, [st for p in results for st in p.statements])
    return results


def explain(url: str, statements: list[Statement]) -> None:
    """Fill in each statement's plan, on a connection of its own (a plain INSERT has none
    worth reading: it is left out)."""
    statements = [st for st in statements
                  if not st.sql.lstrip().upper().startswith("INSERT") or " SELECT " in st.sql]
    parsed = sync_url(url)
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        conn = sqlite3.connect(parsed.database or "")
        try:
            for st in statements:
                rows = conn.execute("EXPLAIN QUERY PLAN " + st.sql, st.params).fetchall()
                depth: dict[int, int] = {0: -1}
                for node, parent, _, detail in rows:
                    depth[node] = depth.get(parent, -1) + 1
                    st.plan.append("  " * depth[node] + detail)
        finally:
            conn.close()
        return
    import psycopg

    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        for st in statements:
            try:
                with conn.transaction(force_rollback=True):
                    rows = conn.execute("EXPLAIN (ANALYZE, COSTS OFF) " + st.sql,
                                        st.params).fetchall()
            except psycopg.Error as exc:  # it needed the rows its unit of work wrote first
                st.plan = [f"(not explained: {type(exc).__name__})"]
                continue
            st.plan = [row[0] for row in rows]


def run(url: str, now: datetime, repeats: int) -> list[Probed]:
    """`probe_all` from synchronous code."""
    return asyncio.run(probe_all(url, now, repeats))
