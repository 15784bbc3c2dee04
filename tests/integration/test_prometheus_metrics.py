"""paywire's Prometheus endpoint after a real flow, on SQLite and PostgreSQL: every counter
moved by exactly what happened, the gauges read from the store, and `/metrics` protected.

paywire runs as in production (`create_app` with `PAYWIRE_METRICS`, uvicorn on loopback) against
the emulator; PayPal's genuine signed deliveries go to a recorder first and the test posts them
to paywire (so it knows each answer), plus a duplicate, an unsigned and a doctored one. The shop
is a real Standard Webhooks receiver the outbox worker delivers to. Each process's counters
start at zero, so what a scrape shows is what the flow did. The exposition is parsed with
prometheus_client's own parser.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from apikit import (
    Paywire,
    approve,
    open_store,
    postgres_database,
    serve,
    settings_for,
    sqlite_url,
)
from awskit import SHOP_SECRET, running_shop
from paywire.domain.errors import ConfigError
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.testing import EmulatorServer, free_port
from testkit import CLIENT_ID, CLIENT_SECRET
from webhookkit import PayPal, Recorder, delivery, eventually, post, quiet, transmissions

TOKEN = "metrics-token-0123456789abcdef"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
# The provider port's operations and the emulator requests each one makes.
OPERATIONS = {"create_order": ("POST", r"/v2/checkout/orders"),
              "capture_order": ("POST", r"/v2/checkout/orders/[^/]+/capture"),
              "get_order": ("GET", r"/v2/checkout/orders/[^/]+"),
              "get_capture": ("GET", r"/v2/payments/captures/[^/]+"),
              "get_refund": ("GET", r"/v2/payments/refunds/[^/]+")}


def parse(text: str) -> Samples:
    """Every sample of an exposition, by (sample name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def of(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter never counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def family(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample named `name`, by labels (the non-zero ones)."""
    return {labels: v for (n, labels), v in samples.items() if n == name and v}


async def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    """GET /metrics (with the token), parsed."""
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(url, headers=SCRAPER if headers is None else headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


@contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database URL of the backend (SQLite: migrated by paywire on start)."""
    if backend == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with postgres_database() as url:
            yield url


async def put_order(database_url: str, order_id: str, status: OrderStatus, age: timedelta,
                    attention: str | None = None) -> None:
    """An order written straight to the store, last updated `age` ago."""
    store = open_store(database_url)
    line = OrderLine("mug", "Mug", 1, Money(1250, "USD"))
    order = dataclasses.replace(Order.new(order_id, Intent.CAPTURE, [line],
                                          datetime.now(UTC) - age),
                                status=status, needs_attention=attention)
    try:
        async with store.transaction() as uow:
            await uow.insert_order(order)
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_real_flow_moves_each_counter_by_what_happened(
        backend: str, emulator: EmulatorServer, tmp_path: Path) -> None:
    """Checkout (one replayed by its Idempotency-Key), capture, PayPal's deliveries posted
    once each then one again, an unsigned and a doctored one, the announcements delivered to
    the shop, the reconciler's first pass: the scrape counts exactly those, provider calls
    match the emulator's request log one for one, and the gauges read the store."""
    recorder = Recorder()
    recorder.server.start()
    paypal = PayPal(emulator, CLIENT_ID, CLIENT_SECRET)
    hook = f"{recorder.url}/hook"
    webhook_id = await paypal.subscribe(hook)
    try:
        with database(backend, tmp_path) as url, running_shop() as shop, serve(
                emulator, url, tmp_path, paypal_webhook_id=webhook_id, metrics="app",
                metrics_token=TOKEN, metrics_gauge_cache_seconds=0,
                fulfilment_url=shop.url, fulfilment_secret=SHOP_SECRET,
                outbox_worker_enabled=True, outbox_interval_seconds=0.05,
                reconcile_interval_seconds=3600) as pw:
            await flow(pw, emulator, shop, hook)
    finally:
        recorder.server.stop()


async def flow(pw: Paywire, emulator: EmulatorServer, shop: Any, hook: str) -> None:
    """The flow and its checks (see the test)."""
    metrics = f"{pw.url}/metrics"
    # The reconciler's first pass runs at start (its next in an hour): clean, nothing due.
    await eventually(lambda: _passes(metrics), "the reconciler's first pass", timeout=20)

    async with httpx.AsyncClient(base_url=pw.url, timeout=30) as client:
        key = {"Idempotency-Key": f"checkout-{secrets.token_hex(4)}"}
        body = {"items": [{"sku": "mug", "quantity": 1}]}
        created = await client.post("/v1/checkout/orders", json=body, headers=key)
        assert created.status_code == 201, created.text
        again = await client.post("/v1/checkout/orders", json=body, headers=key)
        assert again.headers.get("idempotent-replayed") == "true"
        order = created.json()
        await approve(emulator, order["provider_order_id"])
        captured = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
        assert captured.status_code == 200, captured.text

    await quiet(emulator, timeout=20)
    sent = [delivery(t) for t in sorted(transmissions(emulator, hook),
                                        key=lambda t: t.first_time)]
    ours = [d for d in sent if order["provider_order_id"] in d.body.decode()]
    assert ours, [d.event_type for d in sent]
    outcomes: Counter[str] = Counter()
    for d in [*ours, ours[0]]:
        answer = await post(pw.webhook_url, d)
        assert answer.status_code == 200, answer.text
        outcomes[answer.json()["outcome"]] += 1
    assert outcomes["duplicate"] >= 1, outcomes
    checks: Counter[str] = Counter()
    doctored = ours[0].body.replace(b'"id"', b'"id" ', 1)
    for answer in (await post(pw.webhook_url, ours[0], drop=("PAYPAL-TRANSMISSION-SIG",)),
                   await post(pw.webhook_url, ours[0], body=doctored)):
        assert answer.status_code == 400, answer.text
        checks[answer.json()["error"]["details"]["check"]] += 1

    # The announcements reach the shop, and the background work (confirmations) settles.
    async def settled() -> Samples | None:
        samples = await scrape(metrics)
        announced = await pw.outbox(order["id"])
        delivered = [m for m in announced if m.status == "delivered"]
        calls = {op: len(pw.provider_calls(*OPERATIONS[op])) for op in OPERATIONS}
        counted = Counter[str]()
        for labels, value in family(samples, "paywire_provider_calls_total").items():
            counted[dict(labels)["operation"]] += int(value)
        done = (announced and len(delivered) == len(announced)
                and of(samples, "paywire_outbox_deliveries_total", result="delivered")
                == len(announced) and of(samples, "paywire_truth_queue_depth") == 0
                and of(samples, "paywire_outbox_backlog") == 0
                and all(counted[op] == n for op, n in calls.items()))
        return samples if done else None

    samples = await eventually(settled, "the outbox delivered and every call counted",
                               timeout=30)
    announced = await pw.outbox(order["id"])
    assert sorted(shop.accepted) == sorted(m.id for m in announced)

    # Webhooks: each answer counted by its outcome, each refusal by its check.
    expected = {**outcomes, "rejected": 2}
    assert family(samples, "paywire_webhook_deliveries_total") == {
        frozenset({("provider", "paypal"), ("outcome", o)}): n for o, n in expected.items()}
    assert family(samples, "paywire_webhook_rejections_total") == {
        frozenset({("provider", "paypal"), ("check", c)}): n for c, n in checks.items()}
    posted = sum(expected.values())
    assert of(samples, "paywire_webhook_ingest_seconds_count", provider="paypal") == posted
    assert of(samples, "paywire_webhook_verify_seconds_count", provider="paypal") == posted
    assert of(samples, "paywire_webhook_ingest_seconds_bucket", provider="paypal",
              le="+Inf") == posted
    # Provider calls: one create, one capture (the replay made none), all ok, each timed.
    calls = family(samples, "paywire_provider_calls_total")
    assert calls[frozenset({("provider", "paypal"), ("operation", "create_order"),
                            ("outcome", "ok")})] == 1
    assert calls[frozenset({("provider", "paypal"), ("operation", "capture_order"),
                            ("outcome", "ok")})] == 1
    assert {dict(labels)["outcome"] for labels in calls} == {"ok"}
    for labels, n in calls.items():
        operation = dict(labels)["operation"]
        assert of(samples, "paywire_provider_call_seconds_count", provider="paypal",
                  operation=operation) == n
    assert family(samples, "paywire_provider_call_failures_total") == {}
    # The idempotent replay, the reconciler's one clean pass, the outbox's deliveries only.
    assert family(samples, "paywire_idempotency_replays_total") == {
        frozenset({("endpoint", "POST /v1/checkout/orders")}): 1}
    assert family(samples, "paywire_reconcile_passes_total") == {
        frozenset({("outcome", "clean")}): 1}
    assert family(samples, "paywire_reconcile_orders_total") == {}
    assert family(samples, "paywire_outbox_deliveries_total") == {
        frozenset({("result", "delivered")}): len(announced)}
    assert family(samples, "paywire_outbox_messages_dead_total") == {}
    assert family(samples, "paywire_needs_attention_flagged_total") == {}
    # Gauges: read from the store at each scrape (no cache here).
    assert of(samples, "paywire_needs_attention_orders") == 0
    assert of(samples, "paywire_outbox_dead_messages") == 0
    assert of(samples, "paywire_outbox_oldest_due_age_seconds") == 0
    assert of(samples, "paywire_orders_stuck", status="APPROVED") == 0
    await put_order(pw.database_url, "ord_flagged", OrderStatus.COMPLETED, timedelta(minutes=1),
                    attention="undelivered:order.completed")
    await put_order(pw.database_url, "ord_stuck", OrderStatus.APPROVED, timedelta(days=2))
    later = await scrape(metrics)
    assert of(later, "paywire_needs_attention_orders") == 1
    assert of(later, "paywire_orders_stuck", status="APPROVED") == 1
    assert of(later, "paywire_orders_stuck", status="PENDING") == 0
    # No id of an order, event or message in any label.
    async with httpx.AsyncClient(timeout=10) as c:
        text = (await c.get(metrics, headers=SCRAPER)).text
    assert order["id"] not in text and order["provider_order_id"] not in text
    assert not any(m.id in text for m in announced)


async def _passes(metrics: str) -> bool:
    return of(await scrape(metrics), "paywire_reconcile_passes_total", outcome="clean") == 1


async def test_metrics_on_the_app_need_the_token(emulator: EmulatorServer,
                                                 tmp_path: Path) -> None:
    """`PAYWIRE_METRICS=app`: without the token, or with another, 401 in the error shape
    (`WWW-Authenticate: Bearer`); with it, 200. The endpoint is not in the OpenAPI document."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path, metrics="app",
               metrics_token=TOKEN) as pw:
        async with httpx.AsyncClient(base_url=pw.url, timeout=10) as c:
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                            {"Authorization": TOKEN}):
                r = await c.get("/metrics", headers=headers)
                assert r.status_code == 401, r.text
                assert r.json()["error"]["code"] == "unauthorized"
                assert r.headers["www-authenticate"] == "Bearer"
                assert TOKEN not in r.text
            ok = await c.get("/metrics", headers=SCRAPER)
            assert ok.status_code == 200
            assert "paywire_webhook_deliveries_total" in ok.text
            assert "paywire_outbox_backlog 0.0" in ok.text
            assert "/metrics" not in (await c.get("/openapi.json")).text


async def test_metrics_on_a_port_of_their_own(emulator: EmulatorServer, tmp_path: Path) -> None:
    """`PAYWIRE_METRICS=port`: the API has no /metrics; the metrics port serves it (and nothing
    else), asking for the token when one is set."""
    port = free_port()
    with serve(emulator, sqlite_url(tmp_path), tmp_path, metrics="port", metrics_port=port,
               metrics_token=TOKEN) as pw:
        async with httpx.AsyncClient(timeout=10) as c:
            assert (await c.get(f"{pw.url}/metrics", headers=SCRAPER)).status_code == 404
            assert (await c.get(f"http://127.0.0.1:{port}/metrics")).status_code == 401
            assert (await c.get(f"http://127.0.0.1:{port}/v1/catalog")).status_code == 404
            # A delivery refused on the API (no webhook id configured) shows there.
            r = await c.post(f"{pw.url}/webhooks/paypal", content=b"{}")
            assert r.status_code == 403
        samples = await scrape(f"http://127.0.0.1:{port}/metrics")
    assert of(samples, "paywire_webhook_deliveries_total", provider="paypal",
              outcome="rejected") == 1
    assert of(samples, "paywire_truth_queue_depth") == 0


def test_metrics_off_by_default(emulator: EmulatorServer, tmp_path: Path) -> None:
    """Unset, there is no /metrics at all."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path) as pw:
        assert httpx.get(f"{pw.url}/metrics", headers=SCRAPER).status_code == 404


@pytest.mark.parametrize(("overrides", "message"), [
    ({"metrics": "app"}, "PAYWIRE_METRICS=app needs PAYWIRE_METRICS_TOKEN"),
    ({"metrics": "app", "metrics_token": "short"}, "PAYWIRE_METRICS_TOKEN is shorter"),
    ({"metrics": "port", "metrics_port": 8000, "port": 8000}, "must differ from PAYWIRE_PORT"),
])
def test_unsafe_metrics_settings_are_refused(emulator: EmulatorServer, tmp_path: Path,
                                             overrides: dict[str, Any], message: str) -> None:
    """`/metrics` open to all on the API's port, a guessable token, or the metrics port on the
    API's: configuration errors naming the setting (never the token)."""
    with pytest.raises(ConfigError, match=message) as raised:
        settings_for(emulator, sqlite_url(tmp_path), tmp_path, **overrides)
    assert "short" not in raised.value.message.replace("shorter", "")


