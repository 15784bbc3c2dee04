"""The outbox worker over real HTTP and every store: at least once, one message id per fact.

A shop receiver (Starlette on a loopback port) verifies every request with
`paywire.verify_delivery` and records what it saw: which message ids, how many times, and how
many deliveries of one id were in flight at once. Outbox rows are seeded with
`uow.add_announcement` on a fresh, migrated database per module and backend (DynamoDB: a fresh
table on the session's moto server, with the AWS environment pointing there for the module).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apikit import dynamodb_table, open_store
from paywire import verify_delivery
from paywire.bootstrap import SystemClock
from paywire.delivery.http_callback import HttpCallbackTarget, delivery_body
from paywire.delivery.python_callable import CallableTarget
from paywire.domain.errors import SignatureError
from paywire.domain.facts import Announcement
from paywire.ports import DeliveryTarget, OutboxMessage, Store
from paywire.services.fulfilment import OutboxWorker, no_jitter
from paywire.store import migrate
from paywire.testing import ServerThread
from webhookstack import backend_database

SECRET = "whsec_" + base64.b64encode(b"paywire-outbox-test-secret-0123").decode()
FAST = {"base_delay": timedelta(milliseconds=20), "max_delay": timedelta(milliseconds=200),
        "jitter": no_jitter}


class Shop:
    """A shop's fulfilment endpoint: verifies, deduplicates, and can misbehave on demand."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[str] = []  # webhook-id of every verified request, in order
        self.accepted: Counter[str] = Counter()  # ids answered 2xx (or processed, when blocked)
        self.duplicates = 0
        self.bad = 0
        self.fail_first = 0  # answer 503 to this many requests
        self.fail_every = 0  # and to every n-th request after that
        self.status: int | None = None  # answer this to everything
        self.inflight: Counter[str] = Counter()
        self.max_inflight = 0
        self.delay = 0.0
        self.block: threading.Event | None = None  # the first request waits for it
        self.first = threading.Event()
        self.server = ServerThread(Starlette(routes=[Route("/fulfil", self.fulfil,
                                                           methods=["POST"])]))

    @property
    def url(self) -> str:
        """The endpoint's URL."""
        return f"{self.server.url}/fulfil"

    async def fulfil(self, request: Request) -> Response:
        body = await request.body()
        try:
            delivery = verify_delivery(body, request.headers, SECRET,
                                       seen=lambda i: self.accepted[i] > 0)
        except SignatureError:
            self.bad += 1
            return Response(status_code=400)
        with self.lock:
            n = len(self.received)
            self.received.append(delivery.id)
            self.duplicates += delivery.duplicate
            self.inflight[delivery.id] += 1
            self.max_inflight = max(self.max_inflight, self.inflight[delivery.id])
        try:
            if self.block is not None and not self.first.is_set():
                self.first.set()
                await asyncio.to_thread(self.block.wait, 30)
            elif self.delay:
                await asyncio.sleep(self.delay * (n % 3))
            if self.status is not None:
                return Response(status_code=self.status)
            if n < self.fail_first or (self.fail_every and n % self.fail_every == 0):
                return Response(status_code=503)
            with self.lock:
                self.accepted[delivery.id] += 1
            return Response(status_code=204)
        finally:
            with self.lock:
                self.inflight[delivery.id] -= 1


# A store opened from the module's URL, the way `paywire worker` opens it (bootstrap).
OPEN_STORE = ("from paywire.store.dynamo import DynamoStore\n"
              "from paywire.store.sql import SqlStore\n"
              "def open_store(url):\n"
              "    if url.startswith('dynamodb://'):\n"
              "        return DynamoStore.from_url(url)\n"
              "    return SqlStore(url)\n")


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "dynamodb"])
def database(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated database for the module, on each backend."""
    if request.param == "dynamodb":
        with dynamodb_table(request.getfixturevalue("moto_server"), "paywire-outbox") as url:
            yield url
        return
    with backend_database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    """The real store on the module's database."""
    store = open_store(database)
    yield store
    await store.close()


@pytest.fixture
def shop() -> Iterator[Shop]:
    """The shop's receiver on a free loopback port."""
    shop = Shop()
    shop.server.start()
    yield shop
    if shop.block is not None:
        shop.block.set()
    shop.server.stop()


async def seed(store: Store, n: int, *, age: timedelta = timedelta(0)) -> list[str]:
    """`n` fresh order.completed announcements in the outbox, 20 per unit of work (a DynamoDB
    transaction holds at most 100 items); their message ids."""
    tag = secrets.token_hex(4)
    now = datetime.now(UTC) - age
    ids = [f"msg_{tag}_{i:04d}" for i in range(n)]
    for first in range(0, n, 20):
        async with store.transaction() as uow:
            for i, message_id in enumerate(ids[first:first + 20], start=first):
                order_id = f"ord_{tag}_{i}"
                payload = {"type": "order.completed", "order_id": order_id, "amount": "10.00",
                           "currency": "USD"}
                assert await uow.add_announcement(
                    Announcement(f"order.completed:{order_id}", "order.completed", order_id,
                                 payload), message_id, now)
    return ids


async def outcome(store: Store, ids: list[str]) -> list[OutboxMessage]:
    """The messages as stored now."""
    async with store.transaction() as uow:
        found = [await uow.get_outbox(i) for i in ids]
    assert all(m is not None for m in found)
    return [m for m in found if m is not None]


async def drain(workers: list[OutboxWorker], store: Store, ids: list[str],
                timeout: float = 30) -> list[OutboxMessage]:
    """Run the workers side by side until none of `ids` is pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def spin(worker: OutboxWorker) -> None:
        while loop.time() < deadline:
            if not await worker.run_once():
                await asyncio.sleep(0.01)
            async with store.transaction() as uow:
                # One listing rather than a read per message (a round trip each on DynamoDB).
                pending = {m.id for m in await uow.list_outbox(status="pending", limit=1000)}
            if not pending & set(ids):
                return

    await asyncio.gather(*(spin(w) for w in workers))
    return await outcome(store, ids)


def worker(store: Store, targets: list[DeliveryTarget], owner: str = "w",
           **options: object) -> OutboxWorker:
    """An outbox worker with fast retries and no jitter."""
    settings: dict[str, object] = {**FAST, **options}
    return OutboxWorker(store, targets, SystemClock(), owner=f"{owner}-{secrets.token_hex(3)}",
                        **settings)  # type: ignore[arg-type]


async def test_shop_down_then_up_hears_every_fact_under_one_id(store: Store,
                                                              shop: Shop) -> None:
    """A shop answering 503 for a while then 2xx gets every fact, each under one webhook-id."""
    ids = await seed(store, 6)
    shop.fail_first = 15
    target = HttpCallbackTarget(shop.url, SECRET, timeout=5)
    try:
        done = await drain([worker(store, [target])], store, ids)
    finally:
        await target.aclose()
    assert [m.status for m in done] == ["delivered"] * 6
    assert set(shop.received) == set(ids)  # every request carried one of the facts' own ids
    assert all(shop.accepted[i] == 1 for i in ids)  # accepted once each; retries reused the id
    assert len(shop.received) > len(ids) and shop.bad == 0
    assert all(m.attempts >= 1 and m.last_error is None for m in done)


async def test_kill_9_mid_delivery_resends_under_the_same_id(store: Store, shop: Shop,
                                                            database: str) -> None:
    """A worker killed while the shop holds its request loses nothing: the next one re-sends
    the same message id, which the shop recognises as a duplicate."""
    ids = await seed(store, 3)
    shop.block = threading.Event()
    script = (
        "import asyncio, os, sys\n"
        "from datetime import timedelta\n"
        "from paywire.bootstrap import SystemClock\n"
        "from paywire.delivery.http_callback import HttpCallbackTarget\n"
        "from paywire.services.fulfilment import OutboxWorker\n"
        + OPEN_STORE +
        "async def main():\n"
        "    target = HttpCallbackTarget(sys.argv[2], os.environ['SHOP_SECRET'], timeout=60)\n"
        "    w = OutboxWorker(open_store(sys.argv[1]), [target], SystemClock(), owner='doomed',\n"
        "                     lease=timedelta(seconds=1), batch=1)\n"
        "    await w.run(asyncio.Event(), 0.02)\n"
        "asyncio.run(main())\n")
    proc = subprocess.Popen([sys.executable, "-c", script, database, shop.url],  # noqa: S603
                            env={**os.environ, "SHOP_SECRET": SECRET})
    try:
        assert await asyncio.to_thread(shop.first.wait, 30), "the worker never delivered"
        blocked = shop.received[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with shop.lock:
        shop.accepted[blocked] += 1  # the shop processed it; the worker never heard back
    shop.block.set()
    target = HttpCallbackTarget(shop.url, SECRET, timeout=5)
    try:
        done = await drain([worker(store, [target], "survivor")], store, ids)
    finally:
        await target.aclose()
    assert [m.status for m in done] == ["delivered"] * 3
    assert Counter(shop.received)[blocked] == 2  # re-sent under the same id...
    assert shop.duplicates == 1  # ...which verify_delivery reported as seen
    assert set(shop.received) == set(ids)


async def test_a_batch_records_each_outcome_without_waiting_for_the_slowest(
        store: Store, shop: Shop) -> None:
    """Outcomes are recorded as deliveries finish: while the shop holds one message of a
    batch, the batch's others are already delivered in the store; then that one is too."""
    ids = await seed(store, 4)
    shop.block = threading.Event()
    target = HttpCallbackTarget(shop.url, SECRET, timeout=30)
    w = worker(store, [target], batch=4, concurrency=4, lease=timedelta(seconds=60))
    round_ = asyncio.create_task(w.run_once())
    try:
        assert await asyncio.to_thread(shop.first.wait, 30), "the worker never delivered"
        held = shop.received[0]
        others = [i for i in ids if i != held]
        for _ in range(300):
            done = await outcome(store, others)
            if all(m.status == "delivered" for m in done):
                break
            await asyncio.sleep(0.05)
        assert [m.status for m in done] == ["delivered"] * 3
        assert not round_.done()  # the held delivery is still in flight...
        assert (await outcome(store, [held]))[0].status == "pending"
        shop.block.set()
        assert await asyncio.wait_for(round_, 30) == 4
    finally:
        shop.block.set()
        await target.aclose()
    assert [m.status for m in await outcome(store, ids)] == ["delivered"] * 4  # ...then it too
    assert w.counters["delivered"] == 4 and w.counters["lease_lost"] == 0


async def test_four_workers_deliver_each_row_to_one_claimer_at_a_time(
        store: Store, shop: Shop, database: str) -> None:
    """Four workers on one outbox never have the same message in flight twice."""
    ids = await seed(store, 80)
    shop.fail_every, shop.delay = 5, 0.002
    opened = [open_store(database) for _ in range(4)]  # four stores, as four processes
    targets = [HttpCallbackTarget(shop.url, SECRET, timeout=5) for _ in range(4)]
    workers = [worker(s, [t], f"w{i}", batch=8, lease=timedelta(seconds=20))
               for i, (s, t) in enumerate(zip(opened, targets, strict=True))]
    try:
        done = await drain(workers, store, ids, timeout=40)
    finally:
        for s, t in zip(opened, targets, strict=True):
            await t.aclose()
            await s.close()
    assert [m.status for m in done] == ["delivered"] * len(ids)
    assert shop.max_inflight == 1
    assert all(shop.accepted[i] == 1 for i in ids) and shop.duplicates == 0
    assert sum(w.counters["delivered"] for w in workers) == len(ids)
    assert sum(w.counters["lease_lost"] for w in workers) == 0
    assert sum(1 for w in workers if w.counters["delivered"]) >= 2  # the work was shared


async def test_too_old_goes_dead_with_an_error_log(store: Store, shop: Shop,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A message past the max age that still fails goes dead, logged at ERROR and counted;
    reviving it delivers it."""
    ids = await seed(store, 1, age=timedelta(days=4))
    shop.status = 503
    target = HttpCallbackTarget(shop.url, SECRET, timeout=5)
    w = worker(store, [target], max_age=timedelta(days=3))
    try:
        with caplog.at_level(logging.ERROR, logger="paywire.outbox"):
            [dead] = await drain([w], store, ids)
        assert dead.status == "dead" and dead.attempts == 1
        assert dead.last_error is not None and "503" in dead.last_error
        assert w.counters["dead"] == 1
        [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert record.getMessage() == f"outbox message {ids[0]} dead"
        assert record.__dict__["message_id"] == ids[0]
        assert record.__dict__["order_id"] == dead.order_id
        assert record.__dict__["attempts"] == 1 and "503" in record.__dict__["last_error"]
        async with store.transaction() as uow:
            assert await uow.revive_outbox(ids[0], datetime.now(UTC))
        shop.status = None
        w.max_age = timedelta(days=30)
        [revived] = await drain([w], store, ids)
    finally:
        await target.aclose()
    assert revived.status == "delivered"


async def test_gone_is_dead_at_once(store: Store, shop: Shop) -> None:
    """410 Gone from the shop is not retried: the message goes dead on the first attempt."""
    ids = await seed(store, 1)
    shop.status = 410
    target = HttpCallbackTarget(shop.url, SECRET, timeout=5)
    try:
        [dead] = await drain([worker(store, [target])], store, ids)
    finally:
        await target.aclose()
    assert dead.status == "dead" and dead.attempts == 1 and len(shop.received) == 1


CALLS: list[tuple[str, str, str]] = []


def record_call(message_id: str, kind: str, payload: dict[str, object]) -> None:
    """A shop's embedded fulfilment function: fails on its first call, then records."""
    if not CALLS:
        CALLS.append(("failed", kind, message_id))
        raise RuntimeError("shop database busy")
    CALLS.append((message_id, kind, str(payload["order_id"])))


async def test_callable_and_http_targets_get_every_message(store: Store, shop: Shop) -> None:
    """With two targets a message is delivered once both accept it; a failing callable makes
    the whole message retry, under the same id at both."""
    CALLS.clear()
    ids = await seed(store, 2)
    http = HttpCallbackTarget(shop.url, SECRET, timeout=5)
    call = CallableTarget(f"{__name__}:record_call")
    try:
        done = await drain([worker(store, [http, call], batch=1)], store, ids)
    finally:
        await http.aclose()
    assert [m.status for m in done] == ["delivered"] * 2
    assert sorted(c[0] for c in CALLS[1:]) == ids
    assert CALLS[0] == ("failed", "order.completed", ids[0])
    assert Counter(shop.received)[ids[0]] == 2 and shop.duplicates == 1


def test_verify_delivery_refuses_forgeries() -> None:
    """verify_delivery accepts paywire's signature and refuses a changed body, another secret
    or a stale timestamp; the target's repr never shows the secret."""
    target = HttpCallbackTarget("http://127.0.0.1:9/x", SECRET)
    message = OutboxMessage(id="msg_1", key="k", type="order.completed", order_id="ord_1",
                            payload={"a": 1}, created_at=datetime.now(UTC))
    body = delivery_body(message)
    headers = target.headers(message, body, datetime.now(UTC))
    ok = verify_delivery(body, headers, SECRET, seen={"msg_1"}.__contains__)
    assert (ok.id, ok.order_id, ok.data, ok.duplicate) == ("msg_1", "ord_1", {"a": 1}, True)
    other = "whsec_" + base64.b64encode(b"another-secret-entirely-0123456").decode()
    stale = target.headers(message, body, datetime.now(UTC) - timedelta(minutes=6))
    for b, h, s in ((body.replace(b"ord_1", b"ord_2"), headers, SECRET),
                    (body, headers, other), (body, stale, SECRET),
                    (body, {**headers, "webhook-signature": "garbage"}, SECRET)):
        with pytest.raises(SignatureError):
            verify_delivery(b, h, s)
    assert SECRET not in repr(target) and SECRET[6:] not in repr(vars(target))


async def test_paywire_worker_command_delivers_and_stops_on_sigint(
        store: Store, shop: Shop, database: str, tmp_path: os.PathLike[str]) -> None:
    """`paywire worker` (a real process) delivers the outbox, then exits 0 on SIGINT."""
    ids = await seed(store, 3)
    env = {**os.environ, "PAYWIRE_DATABASE_URL": database, "PAYWIRE_FULFILMENT_URL": shop.url,
           "PAYWIRE_FULFILMENT_SECRET": SECRET, "PAYWIRE_OUTBOX_INTERVAL_SECONDS": "0.1",
           "PAYWIRE_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "paywire.cli", "worker"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(200):
            if set(ids) <= set(shop.accepted):
                break
            await asyncio.sleep(0.05)
        assert set(ids) <= set(shop.accepted), "the worker delivered nothing"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
