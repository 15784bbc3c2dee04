"""Requests fit their deadline: a slow PayPal answers paywire's own 503 with Retry-After before
Lambda's timeout (the Lambda HTTP handler with a context whose remaining time is short) or
before `paywire serve`'s request budget runs out, and the caller's retry under the same
Idempotency-Key is processed, not locked out. PayPal's slowness is the emulator's latency
fault; the store is an SQLite file."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_cli_entrypoints import _start, _stop, _wait_ok

from apikit import settings_for, sqlite_url
from paywire.aws.events import HttpAnswer, LocalContext, http_answer, http_event
from paywire.aws.http import HttpApi
from paywire.testing import EmulatorServer, free_port
from testkit import CLIENT_ID, CLIENT_SECRET

CREATE = "/v1/checkout/orders"
ORDER = {"items": [{"sku": "mug", "quantity": 2}], "intent": "CAPTURE"}
SLOW = 6.0  # seconds PayPal stalls the first order creation: longer than any budget here


pytestmark = pytest.mark.usefixtures("powertools_logging")


async def slow_paypal(emulator: EmulatorServer, path: str = "^/v2/checkout/orders$") -> None:
    """PayPal stalls the next request to `path` for SLOW seconds (then answers it)."""
    async with httpx.AsyncClient(base_url=emulator.url) as emu:
        r = await emu.post("/_emulator/faults", json={"method": "POST", "path": path,
                                                      "action": "latency", "seconds": SLOW,
                                                      "count": 1})
        assert r.status_code in (200, 201), r.text


def assert_deadline_answer(status: int, headers: Any, body: dict[str, Any]) -> None:
    """paywire's own 503: Retry-After and the structured error body."""
    assert status == 503, body
    assert int(headers["retry-after"]) >= 1
    assert set(body) == {"error"} and body["error"]["code"] == "provider_timeout", body
    assert body["error"]["details"]["provider"] == "paypal"


async def invoke(http: HttpApi, key: str, timeout_seconds: float) -> tuple[HttpAnswer, float]:
    """One order creation through the Lambda handler, with `timeout_seconds` left to the
    invocation; the answer and how long it took."""
    raw = json.dumps(ORDER).encode()
    event = http_event("POST", CREATE, body=raw, headers={"content-type": "application/json",
                                                          "idempotency-key": key})
    context = LocalContext(function_name="paywire-http", timeout_seconds=timeout_seconds)
    started = time.monotonic()
    answer = http_answer(await asyncio.to_thread(http, event, context))
    return answer, time.monotonic() - started


async def test_lambda_slow_paypal_answers_503_in_time_and_the_retry_is_not_locked_out(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    """Under Lambda a stalled PayPal ends in paywire's 503 with Retry-After before the
    invocation's timeout; the same Idempotency-Key right after is processed (201), then replayed."""
    settings = settings_for(emulator, sqlite_url(tmp_path), tmp_path,
                            paypal_timeout_seconds=20, request_timeout_seconds=120)
    http = HttpApi(settings_factory=lambda: settings)
    try:
        await invoke(http, "warm-up", 20)  # the cold start (container, token) out of the way
        await slow_paypal(emulator)
        first, took = await invoke(http, "k-slow", 4.5)
        assert took < 4.5, f"the invocation would have been killed ({took:.1f} s)"
        assert_deadline_answer(first.status, first.headers, first.json())
        retry, _ = await invoke(http, "k-slow", 20)
        assert retry.status == 201, retry.json()
        again, _ = await invoke(http, "k-slow", 20)
        assert again.status == 201 and again.headers.get("idempotent-replayed") == "true"
        assert again.json()["id"] == retry.json()["id"]
    finally:
        http.close()


async def test_serve_budget_answers_503_in_time_and_the_retry_is_not_locked_out(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    """`paywire serve` with a 3 s request budget answers a stalled PayPal with its 503 and
    Retry-After within the budget; the same Idempotency-Key right after is processed (201)."""
    port = free_port()
    env = {"PAYWIRE_DATABASE_URL": sqlite_url(tmp_path), "PAYWIRE_DATA_DIR": str(tmp_path),
           "PAYWIRE_PAYPAL_ENV": "emulator", "PAYWIRE_PAYPAL_BASE_URL": emulator.url,
           "PAYWIRE_PAYPAL_CLIENT_ID": CLIENT_ID, "PAYWIRE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
           "PAYWIRE_REQUEST_BUDGET_SECONDS": "3", "PAYWIRE_REQUEST_DEADLINE_RESERVE_SECONDS": "1",
           "PAYWIRE_TRUTH_FETCH_ENABLED": "false"}
    proc = _start(["serve", "--port", str(port)], env, tmp_path)
    try:
        _wait_ok(f"http://127.0.0.1:{port}/healthz", proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            warm = await api.post(CREATE, json=ORDER)  # the PayPal token out of the way
            assert warm.status_code == 201, warm.text
            await slow_paypal(emulator)
            started = time.monotonic()
            first = await api.post(CREATE, json=ORDER, headers={"Idempotency-Key": "k-serve"})
            took = time.monotonic() - started
            assert took < 3.5, f"over the request budget ({took:.1f} s)"
            assert_deadline_answer(first.status_code, first.headers, first.json())
            retry = await api.post(CREATE, json=ORDER, headers={"Idempotency-Key": "k-serve"})
            assert retry.status_code == 201, retry.text
    finally:
        _stop(proc)
