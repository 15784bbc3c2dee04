"""Prometheus in real processes. `paywire serve --workers 2` (uvicorn's supervisor and two worker
processes): counts made in either worker add up in every scrape, whichever worker answers it;
the gauges, read from the store, are not multiplied by the workers; the multiprocess directory
is fresh for the run and gone after it. `paywire worker`: its metrics on the metrics port."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from awskit import SHOP_SECRET, running_shop
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.store import migrate
from paywire.store.sql import SqlStore
from paywire.testing import free_port, free_ports

TOKEN = "metrics-token-0123456789abcdef"
DELIVERIES = 8
SCRAPES = 6


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample of an exposition (None when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def wait_ok(url: str, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200 (the process must stay up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


async def flag_an_order(url: str) -> None:
    """One order flagged needs-attention, written straight to the database."""
    store = SqlStore(url)
    line = OrderLine("mug", "Mug", 1, Money(1250, "USD"))
    order = dataclasses.replace(Order.new("ord_flagged", Intent.CAPTURE, [line],
                                          datetime.now(UTC)),
                                status=OrderStatus.COMPLETED, needs_attention="conflict")
    try:
        async with store.transaction() as uow:
            await uow.insert_order(order)
    finally:
        await store.close()


def test_serve_with_two_workers_adds_up_counts_and_reads_gauges_once(tmp_path: Path) -> None:
    """Every scrape (each on a new connection, so either worker answers) shows all the
    deliveries refused across both workers and the one flagged order once; both workers write
    their counts to the run's directory, which is removed when serve stops."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'paywire.db'}"
    migrate.upgrade(url)
    temp = tmp_path / "tmp"
    temp.mkdir()
    port, nobody = free_ports(2)
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith("PAYWIRE_") and k != "PROMETHEUS_MULTIPROC_DIR"},
           "PAYWIRE_DATABASE_URL": url, "PAYWIRE_DATA_DIR": str(tmp_path),
           "PAYWIRE_PAYPAL_CLIENT_ID": "cid", "PAYWIRE_PAYPAL_CLIENT_SECRET": "csecret",
           "PAYWIRE_PAYPAL_BASE_URL": f"http://127.0.0.1:{nobody}",
           "PAYWIRE_STARTUP_CREDENTIALS_CHECK": "false", "PAYWIRE_RECONCILE_ENABLED": "false",
           "PAYWIRE_TRUTH_FETCH_ENABLED": "false", "PAYWIRE_METRICS": "app",
           "PAYWIRE_METRICS_TOKEN": TOKEN, "PAYWIRE_METRICS_GAUGE_CACHE_SECONDS": "0",
           "TMPDIR": str(temp)}
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "paywire.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ok(f"{base}/healthz", proc)
        [run_dir] = list(temp.glob("paywire-metrics-*"))
        for _ in range(DELIVERIES):  # a new connection each: spread over the workers
            assert httpx.post(f"{base}/webhooks/paypal", content=b"{}").status_code == 403
        asyncio.run(flag_an_order(url))
        for _ in range(SCRAPES):
            r = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200, r.text
            assert value(r.text, "paywire_webhook_deliveries_total", provider="paypal",
                         outcome="rejected") == DELIVERIES
            assert value(r.text, "paywire_webhook_ingest_seconds_count",
                         provider="paypal") == DELIVERIES
            assert value(r.text, "paywire_needs_attention_orders") == 1
            assert value(r.text, "paywire_outbox_backlog") == 0
        pids = {path.stem.rpartition("_")[2] for path in run_dir.glob("*.db")}
        assert len(pids) == 2, sorted(p.name for p in run_dir.glob("*.db"))
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-3000:]
    assert list(temp.glob("paywire-metrics-*")) == []


async def seed_announcement(url: str) -> str:
    """An order with one order.completed announcement due now; the message id."""
    store = SqlStore(url)
    now = datetime.now(UTC)
    line = OrderLine("mug", "Mug", 1, Money(1250, "USD"))
    try:
        async with store.transaction() as uow:
            await uow.insert_order(Order.new("ord_worker", Intent.CAPTURE, [line], now))
            assert await uow.add_announcement(
                Announcement("order.completed:ord_worker", "order.completed", "ord_worker",
                             {"type": "order.completed", "order_id": "ord_worker"}),
                "msg_worker", now)
    finally:
        await store.close()
    return "msg_worker"


def test_the_outbox_worker_serves_its_metrics_on_the_metrics_port(tmp_path: Path) -> None:
    """`paywire worker` with PAYWIRE_METRICS on (it has no API port): its delivery to the shop
    is counted, the gauges read the store, both at GET /metrics on the metrics port (behind
    the token)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'paywire.db'}"
    migrate.upgrade(url)
    message_id = asyncio.run(seed_announcement(url))
    port = free_port()
    with running_shop() as shop:
        env = {**{k: v for k, v in os.environ.items()
                  if not k.startswith("PAYWIRE_") and k != "PROMETHEUS_MULTIPROC_DIR"},
               "PAYWIRE_DATABASE_URL": url, "PAYWIRE_DATA_DIR": str(tmp_path),
               "PAYWIRE_FULFILMENT_URL": shop.url, "PAYWIRE_FULFILMENT_SECRET": SHOP_SECRET,
               "PAYWIRE_METRICS": "app", "PAYWIRE_METRICS_TOKEN": TOKEN,
               "PAYWIRE_METRICS_PORT": str(port), "PAYWIRE_METRICS_GAUGE_CACHE_SECONDS": "0",
               "PAYWIRE_OUTBOX_INTERVAL_SECONDS": "0.05"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "paywire.cli", "worker"], env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        metrics = f"http://127.0.0.1:{port}/metrics"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.communicate()[0][-3000:]
                try:
                    r = httpx.get(metrics, headers={"Authorization": f"Bearer {TOKEN}"})
                except httpx.TransportError:
                    r = None
                if r is not None and r.status_code == 200 and value(
                        r.text, "paywire_outbox_deliveries_total", result="delivered") == 1:
                    break
                assert time.monotonic() < deadline, r.text if r is not None else "no answer"
                time.sleep(0.1)
            assert value(r.text, "paywire_outbox_backlog") == 0
            assert value(r.text, "paywire_outbox_dead_messages") == 0
            assert httpx.get(metrics).status_code == 401
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out[-3000:]
    assert shop.accepted[message_id] == 1
