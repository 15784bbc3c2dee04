"""Property: what webhooks do is a function of the SET of events, never their order or count.

Once per module, real signed deliveries are recorded: paywire creates a few orders (so its
database knows them), then the buyer and PayPal act on them while the webhook subscription
points at a recorder, not at paywire. The database at that point is the template. Each example
copies the template, replays a random sequence drawn from one subset of the recorded deliveries
(shuffled, some repeated) straight into paywire's `WebhookIngest.receive` (wired by
`bootstrap.build`, verifying locally against the emulator's certificate), lets the truth fetch
settle what was queued, and compares every order's final state and its per-fact announcement
keys with a canonical replay of the same set (each event once, in delivery order). Progress
notices (order.approved, order.authorized) are best effort by design and not compared.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apikit import serve, settings_for, sqlite_url
from paywire.bootstrap import build
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.services.webhooks import Disposition
from paywire.store.sql import sync_url
from paywire.testing import EmulatorServer
from testkit import CLIENT_ID, CLIENT_SECRET
from webhookkit import Delivery, PayPal, fact_keys, quiet, recording

Outcome = tuple[tuple[Any, ...], ...]


@dataclass
class Recorded:
    """The recorded deliveries, the template database and what is needed to replay them."""

    emulator: EmulatorServer
    webhook_id: str
    template: Path
    orders: list[str]
    deliveries: list[Delivery]
    canonical: dict[frozenset[int], Outcome] = field(default_factory=dict)


async def _act(paypal: PayPal, paywire_url: str) -> list[str]:
    """Three orders through paywire; then, at PayPal only: capture and refund one, capture and
    dispute one, authorize and void the third."""
    async with httpx.AsyncClient(base_url=paywire_url, timeout=30) as c:
        made = [(await c.post("/v1/checkout/orders", json={
            "items": [{"sku": "mug", "quantity": 2}], "intent": intent})).json()
            for intent in ("CAPTURE", "CAPTURE", "AUTHORIZE")]
    refunded, disputed, voided = (o["provider_order_id"] for o in made)
    for paypal_id in (refunded, disputed, voided):
        await paypal.approve(paypal_id)
    capture = await paypal.capture(refunded)
    await paypal.refund(capture, "5.00")
    capture = await paypal.capture(disputed)
    async with httpx.AsyncClient(base_url=paypal.emulator.url) as emu:
        r = await emu.post("/_emulator/disputes", json={"capture_id": capture})
        assert r.status_code in (200, 201), r.text
    authorized = await paypal.call("POST", f"/v2/checkout/orders/{voided}/authorize", {})
    auth_id = authorized["purchase_units"][0]["payments"]["authorizations"][0]["id"]
    await paypal.call("POST", f"/v2/payments/authorizations/{auth_id}/void", {},
                      expect=(200, 204))
    return [o["id"] for o in made]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Real deliveries for three orders, and the database that knows the orders."""
    work = tmp_path_factory.mktemp("property")
    config = EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)],
                            webhook_time_scale=0.001, seed=7)
    with recording(config) as rec:
        url = sqlite_url(work)
        with serve(rec.emulator, url, work, truth_fetch_enabled=False) as pw:
            orders = asyncio.run(_act(rec.paypal, pw.url))
            asyncio.run(quiet(rec.emulator))
        template = work / "template.db"
        _copy(url, template)
        yield Recorded(rec.emulator, rec.webhook_id, template, orders, rec.deliveries())


def _copy(url: str, to: Path) -> None:
    """A consistent copy of a SQLite database (WAL included), via the backup API."""
    src = sqlite3.connect(str(sync_url(url).database))
    dst = sqlite3.connect(to)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


async def _replay(rec: Recorded, sequence: list[int]) -> Outcome:
    """Deliver `sequence` to a fresh copy of the template; settle the truth queue; the result."""
    work = Path(tempfile.mkdtemp(prefix="paywire-prop-"))
    try:
        shutil.copyfile(rec.template, work / "paywire.db")
        container = await build(settings_for(
            rec.emulator, sqlite_url(work), work, paypal_webhook_id=rec.webhook_id,
            truth_fetch_enabled=False, truth_fetch_base_delay_seconds=0))
        try:
            for i in sequence:
                d = rec.deliveries[i]
                outcome = await container.webhooks.receive(d.headers, d.body)
                assert outcome.disposition is Disposition.ACKNOWLEDGE, (d.event_type, outcome)
            for _ in range(20):
                if not await container.truth.run_once():
                    break
            async with container.store.transaction() as uow:
                result = []
                for order_id in rec.orders:
                    o = await uow.get_order(order_id)
                    assert o is not None
                    keys = fact_keys(list(await uow.outbox_for_order(order_id)), {})
                    result.append((o.status, o.captured, o.refunded, o.disputed,
                                   o.needs_attention, o.capture_id, o.authorization_id,
                                   tuple(sorted(keys))))
                return tuple(result)
        finally:
            await container.aclose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


@st.composite
def sequences(draw: st.DrawFn, size: int) -> list[int]:
    """A non-empty subset of the events, shuffled, with up to three repeats inserted."""
    chosen = sorted(draw(st.sets(st.integers(0, size - 1), min_size=1)))
    seq = list(draw(st.permutations(chosen)))
    for again in draw(st.lists(st.sampled_from(chosen), max_size=3)):
        seq.insert(draw(st.integers(0, len(seq))), again)
    return seq


def test_the_recording_covers_every_fact(recorded: Recorded) -> None:
    """The recorded deliveries hold every kind of event the property mixes."""
    kinds = {d.event_type for d in recorded.deliveries}
    assert kinds >= {"CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.COMPLETED",
                     "CHECKOUT.ORDER.COMPLETED", "PAYMENT.CAPTURE.REFUNDED",
                     "CUSTOMER.DISPUTE.CREATED", "PAYMENT.AUTHORIZATION.CREATED",
                     "PAYMENT.AUTHORIZATION.VOIDED"}, kinds


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_final_state_depends_only_on_the_set_of_events(recorded: Recorded,
                                                       data: st.DataObject) -> None:
    """Any order and any repetition of a set of genuine events ends where the set, each once
    and in delivery order, ends: the same order states and per-fact announcement keys."""
    seq = data.draw(sequences(len(recorded.deliveries)), label="deliveries")
    chosen = frozenset(seq)
    if chosen not in recorded.canonical:
        recorded.canonical[chosen] = asyncio.run(_replay(recorded, sorted(chosen)))
    assert asyncio.run(_replay(recorded, seq)) == recorded.canonical[chosen]
