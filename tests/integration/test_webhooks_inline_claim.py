"""A delivery's confirmation is queued leased to the process that runs it at once: no claim.

The ingest's own transaction queues the confirmation task already leased to this process's truth
fetcher (`WebhookIngest.receive(inline=True)`, the API's call), and the background run after the
answer takes the task as handed, with no claim transaction of its own (`UPDATE ... RETURNING`
on the task, the order read again: 4-5 round trips on PostgreSQL). What the claim protected still
holds: a process that dies after its commit leaves the task to the queue once the short lease
lapses, and a task of the same id already pending is not run without claiming it. On SQLite and
PostgreSQL, against the emulator delivering to a recorder (paywire hears only what a test
sends); the statements are counted on SQLAlchemy's engine events, the lease on a test clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from apikit import Paywire, buy, serve, settings_for
from paywire.bootstrap import Container, build
from paywire.bootstrap.container import inline_claim
from paywire.domain.money import Money
from paywire.domain.order import Intent, OrderLine, OrderStatus
from paywire.settings import Settings
from paywire.store.sql import observe
from testkit import MovingClock, two_app_config
from webhookkit import (
    Delivery,
    Recording,
    collide,
    eventually,
    order,
    outbox,
    post,
    quiet,
    recording,
    truth_tasks,
)
from webhookstack import backend_database

S = OrderStatus
CAPTURED = "PAYMENT.CAPTURE.COMPLETED"


@dataclass
class Rig(Recording):
    """PayPal delivering to a recorder, and a served paywire (no truth fetcher loop, no
    reconciler: only the inline confirmation runs) on the module's database."""

    paywire: Paywire
    data_dir: Path

    @property
    def db(self) -> str:
        """paywire's database."""
        return self.paywire.database_url

    def settings(self) -> Settings:
        """Settings for another paywire process on the rig's database."""
        return settings_for(self.emulator, self.db, self.data_dir,
                            paypal_webhook_id=self.webhook_id, truth_fetch_enabled=False,
                            reconcile_enabled=False)

    def gets(self, since: int) -> list[str]:
        """The API GETs paywire made at the emulator since request `since`."""
        return [e.path for e in self.emulator.emu.request_log[since:]
                if e.method == "GET" and not e.path.startswith("/v1/notifications/certs/")]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Rig]:
    """The rig on each SQL backend."""
    data_dir = tmp_path_factory.mktemp(f"inline-{request.param}")
    with recording(two_app_config()) as rec, backend_database(request.param, data_dir) as url, \
            serve(rec.emulator, url, data_dir, paypal_webhook_id=rec.webhook_id,
                  truth_fetch_enabled=False, reconcile_enabled=False) as pw:
        yield Rig(rec.emulator, rec.recorder, rec.paypal, rec.webhook_id, pw, data_dir)


@contextmanager
def truth_writes() -> Iterator[list[tuple[str, Any]]]:
    """Every INSERT and UPDATE of a truth task this process (the served paywire included)
    sends meanwhile: (statement, parameters). SQLite's go through SQLAlchemy's engines (their
    `before_cursor_execute` event), PostgreSQL's straight to psycopg (`observe.observing`)."""
    seen: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def keep(statement: str, parameters: Any) -> None:
        head = " ".join(statement.split()[:3]).upper()
        if head in ("INSERT INTO TRUTH_TASKS", "UPDATE TRUTH_TASKS SET"):
            with lock:
                seen.append((" ".join(statement.split()), parameters))

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
             executemany: bool) -> None:
        keep(statement, parameters)

    def sent(statement: str, parameters: Any, several: bool) -> None:
        keep(statement, parameters)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", note)
    try:
        with observe.observing(sent):
            yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", note)


def _inserted(statement: str, parameters: Any, column: str) -> Any:
    """The value an INSERT gives `column` (named or positional parameters)."""
    if isinstance(parameters, dict):
        return parameters[column]
    columns = statement.split("(", 1)[1].split(")", 1)[0].split(",")
    return parameters[[c.strip().strip('"') for c in columns].index(column)]


async def _done(r: Rig, order_id: str) -> None:
    async def probe() -> bool:
        tasks = [t for t in await truth_tasks(r.db) if t.order_id == order_id]
        return bool(tasks) and all(t.status == "done" for t in tasks)

    await eventually(probe, f"the confirmation of {order_id}")


async def test_a_delivery_is_confirmed_without_a_claim(rig: Rig) -> None:
    """A genuine capture event posted to paywire is answered `confirming` and confirmed in the
    background with one GET and no claim: the task's only writes are the ingest's insert
    (leased) and the outcome recorded with PayPal's answer; the order completes once."""
    r = rig
    async with httpx.AsyncClient(base_url=r.paywire.url, timeout=30) as c:
        bought = await buy(c, r.emulator)
    capture_id = await r.paypal.capture(bought["provider_order_id"])
    await quiet(r.emulator)
    genuine = r.held(capture_id, CAPTURED)
    mark = len(r.emulator.emu.request_log)
    with truth_writes() as writes:
        answer = await post(r.paywire.webhook_url, genuine)
        assert answer.status_code == 200 and answer.json()["outcome"] == "confirming"
        await _done(r, bought["id"])
    done = await order(r.db, bought["id"])
    assert done.status is S.COMPLETED and done.capture_id == capture_id
    assert [m.type for m in await outbox(r.db, bought["id"])] == ["order.completed"]
    assert r.gets(mark) == [f"/v2/checkout/orders/{bought['provider_order_id']}"]
    kinds = [w.split(" ")[0] for w, _ in writes]
    assert kinds == ["INSERT", "UPDATE"], writes
    assert not [w for w, _ in writes if "RETURNING" in w.upper()], writes  # no claim
    assert _inserted(*writes[0], "lease_owner") is not None, writes[0]  # queued leased
    assert _inserted(*writes[0], "lease_until") is not None, writes[0]
    [task] = [t for t in await truth_tasks(r.db) if t.order_id == bought["id"]]
    assert task.attempts == 1 and task.lease_owner is None


@asynccontextmanager
async def process(r: Rig, clock: MovingClock) -> AsyncIterator[Container]:
    """Another paywire process on the rig's database (its own truth fetcher owner), on
    `clock`."""
    c = await build(r.settings(), clock=clock)
    try:
        yield c
    finally:
        await c.aclose()


async def _captured_at_paypal(r: Rig, c: Container) -> tuple[str, str, Delivery]:
    """An order made through `c`, approved and captured at PayPal directly: (our id, capture
    id, PayPal's capture event, held back)."""
    made = await c.checkout.create_order(
        [OrderLine("mug", "Mug", 1, Money.parse("12.00", "USD"))], Intent.CAPTURE)
    assert made.provider_order_id is not None
    await r.paypal.approve(made.provider_order_id)
    capture_id = await r.paypal.capture(made.provider_order_id)
    await quiet(r.emulator)
    return made.id, capture_id, r.held(capture_id, CAPTURED)


async def test_a_died_process_s_handed_task_is_taken_once_its_lease_lapses(rig: Rig) -> None:
    """A delivery's task is queued leased to the receiving process for the inline bound (the
    inline timeout plus the start allowance, here 12 s); that process dies before running it:
    another process's queue leaves it alone until the lease lapses, then takes it and the
    order completes once."""
    r = rig
    clock = MovingClock()
    async with process(r, clock) as dead, process(r, clock) as queue:
        assert dead.webhooks is not None
        order_id, capture_id, genuine = await _captured_at_paypal(r, dead)
        clock.at = datetime.now(UTC)
        outcome = await dead.webhooks.receive(genuine.headers, genuine.body, inline=True)
        assert outcome.outcome == "confirming", outcome
        assert outcome.handed is not None and outcome.handed.order.id == order_id
        task = outcome.handed.task
        assert task.id == outcome.confirm_task
        assert (task.lease_owner, task.lease_until) == (dead.truth.owner,
                                                        clock.now() + timedelta(seconds=12))
        [stored] = [t for t in await truth_tasks(r.db) if t.order_id == order_id]
        assert (stored.status, stored.lease_owner, stored.lease_until) == (
            "pending", task.lease_owner, task.lease_until)
        # `dead` never runs it: killed after its commit.
        assert await queue.truth.run_once() == 0
        clock.advance(seconds=11.9)
        assert await queue.truth.run_once() == 0
        assert (await order(r.db, order_id)).status is S.CREATED
        clock.advance(seconds=0.2)
        assert await queue.truth.run_once() == 1
    done = await order(r.db, order_id)
    assert done.status is S.COMPLETED and done.capture_id == capture_id
    assert [m.type for m in await outbox(r.db, order_id)] == ["order.completed"]
    [closed] = [t for t in await truth_tasks(r.db) if t.order_id == order_id]
    assert (closed.status, closed.attempts, closed.lease_owner) == ("done", 1, None)


async def test_a_pending_task_of_the_same_id_is_claimed_not_run_as_handed(rig: Rig) -> None:
    """A different body under a stored event id (a CRC-matched forgery), delivered again while
    its first confirmation still holds the task: the second delivery's task is pending already,
    so nothing is handed over, and the claim by id (the API's fallback) runs nothing while that
    lease lives, no GET; once it lapses the claim takes it and PayPal's answer contradicts the
    forgery, which changes nothing. Nor does a fetcher run a task leased to another."""
    r = rig
    clock = MovingClock()
    async with process(r, clock) as first, process(r, clock) as second:
        assert first.webhooks is not None and second.webhooks is not None
        order_id, capture_id, genuine = await _captured_at_paypal(r, first)
        clock.at = datetime.now(UTC)
        stored = await first.webhooks.receive(genuine.headers, genuine.body, inline=True)
        assert stored.handed is not None
        event = json.loads(genuine.body)
        event["resource"] = {**event["resource"], "id": "4FAKECAPTURE0000X"}
        forged = collide(genuine.body, event)
        once = await first.webhooks.receive(genuine.headers, forged, inline=True)
        assert once.outcome == "confirming" and once.handed is not None, once
        again = await second.webhooks.receive(genuine.headers, forged, inline=True)
        assert again.outcome == "confirming" and again.handed is None, again
        assert again.confirm_task == once.handed.task.id
        with pytest.raises(ValueError, match="not leased"):
            await second.truth.confirm_handed(once.handed.task, once.handed.order)
        mark = len(r.emulator.emu.request_log)
        assert not await second.truth.confirm_now(again.confirm_task)  # `first` holds it
        assert r.gets(mark) == []
        assert await first.truth.confirm_handed(stored.handed.task, stored.handed.order)
        assert (await order(r.db, order_id)).capture_id == capture_id
        clock.advance(seconds=12.1)  # `first` died before running the forgery's
        assert await second.truth.confirm_now(again.confirm_task)
    done = await order(r.db, order_id)
    assert done.status is S.COMPLETED and done.capture_id == capture_id
    assert [m.type for m in await outbox(r.db, order_id)] == ["order.completed"]
    tasks = {t.id: t for t in await truth_tasks(r.db) if t.order_id == order_id}
    assert tasks[again.confirm_task].status == "done"
    assert tasks[stored.handed.task.id].status == "done"


class _StaleSnapshots:
    """The store as an ingest sees it when another delivery of the same event commits between
    its duplicate check (a snapshot, which then read nothing) and its own transaction."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Any]:
        async with self._store.snapshot() as view:
            yield _Unread(view)


class _Unread:
    def __init__(self, view: Any) -> None:
        self._view = view

    def __getattr__(self, name: str) -> Any:
        return getattr(self._view, name)

    async def get_inbox_event(self, provider: str, event_id: str) -> None:
        return None  # read before the other delivery's commit


async def test_an_event_stored_after_the_duplicate_check_is_read_again(rig: Rig) -> None:
    """The ingest's transaction trusts its snapshot's "not stored" and reads the inbox no
    second time. If the event was stored in between, its insert finds the row: the unit is
    undone and run again reading it, so the same body is a duplicate (nothing written twice)
    and a different body under that event id is still confirmed on its own."""
    r = rig
    clock = MovingClock()
    async with process(r, clock) as first, process(r, clock) as late:
        assert first.webhooks is not None and late.webhooks is not None
        order_id, capture_id, genuine = await _captured_at_paypal(r, first)
        clock.at = datetime.now(UTC)
        stored = await first.webhooks.receive(genuine.headers, genuine.body, inline=True)
        assert stored.outcome == "confirming" and stored.handed is not None
        late.webhooks.store = _StaleSnapshots(late.webhooks.store)  # type: ignore[assignment]
        again = await late.webhooks.receive(genuine.headers, genuine.body, inline=True)
        assert again.outcome == "duplicate", again
        event = json.loads(genuine.body)
        event["resource"] = {**event["resource"], "id": "4FAKECAPTURE0000Y"}
        forged = await late.webhooks.receive(genuine.headers, collide(genuine.body, event),
                                             inline=True)
        assert forged.outcome == "confirming", forged
        assert forged.reason is not None and "a different body" in forged.reason, forged
        assert forged.handed is not None
        assert await first.truth.confirm_handed(stored.handed.task, stored.handed.order)
        assert await late.truth.confirm_handed(forged.handed.task, forged.handed.order)
    done = await order(r.db, order_id)
    assert done.status is S.COMPLETED and done.capture_id == capture_id
    assert [m.type for m in await outbox(r.db, order_id)] == ["order.completed"]
    tasks = [t for t in await truth_tasks(r.db) if t.order_id == order_id]
    assert sorted(t.status for t in tasks) == ["done", "done"]


def test_the_inline_lease_is_the_inline_bound_never_longer_than_a_claim(tmp_path: Path
                                                                        ) -> None:
    """The inline lease is the inline timeout plus the start allowance, capped at the truth
    fetcher's own lease; with inline confirmation off, nothing is queued leased."""
    def claim(**values: Any) -> timedelta | None:
        settings = Settings.load(_env_file=None, paypal_env="emulator", data_dir=tmp_path,
                                 **values)
        found = inline_claim(settings, "w-1")
        return None if found is None else found.lease

    assert claim() == timedelta(seconds=12)
    assert claim(webhook_confirm_inline_timeout_seconds=30) == timedelta(seconds=32)
    assert claim(truth_fetch_lease_seconds=2, paypal_timeout_seconds=2) == timedelta(seconds=2)
    assert claim(webhook_confirm_inline=False) is None
