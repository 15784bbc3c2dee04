"""Webhook ingest over real HTTP: the emulator delivers signed webhooks to a running paywire.

Run on SQLite, PostgreSQL and DynamoDB (a fresh database or table for the module each; for
DynamoDB the AWS environment points at the session's moto server meanwhile), on the stack in
`webhookstack`: a paywire verifying locally, one verifying by postback. Payments are captured at
PayPal directly where the webhook must be paywire's only news; PayPal's retries run at 1/1000
speed. The store going down, the certificate host going down, and events paywire will not guess
at (an unknown order, an amount mismatch) are settled here too.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikit import ADMIN, Paywire, buy, dynamodb_table, serve
from paywire.domain.order import OrderStatus
from paywire.testing import EmulatorServer
from testkit import two_app_config
from webhookkit import (
    confirmed,
    delivery,
    drain_truth,
    eventually,
    fact_keys,
    inbox,
    order,
    outbox,
    post,
    quiet,
    rejections,
    statuses,
    transmissions,
    truth_tasks,
)
from webhookstack import (
    Stack,
    backend_database,
    insert_order,
    open_stack,
    sent_to,
    status_is,
    store_down,
)

S = OrderStatus


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "dynamodb"])
def database(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A fresh database for the module, on each backend."""
    data_dir = tmp_path_factory.mktemp(f"ingest-{request.param}")
    if request.param == "dynamodb":
        with dynamodb_table(request.getfixturevalue("moto_server"), "paywire-ingest") as url:
            yield url, data_dir
        return
    with backend_database(request.param, data_dir) as url:
        yield url, data_dir


@pytest.fixture(scope="module")
def emulator(database: tuple[str, Path]) -> Iterator[EmulatorServer]:
    """The emulator (two apps) of one backend's run; its responses are checked against
    PayPal's specs after each test."""
    server = EmulatorServer(two_app_config())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(emulator: EmulatorServer, database: tuple[str, Path]) -> Iterator[Stack]:
    """The two paywires on the module's database."""
    with open_stack(emulator, *database) as s:
        yield s


@asynccontextmanager
async def client(pw: Paywire) -> AsyncIterator[httpx.AsyncClient]:
    """A client for one paywire's API."""
    async with httpx.AsyncClient(base_url=pw.url, timeout=30) as c:
        yield c


# --- genuine events ----------------------------------------------------------------------------


async def test_genuine_events_are_applied_once(stack: Stack) -> None:
    """Approval and a capture made at PayPal reach paywire only as webhooks: each verified and
    stored once, the order COMPLETED with one order.completed; a resend changes nothing."""
    s = stack
    async with client(s.paywire) as c:
        bought = await buy(c, s.emulator)
        await status_is(s.db, bought["id"], S.APPROVED)
        capture_id = await s.paypal.capture(bought["provider_order_id"])
        await status_is(s.db, bought["id"], S.COMPLETED)
        await quiet(s.emulator)
    done = await order(s.db, bought["id"])
    assert done.capture_id == capture_id and done.captured == done.amount
    got = sent_to(s, s.paywire.webhook_url, bought["provider_order_id"])
    assert set(got) == {"CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.COMPLETED",
                        "CHECKOUT.ORDER.COMPLETED"}
    for d in got.values():
        assert statuses(s.emulator, d.transmission_id) == [200], d.event_type
    types = [m.type for m in await outbox(s.db, done.id)]
    assert types.count("order.completed") == 1 and types.count("order.approved") == 1
    event_id = json.loads(got["PAYMENT.CAPTURE.COMPLETED"].body)["id"]
    await s.paypal.call("POST", f"/v1/notifications/webhooks-events/{event_id}/resend",
                        {"webhook_ids": [s.webhook_id]}, expect=(202,))
    await quiet(s.emulator)
    again = [t for t in transmissions(s.emulator, s.paywire.webhook_url)
             if t.event_id == event_id]
    assert len(again) == 2 and statuses(s.emulator, again[1].id) == [200]
    assert (await order(s.db, done.id)).version == done.version
    assert len(await outbox(s.db, done.id)) == len(types)


async def _paid_and_refunded(s: Stack) -> tuple[dict[str, str], set[tuple[str, str]], Any]:
    """buy, capture and refund 5.00 at PayPal; settle; the ids, fact keys and final order."""
    async with client(s.paywire) as c:
        bought = await buy(c, s.emulator)
    capture_id = await s.paypal.capture(bought["provider_order_id"])
    refund_id = await s.paypal.refund(capture_id, "5.00")
    await quiet(s.emulator, timeout=20)
    await confirmed(s.db)
    await drain_truth(s.settings())  # what paywire would not guess at, settled by PayPal
    names = {bought["id"]: "ORDER", capture_id: "CAPTURE", refund_id: "REFUND"}
    final = await order(s.db, bought["id"])
    return names, fact_keys(await outbox(s.db, bought["id"]), names), final


def _shape(o: Any) -> tuple[Any, ...]:
    return (o.status, o.captured, o.refunded, o.needs_attention, o.disputed)


async def test_duplicates_and_reorders_converge(stack: Stack) -> None:
    """Duplicated and reordered deliveries (emulator fault rules) end in the clean run's state
    with the same per-fact announcements (progress notices are best effort, not compared)."""
    s = stack
    _, clean_keys, clean = await _paid_and_refunded(s)
    assert clean.status is S.PARTIALLY_REFUNDED
    assert clean_keys == {("order.completed", "order.completed:ORDER"),
                          ("order.partially_refunded", "refund:REFUND")}
    hook = s.paywire.webhook_url.replace(".", r"\.")
    for rule in ({"action": "duplicate"},
                 {"action": "reorder", "seconds": 5, "count": 2,
                  "event_type": "PAYMENT.CAPTURE.COMPLETED|CHECKOUT.ORDER.COMPLETED"}):
        await s.fault({"target": "webhook", "url": hook, **rule})
        try:
            _, keys, final = await _paid_and_refunded(s)
        finally:
            await s.clear_faults()
        assert (keys, _shape(final)) == (clean_keys, _shape(clean)), rule["action"]


async def test_refund_webhook_after_an_api_refund_counts_once(stack: Stack) -> None:
    """A refund through paywire's API, then PayPal's PAYMENT.CAPTURE.REFUNDED for it: the
    refund is counted once and announced once."""
    s = stack
    async with client(s.paywire) as c:
        bought = await buy(c, s.emulator)
        r = await c.post(f"/v1/checkout/orders/{bought['id']}/capture")
        assert r.json()["status"] == "COMPLETED", r.text
        r = await c.post(f"/v1/orders/{bought['id']}/refunds", json={"amount": "10.00"},
                         headers=ADMIN)
        assert r.status_code == 201, r.text
    await quiet(s.emulator)
    refunded = sent_to(s, s.paywire.webhook_url, r.json()["provider_refund_id"])
    assert statuses(s.emulator, refunded["PAYMENT.CAPTURE.REFUNDED"].transmission_id) == [200]
    done = await order(s.db, bought["id"])
    assert done.status is S.PARTIALLY_REFUNDED and str(done.refunded) == "10.00 USD"
    keys = [m.key for m in await outbox(s.db, done.id) if m.key.startswith("refund:")]
    assert len(keys) == 1


# --- our side down ---------------------------------------------------------------------------


async def test_store_down_answers_503_until_paypal_retries(stack: Stack) -> None:
    """With the store down a genuine delivery answers 503 and is not recorded as a rejection;
    PayPal's own retry, once the store is back, is applied (one order.completed)."""
    s = stack
    async with client(s.paywire) as c:
        bought = await buy(c, s.emulator)
    await status_is(s.db, bought["id"], S.APPROVED)
    await quiet(s.emulator)
    restore = store_down(s.db)
    try:
        await s.paypal.capture(bought["provider_order_id"])

        async def refused() -> str | None:
            d = sent_to(s, s.paywire.webhook_url, bought["provider_order_id"]).get(
                "PAYMENT.CAPTURE.COMPLETED")
            return d.transmission_id if d and 503 in statuses(s.emulator, d.transmission_id) \
                else None

        tid = await eventually(refused, "a 503 for the capture's delivery")
    finally:
        restore()
    await status_is(s.db, bought["id"], S.COMPLETED)
    await quiet(s.emulator)
    seen = statuses(s.emulator, tid)
    assert seen[-1] == 200 and set(seen[:-1]) == {503}, seen
    assert not [r for r in await rejections(s.db) if r.transmission_id == tid]
    types = [m.type for m in await outbox(s.db, bought["id"])]
    assert types.count("order.completed") == 1


async def test_cert_host_down_answers_503_and_records_nothing(stack: Stack) -> None:
    """A paywire without PayPal's certificate cached, the cert host timing out: a genuine
    delivery answers 503, no rejection is recorded, and PayPal's retry is accepted later."""
    s = stack
    d = next(delivery(t) for t in transmissions(s.emulator, s.paywire.webhook_url)
             if t.status == "SUCCESS" and not t.simulated)
    with serve(s.emulator, s.db, s.data_dir, paypal_webhook_id=s.webhook_id,
               truth_fetch_enabled=False, webhook_cert_timeout_seconds=0.3) as fresh:
        await s.fault({"target": "http", "action": "timeout", "seconds": 1, "method": "GET",
                       "path": "/v1/notifications/certs/.*"})
        try:
            down = await post(fresh.webhook_url, d)
        finally:
            await s.clear_faults()
        back = await post(fresh.webhook_url, d)
    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] == "provider_unavailable"
    assert back.status_code == 200 and back.json()["outcome"] == "duplicate", back.text
    assert not [r for r in await rejections(s.db) if r.transmission_id == d.transmission_id]


# --- what paywire will not guess at ------------------------------------------------------------


async def test_unknown_order_is_applied_from_the_truth_fetch(stack: Stack) -> None:
    """Events for an order paywire does not know yet are stored and queued, not guessed at;
    once its own record lands, `paywire reconcile --truth-queue` applies PayPal's truth."""
    from typer.testing import CliRunner

    from paywire.cli import app

    s = stack
    our_id = f"ord_{uuid.uuid4().hex[:24]}"
    paypal_id = await s.paypal.create_order("25.00", our_id)
    await s.paypal.approve(paypal_id)
    capture_id = await s.paypal.capture(paypal_id)
    await quiet(s.emulator)
    got = sent_to(s, s.paywire.webhook_url, paypal_id)
    assert len(got) == 3
    for d in got.values():
        stored = await inbox(s.db, json.loads(d.body)["id"])
        assert stored is not None and stored.status == "queued", d.event_type
    async with client(s.paywire) as c:
        listed = (await c.get("/v1/admin/truth-tasks?status=pending", headers=ADMIN)).json()
    mine = {(t["kind"], t["resource_id"], t["reason"]) for t in listed["data"]}
    assert mine >= {("order", paypal_id, "unknown_order"),
                    ("capture", capture_id, "unknown_order")}
    await insert_order(s.db, our_id, paypal_id, "25.00")  # paywire's own write, landing late
    result = await asyncio.to_thread(CliRunner().invoke, app, ["reconcile", "--truth-queue"],
                                     env=s.cli_env())
    assert result.exit_code == 0, result.output
    assert "2 processed" in result.output and "2 settled" in result.output, result.output
    done = await order(s.db, our_id)
    assert done.status is S.COMPLETED and done.capture_id == capture_id
    assert [m.type for m in await outbox(s.db, our_id)] == ["order.completed"]
    assert {t.status for t in await truth_tasks(s.db) if t.resource_id in (
        paypal_id, capture_id)} == {"done"}


async def test_reconcile_exits_non_zero_when_the_truth_cannot_be_settled(stack: Stack) -> None:
    """Events for an order that never becomes ours: the truth fetch cannot tie PayPal's answer
    to an order, the tasks fail (not retried for ever), and the one-shot command exits 1."""
    from typer.testing import CliRunner

    from paywire.cli import app

    s = stack
    paypal_id = await s.paypal.create_order("7.00", f"ord_{uuid.uuid4().hex[:24]}")
    await s.paypal.approve(paypal_id)
    await quiet(s.emulator)
    result = await asyncio.to_thread(CliRunner().invoke, app, ["reconcile", "--truth-queue"],
                                     env=s.cli_env())
    assert result.exit_code == 1, result.output
    assert "1 failed" in result.output, result.output
    failed = [t for t in await truth_tasks(s.db) if t.resource_id == paypal_id]
    assert [(t.status, t.attempts) for t in failed] == [("failed", 1)]
    assert "not one of ours" in (failed[0].last_error or "")


async def test_amount_mismatch_is_confirmed_and_never_fulfilled(stack: Stack) -> None:
    """A capture for less than our price (the order patched at PayPal) is confirmed with
    PayPal's API, never applied from the body: PayPal's answer leaves the order needing
    attention (amount_mismatch), its confirmations done, and no order.completed announced."""
    s = stack
    async with client(s.paywire) as c:
        created = (await c.post("/v1/checkout/orders", json={
            "items": [{"sku": "mug", "quantity": 2}]})).json()
    paypal_id = created["provider_order_id"]
    usd = {"currency_code": "USD"}
    await s.paypal.call("PATCH", f"/v2/checkout/orders/{paypal_id}", [{
        "op": "replace", "path": f"/purchase_units/@reference_id=='{created['id']}'/amount",
        "value": {**usd, "value": "20.00", "breakdown": {
            "item_total": {**usd, "value": "25.00"}, "discount": {**usd, "value": "5.00"}}}}],
        expect=(204,))
    await s.paypal.approve(paypal_id)
    await s.paypal.capture(paypal_id)
    await quiet(s.emulator)

    async def settled() -> bool:
        mine = [t for t in await truth_tasks(s.db) if t.order_id == created["id"]]
        return bool(mine) and all(t.status == "done" for t in mine)

    await eventually(settled, "the confirmations")
    final = await order(s.db, created["id"])
    assert final.needs_attention == "amount_mismatch" and final.status is not S.COMPLETED
    types = [m.type for m in await outbox(s.db, final.id)]
    assert "order.completed" not in types and types.count("order.needs_attention") == 1


# --- postback ----------------------------------------------------------------------------------


async def test_postback_mode_applies_genuine_events_once(stack: Stack) -> None:
    """Verified by PayPal's verify-webhook-signature over the bytes received: a capture made at
    PayPal completes the order once; the postback calls really happened."""
    s = stack
    async with client(s.postback) as c:
        bought = await buy(c, s.emulator)
    await s.paypal2.capture(bought["provider_order_id"])
    done = await status_is(s.db, bought["id"], S.COMPLETED)
    await quiet(s.emulator)
    got = sent_to(s, s.postback.webhook_url, bought["provider_order_id"])
    assert len(got) == 3
    seen = {k: statuses(s.emulator, d.transmission_id) for k, d in got.items()}
    assert all(v == [200] for v in seen.values()), seen
    assert len(s.postback.provider_calls(
        "POST", "/v1/notifications/verify-webhook-signature")) >= len(got)
    assert [m.type for m in await outbox(s.db, done.id)].count("order.completed") == 1
