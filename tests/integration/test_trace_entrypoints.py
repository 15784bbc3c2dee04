"""JSON log lines with the trace from the real entry points, each a process of its own.

`paywire serve` (JSON by default): a checkout created and captured with a `traceparent`, every
stderr line one JSON object, the access lines and the PayPal client's lines under the caller's
trace, no secret anywhere. `paywire refund` (an operator command, JSON asked for): its lines
join the order's trace and its refund is recorded in it. `paywire worker` (JSON by default): a
seeded outbox row delivered with its trace on the callback and on the delivery's log line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from apikit import API_KEY, open_store
from paywire.domain import trace
from paywire.domain.facts import Announcement
from paywire.store import migrate
from paywire.testing import EmulatorServer, free_port
from testkit import CLIENT_ID, CLIENT_SECRET
from tracekit import WHSEC, Shop
from webhookkit import eventually

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE}-b7ad6b7169203331-01"


def _env(tmp_path: Path, emulator: EmulatorServer, **more: str) -> dict[str, str]:
    base = {"PAYWIRE_DATABASE_URL": f"sqlite:///{tmp_path}/paywire.db",
            "PAYWIRE_DATA_DIR": str(tmp_path), "PAYWIRE_PAYPAL_ENV": "emulator",
            "PAYWIRE_PAYPAL_BASE_URL": emulator.url, "PAYWIRE_PAYPAL_CLIENT_ID": CLIENT_ID,
            "PAYWIRE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET, "PAYWIRE_API_KEYS": API_KEY,
            "PAYWIRE_RECONCILE_ENABLED": "false"}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PAYWIRE_") and k != "POWERTOOLS_SERVICE_NAME"}
    return {**env, **base, **more}


def _start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "paywire.cli", *args],  # noqa: S603
                            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err


def _json_lines(err: str) -> list[dict[str, Any]]:
    """Every stderr line, each of which must be one JSON object."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(p, dict) and {"ts", "level", "logger", "msg", "trace_id", "order_id",
                                         "provider", "outcome"} <= set(p) for p in parsed)
    return parsed


def _wait_up(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


def test_serve_and_an_operator_command_log_json_lines_in_the_orders_trace(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    """`paywire serve`: JSON lines on stderr, the checkout's under the caller's trace with the
    order, provider and status; `paywire refund` joins that trace; no secret in any output."""
    env = _env(tmp_path, emulator)
    port = free_port()
    proc = _start(["serve", "--port", str(port)], env, tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_up(f"{base}/healthz", proc)
        created = httpx.post(f"{base}/v1/checkout/orders", headers={"traceparent": TRACEPARENT},
                             json={"items": [{"sku": "mug", "quantity": 2}]}, timeout=30)
        assert created.status_code == 201, created.text
        order = created.json()
        approved = httpx.post(f"{emulator.url}/_emulator/orders/{order['provider_order_id']}"
                              "/approve", json={"scenario": "approve"})
        assert approved.status_code == 200
        captured = httpx.post(f"{base}/v1/checkout/orders/{order['id']}/capture", timeout=30)
        assert captured.status_code == 200 and captured.json()["status"] == "COMPLETED"
    finally:
        out, err = _stop(proc)
    lines = _json_lines(err)
    assert any(p["logger"].startswith("uvicorn") for p in lines)  # uvicorn's own, as JSON
    ours = [p for p in lines if p["trace_id"] == TRACE]
    access = {p["msg"]: p for p in ours if p["logger"] == "paywire.api.access"}
    assert set(access) == {"POST /v1/checkout/orders -> 201",
                           f"POST /v1/checkout/orders/{order['id']}/capture -> 200"}
    assert all((p["order_id"], p["provider"]) == (order["id"], "paypal")
               for p in access.values())
    assert [p["outcome"] for p in access.values()] == ["201", "200"]
    assert any(p["logger"] == "paywire.providers.paypal" for p in ours)
    assert CLIENT_SECRET not in out + err and API_KEY not in out + err

    refunded = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "paywire.cli", "refund", order["id"], "--amount", "5.00",
         "--json"], env={**env, "PAYWIRE_LOG_FORMAT": "json"}, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False)
    assert refunded.returncode == 0, refunded.stderr
    assert json.loads(refunded.stdout)["order"]["status"] == "PARTIALLY_REFUNDED"
    # Wiring the container comes first, in the command's own trace; from the order's lookup
    # on, the command's work is the order's (its PayPal call and its lines).
    command = _json_lines(refunded.stderr)
    first = next(i for i, p in enumerate(command) if p["trace_id"] == TRACE)
    assert first > 0 and all(p["trace_id"] == TRACE for p in command[first:])
    assert any(p["logger"] == "paywire.providers.paypal" for p in command[first:])
    assert CLIENT_SECRET not in refunded.stdout + refunded.stderr
    history = asyncio.run(_history(env["PAYWIRE_DATABASE_URL"], order["id"]))
    assert history and {trace_id for _, trace_id in history} == {TRACE}
    assert "PARTIALLY_REFUNDED" in {status for status, _ in history}


async def _history(database_url: str, order_id: str) -> list[tuple[str, str | None]]:
    store = open_store(database_url)
    try:
        async with store.transaction() as uow:
            return [(str(e.to_status), e.trace_id) for e in await uow.history(order_id)]
    finally:
        await store.close()


def test_worker_delivers_in_the_rows_trace_and_logs_it(emulator: EmulatorServer,
                                                       tmp_path: Path) -> None:
    """`paywire worker`: the shop's callback carries the row's trace; the delivery's JSON
    line names the trace, the order and the outcome."""
    shop = Shop()
    shop.server.start()
    env = _env(tmp_path, emulator, PAYWIRE_FULFILMENT_URL=shop.url,
               PAYWIRE_FULFILMENT_SECRET=WHSEC, PAYWIRE_OUTBOX_INTERVAL_SECONDS="0.05")
    migrate.upgrade(env["PAYWIRE_DATABASE_URL"])
    asyncio.run(_seed(env["PAYWIRE_DATABASE_URL"]))
    proc = _start(["worker"], env, tmp_path)
    try:
        asyncio.run(eventually(lambda: _heard(shop), "the shop to be told", timeout=30))
    finally:
        out, err = _stop(proc)
        shop.server.stop()
    [(delivery, headers)] = shop.deliveries
    assert delivery.trace_id == TRACE and delivery.order_id == "ord_traced"
    parsed = trace.parse(headers["traceparent"])
    assert parsed is not None and parsed.trace_id == TRACE
    [line] = [p for p in _json_lines(err) if p["logger"] == "paywire.outbox"]
    assert (line["trace_id"], line["order_id"], line["outcome"]) == (TRACE, "ord_traced",
                                                                     "delivered")
    assert WHSEC not in out + err


async def _seed(database_url: str) -> None:
    store = open_store(database_url)
    try:
        async with store.transaction() as uow:
            await uow.add_announcement(
                Announcement("order.completed:ord_traced", "order.completed", "ord_traced",
                             {"type": "order.completed", "order_id": "ord_traced"}),
                "msg_traced", datetime.now(UTC), trace_id=TRACE)
    finally:
        await store.close()


async def _heard(shop: Shop) -> bool:
    return bool(shop.deliveries)
