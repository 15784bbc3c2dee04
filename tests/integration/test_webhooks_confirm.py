"""A webhook body is a notification, not proof of money: PayPal's claims are confirmed with its API.

PayPal signs only a CRC-32 of the body. These tests play the attacker of issue 15: holding one
genuine delivery paywire has not stored yet, they send another body with the same CRC-32 under
the genuine headers (it verifies), claiming a capture, a refund or an approval PayPal never
made. The subscription delivers to a recorder, not to paywire, so every genuine delivery is
"unseen" until a test posts it. paywire answers 200 `confirming`, reads the order (or refund)
with its own client, changes nothing, announces nothing, records the contradiction, and spends
one GET on it; the genuine delivery afterwards is applied once. The last test kills paywire with
SIGKILL between its answer and the confirmation, and a restarted paywire finishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikit import ADMIN, Paywire, buy, serve, settings_for
from paywire.domain.order import OrderStatus
from paywire.ports import HistoryEntry
from paywire.testing import free_port
from testkit import CLIENT_ID, CLIENT_SECRET, two_app_config
from webhookkit import (
    Delivery,
    Recording,
    collide,
    drain_truth,
    eventually,
    order,
    outbox,
    post,
    quiet,
    read,
    recording,
    truth_tasks,
)
from webhookstack import backend_database

S = OrderStatus


@dataclass
class Rig(Recording):
    """PayPal delivering to a recorder (the attacker's view), and paywire that verifies for
    that subscription but hears only what a test posts."""

    paywire: Paywire
    data_dir: Path

    @property
    def db(self) -> str:
        """paywire's database."""
        return self.paywire.database_url

    def gets(self, since: int, needle: str) -> list[str]:
        """The API GETs paywire made at the emulator since request `since` whose path names
        `needle` (the signing certificate's download is not an API call)."""
        return [e.path for e in self.emulator.emu.request_log[since:]
                if e.method == "GET" and needle in e.path
                and not e.path.startswith("/v1/notifications/certs/")]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Rig]:
    """The rig on each SQL backend."""
    data_dir = tmp_path_factory.mktemp(f"confirm-{request.param}")
    with recording(two_app_config()) as rec, backend_database(request.param, data_dir) as url, \
            serve(rec.emulator, url, data_dir, paypal_webhook_id=rec.webhook_id,
                  truth_fetch_enabled=False) as pw:
        yield Rig(rec.emulator, rec.recorder, rec.paypal, rec.webhook_id, pw, data_dir)


@asynccontextmanager
async def client(pw: Paywire) -> AsyncIterator[httpx.AsyncClient]:
    """A client for paywire's API."""
    async with httpx.AsyncClient(base_url=pw.url, timeout=30) as c:
        yield c


async def history(database_url: str, order_id: str) -> list[HistoryEntry]:
    """The order's history lines."""
    async def get(uow: Any) -> list[HistoryEntry]:
        return list(await uow.history(order_id))

    return await read(database_url, get)


async def confirmed(r: Rig, order_id: str, count: int) -> None:
    """Wait until `count` confirmations of the order are done."""
    async def probe() -> bool:
        done = [t for t in await truth_tasks(r.db) if t.order_id == order_id
                and t.id.startswith("paypal:confirm:") and t.status == "done"]
        return len(done) >= count

    await eventually(probe, f"{count} confirmation(s) of {order_id}")


def _event(template: Delivery, **resource: Any) -> dict[str, Any]:
    """A genuine event's envelope with the resource fields an attacker chooses."""
    event = json.loads(template.body)
    event["resource"] = {**event["resource"], **resource}
    return event


async def _send_forgery(r: Rig, held: Delivery, event: dict[str, Any]) -> tuple[int, Any]:
    """POST `event`, CRC-matched to `held`, under `held`'s genuine headers; (log mark, answer)."""
    forged = collide(held.body, event)
    mark = len(r.emulator.emu.request_log)
    answer = await post(r.paywire.webhook_url, held, body=forged)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "confirming", answer.text
    return mark, answer.json()


async def _template(r: Rig, event_type: str) -> Delivery:
    """A genuine delivery of `event_type` about an order paywire will never hear of (a shape
    for forgeries), made at PayPal directly."""
    paypal_id = await r.paypal.create_order("10.00", "elsewhere")
    await r.paypal.approve(paypal_id)
    capture_id = await r.paypal.capture(paypal_id)
    if event_type == "PAYMENT.CAPTURE.REFUNDED":
        await r.paypal.refund(capture_id, "1.00")
    await quiet(r.emulator)
    return r.held(paypal_id if event_type != "PAYMENT.CAPTURE.REFUNDED" else capture_id,
                  event_type)


async def test_forged_capture_changes_nothing_and_the_genuine_event_applies(rig: Rig) -> None:
    """A CRC-matched PAYMENT.CAPTURE.COMPLETED for an approved, unpaid order (invented capture,
    the genuine approval's headers) is confirmed with one GET of the order, contradicted,
    recorded, and changes nothing; the genuine approval after it is applied once."""
    r = rig
    shape = await _template(r, "PAYMENT.CAPTURE.COMPLETED")
    async with client(r.paywire) as c:
        bought = await buy(c, r.emulator)
    paypal_id, order_id = bought["provider_order_id"], bought["id"]
    await quiet(r.emulator)
    held = r.held(paypal_id, "CHECKOUT.ORDER.APPROVED")
    amount = bought["amount"]
    mark, _ = await _send_forgery(r, held, _event(
        shape, id="4FAKECAPTURE0000X", amount=amount, custom_id=order_id, final_capture=True,
        supplementary_data={"related_ids": {"order_id": paypal_id}}))
    await confirmed(r, order_id, 1)
    assert r.gets(mark, paypal_id) == [f"/v2/checkout/orders/{paypal_id}"]
    still = await order(r.db, order_id)
    assert still.status is S.CREATED and still.capture_id is None and still.captured is None
    assert still.needs_attention is None
    assert await outbox(r.db, order_id) == []
    lines = [h for h in await history(r.db, order_id) if h.verdict == "CONTRADICTED"]
    assert len(lines) == 1 and "PayPal's order says APPROVED" in lines[0].detail["reason"]

    answer = await post(r.paywire.webhook_url, held)
    assert answer.status_code == 200 and answer.json()["outcome"] == "confirming", answer.text
    await confirmed(r, order_id, 2)
    assert (await order(r.db, order_id)).status is S.APPROVED
    again = await post(r.paywire.webhook_url, held)
    assert again.json()["outcome"] == "duplicate", again.text
    assert [m.type for m in await outbox(r.db, order_id)] == ["order.approved"]


async def test_forged_refund_changes_nothing_and_a_real_refund_counts_once(rig: Rig) -> None:
    """A CRC-matched PAYMENT.CAPTURE.REFUNDED (invented refund of the order's real capture) is
    contradicted by one GET of the refund (PayPal knows none) and counts nothing; the genuine
    capture event only repeats what paywire holds (no GET); a real refund counts once."""
    r = rig
    shape = await _template(r, "PAYMENT.CAPTURE.REFUNDED")
    async with client(r.paywire) as c:
        bought = await buy(c, r.emulator)
        paid = (await c.post(f"/v1/checkout/orders/{bought['id']}/capture",
                             headers=ADMIN)).json()
    order_id, capture_id = bought["id"], paid["capture_id"]
    await quiet(r.emulator)
    held = r.held(bought["provider_order_id"], "PAYMENT.CAPTURE.COMPLETED")
    up = f"{r.emulator.url}/v2/payments/captures/{capture_id}"
    mark, _ = await _send_forgery(r, held, _event(
        shape, id="7FAKEREFUND00000X", custom_id=order_id,
        amount={"currency_code": "USD", "value": "5.00"},
        links=[{"href": up, "rel": "up", "method": "GET"}]))
    await confirmed(r, order_id, 1)
    assert r.gets(mark, "FAKEREFUND") == ["/v2/payments/refunds/7FAKEREFUND00000X"]
    assert len(r.gets(mark, "")) == 1
    still = await order(r.db, order_id)
    assert still.status is S.COMPLETED and still.refunded is None
    assert still.needs_attention is None
    assert [m.type for m in await outbox(r.db, order_id)] == ["order.completed"]
    lines = [h for h in await history(r.db, order_id) if h.verdict == "CONTRADICTED"]
    assert len(lines) == 1 and "knows no refund" in lines[0].detail["reason"]

    mark = len(r.emulator.emu.request_log)
    answer = await post(r.paywire.webhook_url, held)
    assert answer.json()["outcome"] == "applied", answer.text  # a repeat: recorded stale
    refund_id = await r.paypal.refund(capture_id, "5.00")
    await quiet(r.emulator)
    genuine = r.held(refund_id, "PAYMENT.CAPTURE.REFUNDED")
    answer = await post(r.paywire.webhook_url, genuine)
    assert answer.json()["outcome"] == "confirming", answer.text
    await confirmed(r, order_id, 2)
    assert r.gets(mark, "") == [f"/v2/payments/refunds/{refund_id}"]
    final = await order(r.db, order_id)
    assert final.status is S.PARTIALLY_REFUNDED and str(final.refunded) == "5.00 USD"
    assert [m.type for m in await outbox(r.db, order_id)] == ["order.completed",
                                                              "order.partially_refunded"]


async def test_forged_approval_and_a_forged_body_under_a_genuine_event_id(rig: Rig) -> None:
    """A CRC-matched approval of an order the buyer never approved changes nothing; a forged
    denial sent under the genuine capture event's own id is stored first, yet the genuine
    capture event after it is not taken for a duplicate: it is confirmed and completes the
    order once."""
    r = rig
    async with client(r.paywire) as c:
        created = (await c.post("/v1/checkout/orders", json={
            "items": [{"sku": "mug", "quantity": 1}]})).json()
        bought = await buy(c, r.emulator)
    await quiet(r.emulator)
    held = r.held(bought["provider_order_id"], "CHECKOUT.ORDER.APPROVED")
    approval = json.loads(held.body)
    approval["resource"] = {**approval["resource"], "id": created["provider_order_id"]}
    approval["resource"]["purchase_units"][0]["custom_id"] = created["id"]
    mark, _ = await _send_forgery(r, held, approval)
    await confirmed(r, created["id"], 1)
    assert r.gets(mark, "") == [f"/v2/checkout/orders/{created['provider_order_id']}"]
    assert (await order(r.db, created["id"])).status is S.CREATED
    assert await outbox(r.db, created["id"]) == []

    capture_id = await r.paypal.capture(bought["provider_order_id"])
    await quiet(r.emulator)
    genuine = r.held(capture_id, "PAYMENT.CAPTURE.COMPLETED")
    denial = json.loads(genuine.body)
    denial["event_type"] = "PAYMENT.CAPTURE.DENIED"
    denial["resource"] = {**denial["resource"], "status": "DECLINED"}
    await _send_forgery(r, genuine, denial)
    await confirmed(r, bought["id"], 1)
    assert (await order(r.db, bought["id"])).status is S.CREATED
    answer = await post(r.paywire.webhook_url, genuine)
    assert answer.status_code == 200 and answer.json()["outcome"] == "confirming", answer.text
    await confirmed(r, bought["id"], 2)
    done = await order(r.db, bought["id"])
    assert done.status is S.COMPLETED and done.capture_id == capture_id
    assert [m.type for m in await outbox(r.db, bought["id"])] == ["order.completed"]


async def test_an_expired_order_voided_event_pages_nobody(rig: Rig) -> None:
    """PayPal voids an order left unapproved and then answers 404 for it: the genuine
    CHECKOUT.ORDER.VOIDED is confirmed with that one GET, recorded as contradicted (the order
    is gone at PayPal), and flags no order for a person; expiry is the reconciler's call."""
    r = rig
    async with client(r.paywire) as c:
        created = (await c.post("/v1/checkout/orders", json={
            "items": [{"sku": "mug", "quantity": 1}]})).json()
    async with httpx.AsyncClient(base_url=r.emulator.url) as emu:
        gone = await emu.post(f"/_emulator/orders/{created['provider_order_id']}/expire")
        assert gone.status_code == 200, gone.text
    await quiet(r.emulator)
    voided = r.held(created["provider_order_id"], "CHECKOUT.ORDER.VOIDED")
    mark = len(r.emulator.emu.request_log)
    answer = await post(r.paywire.webhook_url, voided)
    assert answer.json()["outcome"] == "confirming", answer.text
    await confirmed(r, created["id"], 1)
    assert r.gets(mark, "") == [f"/v2/checkout/orders/{created['provider_order_id']}"]
    still = await order(r.db, created["id"])
    assert still.status is S.CREATED and still.needs_attention is None
    assert await outbox(r.db, created["id"]) == []
    lines = [h for h in await history(r.db, created["id"]) if h.verdict == "CONTRADICTED"]
    assert len(lines) == 1 and "PayPal knows no order" in lines[0].detail["reason"]


async def test_an_order_s_events_confirmed_from_the_queue_cost_one_get(rig: Rig) -> None:
    """With in-process confirmation off, an order's three genuine events (approved, capture
    completed, order completed) wait in the queue; the truth fetcher confirms the first with
    one GET, and the other two only repeat what that GET taught paywire: no second GET, one
    order.completed."""
    r = rig
    async with client(r.paywire) as c:
        bought = await buy(c, r.emulator)
    paypal_id = bought["provider_order_id"]
    await r.paypal.capture(paypal_id)
    await quiet(r.emulator)
    events = [r.held(paypal_id, t) for t in ("CHECKOUT.ORDER.APPROVED",
                                             "PAYMENT.CAPTURE.COMPLETED",
                                             "CHECKOUT.ORDER.COMPLETED")]
    queued = settings_for(r.emulator, r.db, r.data_dir, paypal_webhook_id=r.webhook_id,
                          webhook_confirm_inline=False, truth_fetch_enabled=False)
    with serve(r.emulator, r.db, r.data_dir, paypal_webhook_id=r.webhook_id,
               webhook_confirm_inline=False, truth_fetch_enabled=False) as quiet_paywire:
        for d in events:
            answer = await post(quiet_paywire.webhook_url, d)
            assert answer.json()["outcome"] == "confirming", answer.text
    assert (await order(r.db, bought["id"])).status is S.CREATED
    mark = len(r.emulator.emu.request_log)
    assert await drain_truth(queued) == 3
    assert r.gets(mark, "") == [f"/v2/checkout/orders/{paypal_id}"]
    assert (await order(r.db, bought["id"])).status is S.COMPLETED
    assert [m.type for m in await outbox(r.db, bought["id"])] == ["order.completed"]


# --- kill -9 between the answer and the confirmation -----------------------------------------


def _paywire_process(r: Rig, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`paywire serve` on `port` as its own process, on the rig's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWIRE_")}
    env.update({
        "PAYWIRE_PAYPAL_ENV": "emulator", "PAYWIRE_PAYPAL_BASE_URL": r.emulator.url,
        "PAYWIRE_PAYPAL_CLIENT_ID": CLIENT_ID, "PAYWIRE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
        "PAYWIRE_DATABASE_URL": r.db, "PAYWIRE_DATA_DIR": str(r.data_dir / f"p{port}"),
        "PAYWIRE_PAYPAL_WEBHOOK_ID": r.webhook_id, "PAYWIRE_PAYPAL_TIMEOUT_SECONDS": "2",
        "PAYWIRE_PAYPAL_MAX_RETRIES": "0", "PAYWIRE_TRUTH_FETCH_LEASE_SECONDS": "2",
        "PAYWIRE_TRUTH_FETCH_INTERVAL_SECONDS": "0.1", "PAYWIRE_RECONCILE_ENABLED": "false"})
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "paywire.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)


async def _up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as c:
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                await c.get(f"{url}/healthz")
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"paywire did not come up: {log.read_text()}")


async def test_a_kill_after_the_answer_loses_no_confirmation(rig: Rig) -> None:
    """paywire answers a genuine capture event `confirming` and is killed with SIGKILL while
    its in-process confirmation waits on a slow PayPal; a restarted paywire's truth fetcher
    takes the task once the dead lease lapses and completes the order once."""
    r = rig
    async with client(r.paywire) as c:
        bought = await buy(c, r.emulator)
    capture_id = await r.paypal.capture(bought["provider_order_id"])
    await quiet(r.emulator)
    genuine = r.held(capture_id, "PAYMENT.CAPTURE.COMPLETED")
    async with httpx.AsyncClient(base_url=r.emulator.url) as emu:
        slow = await emu.post("/_emulator/faults", json={
            "target": "http", "action": "latency", "seconds": 3, "method": "GET",
            "path": f"^/v2/checkout/orders/{bought['provider_order_id']}$", "count": 1})
        assert slow.status_code in (200, 201), slow.text
    port, log = free_port(), r.data_dir / "killed.log"
    url = f"http://127.0.0.1:{port}"
    proc = _paywire_process(r, port, log)
    try:
        await _up(url, proc, log)
        answer = await post(f"{url}/webhooks/paypal", genuine)
        assert answer.status_code == 200 and answer.json()["outcome"] == "confirming"
        await asyncio.sleep(0.5)  # the confirmation is now waiting on PayPal
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (await order(r.db, bought["id"])).status is S.CREATED
    [task] = [t for t in await truth_tasks(r.db) if t.order_id == bought["id"]]
    assert task.status == "pending" and task.lease_owner is not None
    proc = _paywire_process(r, port, log)
    try:
        await _up(url, proc, log)
        await confirmed(r, bought["id"], 1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    done = await order(r.db, bought["id"])
    assert done.status is S.COMPLETED and done.capture_id == capture_id
    assert [m.type for m in await outbox(r.db, bought["id"])] == ["order.completed"]
