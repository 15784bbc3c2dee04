"""APS feedback over real HTTP: duplicates, reorders, forgeries, refunds, open results, recovery.

One paywire per backend (SQLite and PostgreSQL, and DynamoDB on a moto server for the cases that
lean hardest on the store: a fresh database or table for the module each) takes card payments
through the bundled APS emulator; the emulator's direct transaction feedback and
notification feedback reach paywire's `/webhooks/aps` (retries 0.1 s apart). The truth fetcher
and the reconciler do not run in the background: a test runs them when it means to, with
paywire's own wiring (`bootstrap.build`). Faults come from the emulator's rules (a feedback
dropped, an answer held) or from posting signed parameters ourselves in another order or shape.
Every case asserts through the API and through the store port: the order, its history, the
announcements by type, the inbox and the truth queue.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from apikit import (
    ADMIN,
    Paywire,
    dynamodb_table,
    postgres_database,
    serve,
    settings_for,
    sqlite_url,
)
from apskit import (
    aps_control,
    aps_fault,
    aps_overrides,
    aps_requests,
    aps_state,
    clear_aps_faults,
    feedback_of,
    pay_on_page,
    point_feedback,
    settled_feedback,
    sign_feedback,
    until,
)
from paywire.bootstrap import build
from paywire.domain.errors import ProviderError
from paywire.domain.order import OrderStatus
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.emulator.aps.cards import DECLINE, PENDING, UNCERTAIN
from paywire.emulator.aps.feedback import Feedback
from paywire.ports import HistoryEntry, InboxEvent, TruthTask
from paywire.providers.aps.signature import delivery_key
from paywire.services.reconcile import YOUNG_404, ReconcileReport
from paywire.settings import Settings
from paywire.testing import EmulatorServer
from testkit import CLIENT_ID, CLIENT_SECRET
from webhookkit import drain_truth, outbox, read, truth_tasks
from webhookkit import order as stored_order

S = OrderStatus
RETRIES = (0.1, 0.1, 0.1)  # the emulator's feedback retry delays (seconds)
MUG = 1250  # the catalog's mug, in USD minor units


# --- the module's world ------------------------------------------------------------------------


BACKENDS = ("sqlite", "postgresql")
# The cases resting most on the store's conditional writes (the inbox's put-if-absent, refunds
# found by provider id, the truth queue's re-open) also run on DynamoDB (moto server); the rest
# would add time and no store path these do not take.
ON_DYNAMODB = frozenset({"test_duplicate_feedback_is_stored_and_announced_once",
                         "test_refund_notification_before_the_purchase_feedback_converges",
                         "test_two_equal_partial_refunds_count_twice_and_once_each"})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each case on SQLite and PostgreSQL; those in ON_DYNAMODB on DynamoDB as well."""
    if "database" in metafunc.fixturenames:
        extra = ("dynamodb",) if metafunc.function.__name__ in ON_DYNAMODB else ()
        metafunc.parametrize("database", BACKENDS + extra, indirect=True, scope="module")


@pytest.fixture(scope="module")
def database(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A fresh database for the module on one backend, and paywire's data directory."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"aps-feedback-{backend}")
    if backend == "sqlite":
        yield sqlite_url(data_dir), data_dir
    elif backend == "postgresql":
        with postgres_database() as url:
            yield url, data_dir
    else:
        with dynamodb_table(request.getfixturevalue("moto_server"), "paywire-aps") as url:
            yield url, data_dir


@pytest.fixture(scope="module")
def emulator(database: tuple[str, Path]) -> Iterator[EmulatorServer]:
    """The emulator (PayPal unused; APS under /aps) of one backend's run."""
    server = EmulatorServer(EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)],
                                           seed=4242))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class World:
    """paywire taking cards through the emulator's APS account, and a buyer's HTTP client."""

    emulator: EmulatorServer
    paywire: Paywire
    data_dir: Path
    http: httpx.Client

    @property
    def db(self) -> str:
        """paywire's database."""
        return self.paywire.database_url

    def settings(self, **overrides: Any) -> Settings:
        """Settings like the running paywire's (for building its parts in the test)."""
        values = {**aps_overrides(self.emulator), "truth_fetch_enabled": False,
                  "reconcile_enabled": False, **overrides}
        return settings_for(self.emulator, self.db, self.data_dir, **values)

    def create(self, *, intent: str = "CAPTURE", quantity: int = 1) -> dict[str, Any]:
        """A card order (mugs at 12.50 USD) through the checkout API."""
        r = self.http.post(f"{self.paywire.url}/v1/checkout/orders", json={
            "items": [{"sku": "mug", "quantity": quantity}], "intent": intent,
            "provider": "aps", "customer_email": "buyer@example.com"})
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        assert created["provider"] == "aps" and created["checkout_form"] is not None
        return created

    def get(self, order_id: str) -> dict[str, Any]:
        """The whole order through the API (the operator's view: with the key)."""
        r = self.http.get(f"{self.paywire.url}/v1/orders/{order_id}", headers=ADMIN)
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found

    def becomes(self, order_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the order (through the API) has `status`; the order."""
        until(lambda: self.get(order_id)["status"] == status, timeout)
        return self.get(order_id)

    def post_feedback(self, body: bytes,
                      content_type: str = "application/json") -> httpx.Response:
        """Deliver a feedback body to paywire ourselves, as APS would."""
        return self.http.post(f"{self.paywire.url}/webhooks/aps", content=body,
                              headers={"Content-Type": content_type})

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """An admin API call (the API key)."""
        return self.http.request(method, f"{self.paywire.url}{path}", headers=ADMIN, **kw)


@pytest.fixture(scope="module")
def world(emulator: EmulatorServer, database: tuple[str, Path]) -> Iterator[World]:
    """paywire on the module's database (no background truth fetcher or reconciler)."""
    url, data_dir = database
    with serve(emulator, url, data_dir, truth_fetch_enabled=False, reconcile_enabled=False,
               **aps_overrides(emulator)) as pw, httpx.Client(timeout=15) as http:
        yield World(emulator, pw, data_dir, http)


@pytest.fixture(autouse=True)
def feedback_on(world: World) -> Iterator[None]:
    """Both feedback channels aimed at paywire, no fault rule, before and after each test."""
    point_feedback(world.emulator, world.paywire.url, retry_delays=RETRIES)
    yield
    clear_aps_faults(world.emulator)
    point_feedback(world.emulator, world.paywire.url, retry_delays=RETRIES)


# --- reading paywire's store through the port --------------------------------------------------


async def history(db: str, order_id: str) -> list[HistoryEntry]:
    """The order's history, oldest first."""
    async def get(uow: Any) -> list[HistoryEntry]:
        return list(await uow.history(order_id))

    return await read(db, get)


async def inbox_event(db: str, event_id: str) -> InboxEvent | None:
    """A stored APS delivery."""
    async def get(uow: Any) -> InboxEvent | None:
        found: InboxEvent | None = await uow.get_inbox_event("aps", event_id)
        return found

    return await read(db, get)


async def inbox_of(db: str, order_id: str) -> list[InboxEvent]:
    """The APS deliveries stored for one order."""
    async def get(uow: Any) -> list[InboxEvent]:
        return [e for e in await uow.list_inbox(limit=1000)
                if e.provider == "aps" and e.order_id == order_id]

    return await read(db, get)


async def announced(db: str, order_id: str) -> list[str]:
    """The order's announcement types, oldest first."""
    return [m.type for m in await outbox(db, order_id)]


async def tasks_of(db: str, order_id: str) -> list[TruthTask]:
    """The truth-fetch tasks about one order."""
    return [t for t in await truth_tasks(db) if t.order_id == order_id]


async def reconcile_once(settings: Settings) -> ReconcileReport:
    """One reconciliation pass with paywire's own wiring."""
    container = await build(settings)
    try:
        return await container.reconciler.run_once()
    finally:
        await container.aclose()


def event_id(fb: Feedback) -> str:
    """The inbox key paywire gives a feedback: the hash of its signed parameters."""
    return delivery_key(fb.params)


def verdicts(lines: list[HistoryEntry]) -> list[tuple[str, str, str]]:
    """(source, verdict, to status) of each history line."""
    return [(h.source, h.verdict, str(h.to_status)) for h in lines]


def minor(money: dict[str, str] | None) -> int:
    """An API money object in minor units (USD; none is 0)."""
    if money is None:
        return 0
    assert money["currency_code"] == "USD", money
    return round(float(money["value"]) * 100)


# --- 1. duplicates ----------------------------------------------------------------------------


async def test_duplicate_feedback_is_stored_and_announced_once(world: World) -> None:
    """The same feedback sent twice at once (an emulator fault rule), redelivered later,
    re-posted byte for byte, and re-serialised (form-encoded, JSON in another key order) is one
    event: every copy answered 200 (`duplicate` after the first), one inbox row, one history
    line, one order.completed."""
    w = world
    created = w.create()
    ref = f"{created['id']}-1"
    aps_fault(w.emulator, action="duplicate", event_type="^direct:PURCHASE$", count=1)
    returned = pay_on_page(w.http, created["checkout_form"])
    assert returned["response_code"] == "14000"
    done = w.becomes(created["id"], "COMPLETED")
    assert done["capture_id"] == returned["fort_id"] and minor(done["captured"]) == MUG
    [first] = settled_feedback(w.emulator, ref, channel="direct")
    assert first.status == "delivered" and first.last_status == 200
    copies = [a for a in list(aps_state(w.emulator).deliverer.attempts)
              if a.feedback_id == first.id]
    assert [(a.attempt, a.fault, a.status) for a in copies] == [(1, "duplicate", 200)] * 2

    aps_control(w.emulator, "POST", f"/transactions/{ref}/feedback", {"channel": "direct"})
    again = settled_feedback(w.emulator, ref, 2, channel="direct")
    assert again[1].body == first.body and again[1].status == "delivered"

    r = w.post_feedback(first.body, first.content_type)
    assert r.status_code == 200 and r.json() == {"outcome": "duplicate",
                                                 "event_id": event_id(first)}, r.text
    shuffled = list(reversed(first.params.items()))
    for body, ctype in ((urlencode(shuffled).encode(), "application/x-www-form-urlencoded"),
                        (json.dumps(dict(shuffled), indent=2).encode(), "application/json")):
        r = w.post_feedback(body, ctype)
        assert r.status_code == 200 and r.json()["outcome"] == "duplicate", (ctype, r.text)

    stored = await inbox_of(w.db, created["id"])
    assert [(e.event_id, e.status) for e in stored] == [(event_id(first), "applied")]
    assert stored[0].body == first.body
    assert [v for v in verdicts(await history(w.db, created["id"])) if v[0] == "webhook"] == [
        ("webhook", "APPLY", "COMPLETED")]
    assert await announced(w.db, created["id"]) == ["order.completed"]
    assert w.get(created["id"])["updated_at"] == done["updated_at"]


# --- 2. reordered -----------------------------------------------------------------------------


async def test_refund_notification_before_the_purchase_feedback_converges(
        world: World) -> None:
    """A back-office refund's notification arrives before the purchase's direct feedback (which
    the emulator drops, then sends again): the refund cannot count on an unpaid order, so it is
    queued for CHECK_STATUS; once the purchase lands and the truth is fetched, the order is
    PARTIALLY_REFUNDED with the refund counted once. Redeliveries change nothing."""
    w = world
    created = w.create(quantity=2)
    oid, ref = created["id"], f"{created['id']}-1"
    aps_fault(w.emulator, action="drop", event_type="^direct:PURCHASE$", count=1)
    returned = pay_on_page(w.http, created["checkout_form"])
    assert returned["response_code"] == "14000"
    [purchase] = settled_feedback(w.emulator, ref, channel="direct")
    assert purchase.status == "dropped"

    aps_control(w.emulator, "POST", f"/transactions/{ref}/refund", {"amount": 500})
    [refund] = settled_feedback(w.emulator, ref, channel="notification", command="REFUND")
    assert refund.status == "delivered"
    assert w.get(oid)["status"] == "CREATED"  # nothing paid yet that a refund could reduce
    stored = await inbox_event(w.db, event_id(refund))
    assert stored is not None and stored.status == "queued", stored

    aps_control(w.emulator, "POST", f"/transactions/{ref}/feedback", {"channel": "direct"})
    settled_feedback(w.emulator, ref, 2, channel="direct")
    w.becomes(oid, "COMPLETED")
    await drain_truth(w.settings())

    final = w.get(oid)
    assert (final["status"], minor(final["captured"]), minor(final["refunded"])) == (
        "PARTIALLY_REFUNDED", 2 * MUG, 500), final
    types = await announced(w.db, oid)
    assert types.count("order.completed") == 1 and types.count("order.partially_refunded") == 1

    # The refund's notification again, and the purchase's: nothing moves, nothing is announced.
    aps_control(w.emulator, "POST", f"/transactions/{ref}/feedback",
                {"channel": "notification"})
    aps_control(w.emulator, "POST", f"/transactions/{ref}/feedback", {"channel": "direct"})
    settled_feedback(w.emulator, ref, 5)
    await drain_truth(w.settings())
    assert w.get(oid) == final
    assert await announced(w.db, oid) == types


# --- 3. forged --------------------------------------------------------------------------------


async def test_forged_feedback_is_rejected_recorded_and_changes_nothing(world: World) -> None:
    """Feedback signed with the wrong phrase, altered after signing, signed for another merchant
    account, unsigned, or not feedback at all: 400 `webhook_rejected`, recorded with the check
    that failed (admin endpoint), the order untouched. The same parameters properly signed are
    accepted (the forgeries fail for what was done to them, nothing else)."""
    w = world
    created = w.create()
    oid = created["id"]
    before = await stored_order(w.db, oid)
    cred = aps_state(w.emulator).config.credentials
    genuine = {"command": "PURCHASE", "merchant_reference": f"{oid}-1", "amount": str(MUG),
               "currency": "USD", "language": "en", "customer_email": "buyer@example.com",
               "access_code": cred.access_code,
               "merchant_identifier": cred.merchant_identifier, "fort_id": "169996200000000001",
               "response_code": "14000", "response_message": "Success", "status": "14",
               "eci": "ECOMMERCE"}

    def as_json(params: dict[str, str]) -> bytes:
        return json.dumps(params).encode()

    signed = sign_feedback(w.emulator, genuine)
    wrong_phrase = {**genuine, "signature": sign_feedback(
        w.emulator, {**genuine, "x": "1"})["signature"]}
    forgeries: list[tuple[str, bytes, str, str]] = [
        ("wrong signature", as_json(wrong_phrase), "application/json", "signature"),
        ("added after signing", as_json({**signed, "amount": "1"}), "application/json",
         "signature"),
        ("a parameter more", as_json({**signed, "token_name": "x"}), "application/json",
         "signature"),
        ("another merchant", as_json(sign_feedback(
            w.emulator, {**genuine, "merchant_identifier": "OtherMid"})), "application/json",
         "merchant"),
        ("unsigned", as_json(genuine), "application/json", "signature"),
        ("not JSON", b"this is not json {", "application/json", "body"),
        ("a repeated field", urlencode([*signed.items(), ("status", "14")]).encode(),
         "application/x-www-form-urlencoded", "body"),
    ]
    for what, body, ctype, check in forgeries:
        r = w.post_feedback(body, ctype)
        assert r.status_code == 400, (what, r.text)
        error = r.json()["error"]
        assert error["code"] == "webhook_rejected" and error["details"]["check"] == check, (
            what, error)
        for secret in (cred.response_phrase, cred.request_phrase, cred.access_code):
            assert secret not in r.text, what

    page = w.admin("GET", "/v1/admin/webhook-rejections", params={"limit": 200})
    assert page.status_code == 200, page.text
    logged = {row["body_sha256"]: row for row in page.json()["data"]}
    for what, body, _, check in forgeries:
        row = logged.get(hashlib.sha256(body).hexdigest())
        assert row is not None, what
        assert (row["provider"], row["check"]) == ("aps", check), (what, row)
        assert row["reason"] and cred.response_phrase not in json.dumps(row), (what, row)

    after = await stored_order(w.db, oid)
    assert (after.status, after.version, after.capture_id) == (S.CREATED, before.version, None)
    assert await inbox_of(w.db, oid) == [] and await announced(w.db, oid) == []

    r = w.post_feedback(as_json(signed))
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    assert w.get(oid)["status"] == "COMPLETED"


# --- 4. two equal partial refunds --------------------------------------------------------------


async def test_two_equal_partial_refunds_count_twice_and_once_each(world: World) -> None:
    """Two refunds of 5.00 on a 25.00 order through the admin API: two maintenance references,
    two facts. The first one's notification arrives after the API answered (the emulator drops
    it, then sends it again); the second one's before (the S2S answer is held half a second). Each
    refund counts once, by whichever path saw it first: PARTIALLY_REFUNDED at 10.00, one
    announcement per refund; the notifications are stored as applied (nothing left to ask)."""
    w = world
    created = w.create(quantity=2)
    oid, ref = created["id"], f"{created['id']}-1"
    pay_on_page(w.http, created["checkout_form"])
    w.becomes(oid, "COMPLETED")

    aps_fault(w.emulator, action="drop", event_type="^notification:REFUND$", count=1)
    r1 = w.admin("POST", f"/v1/orders/{oid}/refunds", json={"amount": "5.00"})
    assert r1.status_code == 201 and r1.json()["status"] == "completed", r1.text
    assert r1.json()["order"]["status"] == "PARTIALLY_REFUNDED"
    [late] = settled_feedback(w.emulator, ref, channel="notification", command="REFUND")
    assert late.status == "dropped"
    aps_control(w.emulator, "POST", f"/transactions/{ref}/feedback",
                {"channel": "notification"})

    aps_fault(w.emulator, target="http", action="latency", path="^/FortAPI/paymentApi$",
              seconds=0.5, count=1)
    r2 = w.admin("POST", f"/v1/orders/{oid}/refunds", json={"amount": "5.00"})
    assert r2.status_code == 201 and r2.json()["status"] == "completed", r2.text
    notes = settled_feedback(w.emulator, ref, 3, channel="notification", command="REFUND")
    assert [f.status for f in notes] == ["dropped", "delivered", "delivered"]

    final = w.get(oid)
    assert (final["status"], minor(final["refunded"]), minor(final["refundable"])) == (
        "PARTIALLY_REFUNDED", 1000, 2 * MUG - 1000), final
    ids = {r1.json()["provider_refund_id"], r2.json()["provider_refund_id"]}
    assert len(ids) == 2
    calls = aps_requests(w.emulator, ref, "REFUND")
    assert [c.response_code for c in calls] == ["06000", "06000"]
    assert len({c.params["maintenance_reference"] for c in calls}) == 2
    types = await announced(w.db, oid)
    assert (types.count("order.completed"), types.count("order.partially_refunded")) == (
        1, 2), types

    async def refunds(uow: Any) -> list[Any]:
        return list(await uow.refunds_for_order(oid))

    rows = await read(w.db, refunds)
    assert sorted((r.status, r.amount.minor) for r in rows) == [("completed", 500)] * 2, rows
    assert {r.provider_refund_id for r in rows} == ids
    stored = [e for e in await inbox_of(w.db, oid) if e.event_type.startswith("REFUND.")]
    assert sorted(e.status for e in stored) == ["applied", "applied"], stored
    assert await tasks_of(w.db, oid) == []

    aps_control(w.emulator, "POST", f"/transactions/{ref}/feedback",
                {"channel": "notification"})
    settled_feedback(w.emulator, ref, 4, channel="notification", command="REFUND")
    assert w.get(oid) == final and await announced(w.db, oid) == types


# --- 5. uncertain -----------------------------------------------------------------------------


async def test_uncertain_purchase_is_settled_by_check_status(world: World) -> None:
    """An uncertain answer (15777) that in truth succeeded: the feedback is stored and queues a
    truth fetch (nothing guessed); the fetcher asks CHECK_STATUS and completes the order,
    announced once. A second round and a redelivery change nothing."""
    w = world
    created = w.create()
    oid, ref = created["id"], f"{created['id']}-1"
    returned = pay_on_page(w.http, created["checkout_form"], card=UNCERTAIN)
    assert returned["response_code"] == "15777"
    [fb] = settled_feedback(w.emulator, ref, channel="direct")
    assert fb.status == "delivered"
    stored = await inbox_event(w.db, event_id(fb))
    assert stored is not None and (stored.status, stored.order_id) == ("queued", oid)
    [task] = await tasks_of(w.db, oid)
    assert (task.id, task.status, task.kind) == (f"aps:order:{oid}", "pending", "order")
    listed = w.admin("GET", "/v1/admin/truth-tasks", params={"status": "pending"})
    assert task.id in {t["id"] for t in listed.json()["data"]}, listed.text
    assert w.get(oid)["status"] == "CREATED"

    assert await drain_truth(w.settings()) >= 1
    assert [c.response_code for c in aps_requests(w.emulator, ref, "CHECK_STATUS")] == ["12000"]
    done = w.get(oid)
    assert done["status"] == "COMPLETED" and done["capture_id"] == returned["fort_id"]
    assert [t.status for t in await tasks_of(w.db, oid)] == ["done"]
    assert await announced(w.db, oid) == ["order.completed"]
    assert ("reconcile", "APPLY", "COMPLETED") in verdicts(await history(w.db, oid))

    aps_control(w.emulator, "POST", f"/transactions/{ref}/feedback", {"channel": "direct"})
    settled_feedback(w.emulator, ref, 2, channel="direct")
    assert await drain_truth(w.settings()) == 0
    assert w.get(oid) == done and await announced(w.db, oid) == ["order.completed"]


# --- 6. lost notifications ----------------------------------------------------------------------


async def test_lost_feedback_is_recovered_by_reconciliation(world: World) -> None:
    """No feedback reaches paywire (no URL configured): a purchase and an authorization paid on
    the page leave their orders CREATED; one reconciliation pass (CREATED threshold 0) asks
    CHECK_STATUS and applies the truth: COMPLETED and AUTHORIZED, each announced once; a second
    pass changes nothing."""
    w = world
    point_feedback(w.emulator, None)
    bought, held = w.create(), w.create(intent="AUTHORIZE")
    paid = pay_on_page(w.http, bought["checkout_form"])
    authorized = pay_on_page(w.http, held["checkout_form"])
    assert (paid["response_code"], authorized["response_code"]) == ("14000", "02000")
    for o in (bought, held):
        assert feedback_of(w.emulator, f"{o['id']}-1") == []
        assert w.get(o["id"])["status"] == "CREATED"

    settings = w.settings(reconcile_created_after_seconds=0)
    await reconcile_once(settings)
    done, auth = w.get(bought["id"]), w.get(held["id"])
    assert (done["status"], done["capture_id"], minor(done["captured"])) == (
        "COMPLETED", paid["fort_id"], MUG)
    assert (auth["status"], auth["authorization_id"]) == ("AUTHORIZED", authorized["fort_id"])
    assert await announced(w.db, bought["id"]) == ["order.completed"]
    assert await announced(w.db, held["id"]) == ["order.authorized"]
    for o, status in ((bought, "COMPLETED"), (held, "AUTHORIZED")):
        assert ("reconcile", "APPLY", status) in verdicts(await history(w.db, o["id"]))

    await reconcile_once(settings)
    assert (w.get(bought["id"]), w.get(held["id"])) == (done, auth)
    assert await announced(w.db, bought["id"]) == ["order.completed"]
    assert await announced(w.db, held["id"]) == ["order.authorized"]


async def test_reconciling_an_unpaid_card_order_leaves_it_waiting(world: World) -> None:
    """An APS order whose buyer has not paid yet: CHECK_STATUS does not know its reference
    (11036). That is the normal state of an open checkout, not a configuration fault: the
    reconciler leaves the order CREATED, unflagged, until its maximum age."""
    w = world
    created = w.create()
    report = await reconcile_once(w.settings(reconcile_created_after_seconds=0))
    assert report.errors == 0 and (created["id"], YOUNG_404) not in report.attention
    assert [c.response_code for c in aps_requests(w.emulator, f"{created['id']}-1",
                                                  "CHECK_STATUS")] == ["11036"]
    now = w.get(created["id"])
    assert (now["status"], now["needs_attention"]) == ("CREATED", None), now
    assert await announced(w.db, created["id"]) == []


# --- 7. attempts ------------------------------------------------------------------------------


async def test_a_decline_redelivered_opens_one_next_attempt(world: World) -> None:
    """Attempt 1's decline delivered, redelivered and re-serialised opens attempt 2 once; after
    attempt 2 is paid, a late redelivery of that decline changes nothing."""
    w = world
    created = w.create()
    oid, ref1 = created["id"], f"{created['id']}-1"
    returned = pay_on_page(w.http, created["checkout_form"], card=DECLINE)
    assert returned["response_code"] == "13666"
    until(lambda: w.get(oid)["payment_attempt"] == 2)
    [decline] = settled_feedback(w.emulator, ref1, channel="direct")

    aps_control(w.emulator, "POST", f"/transactions/{ref1}/feedback", {"channel": "direct"})
    settled_feedback(w.emulator, ref1, 2, channel="direct")
    form = urlencode(sorted(decline.params.items(), reverse=True)).encode()
    r = w.post_feedback(form, "application/x-www-form-urlencoded")
    assert r.status_code == 200 and r.json()["outcome"] == "duplicate", r.text
    second = w.get(oid)
    assert (second["status"], second["payment_attempt"]) == ("CREATED", 2)
    assert second["checkout_form"]["fields"]["merchant_reference"] == f"{oid}-2"

    pay_on_page(w.http, second["checkout_form"])
    done = w.becomes(oid, "COMPLETED")
    aps_control(w.emulator, "POST", f"/transactions/{ref1}/feedback", {"channel": "direct"})
    settled_feedback(w.emulator, ref1, 3, channel="direct")
    assert w.get(oid) == done
    lines = await history(w.db, oid)
    declined = [h for h in lines if h.detail.get("declined")]
    assert [(h.detail["attempt"], h.detail["next_attempt"]) for h in declined] == [(1, 2)]
    assert await announced(w.db, oid) == ["order.completed"]
    assert [e.status for e in await inbox_of(w.db, oid)] == ["applied", "applied"]


async def test_a_late_decline_of_an_earlier_attempt_is_stale(world: World) -> None:
    """Attempt 1's decline feedback is lost (dropped); the shop's capture call learns of the
    decline by CHECK_STATUS and opens attempt 2. When the lost decline finally arrives — once
    while attempt 2 is open, then (another delivery of it) after attempt 2 was paid — it is
    about an earlier attempt: recorded STALE, nothing moves, nothing is queued or flagged."""
    w = world
    created = w.create()
    oid, ref1 = created["id"], f"{created['id']}-1"
    aps_fault(w.emulator, action="drop", event_type="^direct:PURCHASE$", count=1)
    pay_on_page(w.http, created["checkout_form"], card=DECLINE)
    [lost] = settled_feedback(w.emulator, ref1, channel="direct")
    assert lost.status == "dropped" and w.get(oid)["payment_attempt"] == 1

    r = w.http.post(f"{w.paywire.url}/v1/checkout/orders/{oid}/capture")
    assert r.status_code == 422 and r.json()["error"]["code"] == "payment_declined", r.text
    opened = w.get(oid)
    assert (opened["status"], opened["payment_attempt"]) == ("CREATED", 2)

    r = w.post_feedback(lost.body, lost.content_type)
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    assert w.get(oid) == opened

    pay_on_page(w.http, opened["checkout_form"])
    done = w.becomes(oid, "COMPLETED")
    # The same decline as the notification channel might carry it: another delivery.
    redelivered = sign_feedback(w.emulator, {**lost.params, "processed_at": "later"})
    r = w.post_feedback(json.dumps(redelivered).encode())
    assert r.status_code == 200 and r.json()["outcome"] == "applied", r.text
    assert w.get(oid) == done

    stale = [h for h in await history(w.db, oid) if h.verdict == "STALE"]
    assert [(h.source, h.detail.get("attempt")) for h in stale] == [("webhook", 1)] * 2
    assert await tasks_of(w.db, oid) == []
    assert await announced(w.db, oid) == ["order.completed"]


# --- 8. pending -------------------------------------------------------------------------------


async def test_pending_payment_completes_on_its_notification(world: World) -> None:
    """A pending (19) payment leaves the order PENDING; APS deciding it offline (the control
    API) notifies, and the order is COMPLETED, announced once."""
    w = world
    created = w.create()
    oid, ref = created["id"], f"{created['id']}-1"
    returned = pay_on_page(w.http, created["checkout_form"], card=PENDING)
    assert returned["response_code"] == "19000"
    pending = w.becomes(oid, "PENDING")
    assert pending["capture_id"] == returned["fort_id"]

    aps_control(w.emulator, "POST", f"/transactions/{ref}/resolve", {"result": "success"})
    [note] = settled_feedback(w.emulator, ref, channel="notification")
    assert (note.params["response_code"], note.status) == ("14000", "delivered")
    done = w.becomes(oid, "COMPLETED")
    assert done["capture_id"] == returned["fort_id"] and minor(done["captured"]) == MUG
    assert (await announced(w.db, oid)).count("order.completed") == 1
    assert [v for v in verdicts(await history(w.db, oid)) if v[0] == "webhook"] == [
        ("webhook", "APPLY", "PENDING"), ("webhook", "APPLY", "COMPLETED")]


# --- 9. authorize, capture, void --------------------------------------------------------------


async def test_authorization_captured_with_a_retried_reference_and_another_voided(
        world: World) -> None:
    """AUTHORIZE orders paid on the page are AUTHORIZED by their feedback. One is captured: the
    first CAPTURE (another paywire process, 0.3 s timeout) reaches APS but its answer is held
    past the timeout and its notification lost; the admin API's retry asks CHECK_STATUS first,
    sees the capture and sends no second CAPTURE (APS takes no maintenance_reference on it),
    and the order is COMPLETED once. The other is voided (VOIDED), its notification stale."""
    w = world
    first, second = w.create(intent="AUTHORIZE"), w.create(intent="AUTHORIZE")
    for o in (first, second):
        answer = pay_on_page(w.http, o["checkout_form"])
        assert answer["response_code"] == "02000"
        auth = w.becomes(o["id"], "AUTHORIZED")
        assert auth["authorization_id"] == answer["fort_id"]
    oid, ref = first["id"], f"{first['id']}-1"

    aps_fault(w.emulator, action="drop", event_type="^notification:CAPTURE$", count=1)
    aps_fault(w.emulator, target="http", action="latency", path="^/FortAPI/paymentApi$",
              command="^CAPTURE$", seconds=0.8, count=1)
    container = await build(w.settings(aps_timeout_seconds=0.3))
    try:
        with pytest.raises(ProviderError) as failed:
            await container.checkout.capture_authorization(oid)
    finally:
        await container.aclose()
    assert failed.value.kind == "transient", failed.value
    assert w.get(oid)["status"] == "AUTHORIZED"
    # The held CAPTURE is processed when its latency ends, after our client gave up: wait for
    # it, or the retry could reach APS first (then the two answers swap).
    until(lambda: aps_requests(w.emulator, ref, "CAPTURE"))

    r = w.admin("POST", f"/v1/orders/{oid}/capture")
    assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
    captures = aps_requests(w.emulator, ref, "CAPTURE")
    assert [c.response_code for c in captures] == ["04000"]  # captured once
    assert "maintenance_reference" not in captures[0].params
    # One CHECK_STATUS before each attempt: the first saw nothing captured, the retry the capture.
    assert [c.response_code for c in aps_requests(w.emulator, ref, "CHECK_STATUS")] == [
        "12000", "12000"]
    [lost] = settled_feedback(w.emulator, ref, channel="notification", command="CAPTURE")
    assert lost.status == "dropped"
    aps_control(w.emulator, "POST", f"/transactions/{ref}/feedback",
                {"channel": "notification"})
    settled_feedback(w.emulator, ref, 2, channel="notification", command="CAPTURE")
    done = w.get(oid)
    assert (done["status"], minor(done["captured"])) == ("COMPLETED", MUG)
    types = await announced(w.db, oid)
    assert types.count("order.completed") == 1, types

    vid, vref = second["id"], f"{second['id']}-1"
    r = w.admin("POST", f"/v1/orders/{vid}/void")
    assert r.status_code == 200 and r.json()["status"] == "VOIDED", r.text
    [void] = aps_requests(w.emulator, vref, "VOID_AUTHORIZATION")
    assert void.response_code == "08000" and "maintenance_reference" not in void.params
    [note] = settled_feedback(w.emulator, vref, channel="notification")
    assert note.status == "delivered"
    assert w.get(vid)["status"] == "VOIDED"
    assert (await announced(w.db, vid)).count("order.voided") == 1
    # The API's answer and the notification race: whichever lands first applies, the other
    # is stale; either way exactly one of each.
    voided = sorted((v, src) for src, v, to in verdicts(await history(w.db, vid))
                    if to == "VOIDED")
    assert [v for v, _ in voided] == ["APPLY", "STALE"], voided
    assert {src for _, src in voided} == {"api", "webhook"}, voided
