"""The checkout API over real HTTP against the emulator: every capture flow, faults and crashes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikit import (
    ADMIN,
    Paywire,
    approve,
    assert_error,
    buy,
    control,
    postgres_database,
    serve,
    sqlite_url,
)
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.ports import CaptureResult, PaymentProvider
from paywire.testing import EmulatorServer
from testkit import CLIENT_ID, CLIENT_SECRET, get_token

CAPTURE_PATH = r"/v2/checkout/orders/[^/]+/capture"


def config(**changes: Any) -> EmulatorConfig:
    """The suite's emulator configuration with `changes`."""
    values: dict[str, Any] = {"apps": [AppCredentials(CLIENT_ID, CLIENT_SECRET)],
                              "record_responses": True, "webhook_time_scale": 0.001,
                              "seed": 1234}
    values.update(changes)
    return EmulatorConfig(**values)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this module."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def paywire(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Paywire]:
    """paywire on SQLite in the test's directory, against the emulator."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path) as pw:
        yield pw


@pytest.fixture
async def client(paywire: Paywire) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client for paywire (no API key)."""
    async with httpx.AsyncClient(base_url=paywire.url, timeout=30) as c:
        yield c


def types(messages: list[Any]) -> list[str]:
    """The announcement types, oldest first."""
    return [m.type for m in messages]


async def test_catalog_lists_server_prices(client: httpx.AsyncClient) -> None:
    """GET /v1/catalog answers the products at the catalog's prices."""
    r = await client.get("/v1/catalog")
    assert r.status_code == 200
    products = {p["sku"]: p for p in r.json()["products"]}
    assert products["mug"]["unit_amount"] == {"currency_code": "USD", "value": "12.50"}
    assert products["poster"]["in_stock"] is False


async def test_create_approve_capture_completes_and_announces_once(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """create → approve → capture by PayPal's id → COMPLETED, one order.completed; repeats agree."""
    r = await client.post("/v1/checkout/orders", json={
        "items": [{"sku": "mug", "quantity": 2}, {"sku": "tee", "quantity": 1}]})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "CREATED" and order["intent"] == "CAPTURE"
    assert order["amount"] == {"currency_code": "USD", "value": "45.00"}
    assert order["approve_url"].endswith(f"token={order['provider_order_id']}")
    await approve(emulator, order["provider_order_id"])
    captured = await client.post(f"/v1/checkout/orders/{order['provider_order_id']}/capture")
    assert captured.status_code == 200, captured.text
    done = captured.json()
    assert done["status"] == "COMPLETED" and done["id"] == order["id"]
    assert "capture_id" not in done  # the browser gets the buyer's view
    again = (await client.post(f"/v1/checkout/orders/{order['id']}/capture",
                               headers=ADMIN)).json()
    assert (again["status"], again["captured"]) == (
        "COMPLETED", {"currency_code": "USD", "value": "45.00"})
    assert again["capture_id"]
    fetched = await client.get(f"/v1/orders/{order['provider_order_id']}")
    assert fetched.json()["status"] == "COMPLETED"
    assert types(await paywire.outbox(order["id"])).count("order.completed") == 1
    assert len(paywire.provider_calls("POST", CAPTURE_PATH)) == 1


async def test_declined_capture_denies_the_order(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """A declined card leaves the order DENIED, announced as denied and never as completed."""
    order = await buy(client, emulator, scenario="decline")
    r = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "DENIED"
    announced = types(await paywire.outbox(order["id"]))
    assert "order.denied" in announced and "order.completed" not in announced


async def test_pending_capture_is_not_paid_yet(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """A capture pending review leaves the order PENDING with nothing announced as paid."""
    order = await buy(client, emulator, scenario="pending")
    r = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "PENDING"
    assert "order.completed" not in types(await paywire.outbox(order["id"]))


async def test_instrument_declined_then_reapproved_captures_with_a_new_key(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """INSTRUMENT_DECLINED → 422 payer_action_required; after re-approval a new attempt wins."""
    order = await buy(client, emulator, scenario="instrument_declined")
    r = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    error = assert_error(r, 422, "payer_action_required")
    assert error["details"]["issue"] == "INSTRUMENT_DECLINED"
    await approve(emulator, order["provider_order_id"], "approve")
    r = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "COMPLETED"
    keys = [e.request_id for e in paywire.provider_calls("POST", CAPTURE_PATH)]
    assert len(keys) == 2 and keys[0] != keys[1]
    assert types(await paywire.outbox(order["id"])).count("order.completed") == 1


async def test_provider_5xx_then_success_retries_under_one_key(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """Two 500s from PayPal, then success: retried with the same PayPal-Request-Id, COMPLETED."""
    order = await buy(client, emulator)
    await control(emulator, "faults", {"target": "http", "action": "error", "status": 500,
                                       "method": "POST", "path": CAPTURE_PATH, "count": 2})
    r = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "COMPLETED"
    calls = paywire.provider_calls("POST", CAPTURE_PATH)
    assert [c.status for c in calls] == [500, 500, 201]
    assert len({c.request_id for c in calls}) == 1


@pytest.mark.parametrize("emulator_config", [config(token_ttl_seconds=600)])
async def test_token_expiry_mid_run_reauthenticates(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """A token PayPal expired under paywire's feet: one 401, a new token, the capture succeeds."""
    order = await buy(client, emulator)
    await control(emulator, "clock/advance", {"seconds": 601})
    r = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "COMPLETED"
    assert [c.status for c in paywire.provider_calls("POST", CAPTURE_PATH)] == [401, 201]
    assert len(paywire.provider_calls("POST", "/v1/oauth2/token")) == 2


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_concurrent_captures_make_one_paypal_call(
        backend: str, emulator: EmulatorServer, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    """20 simultaneous captures of one order: one capture reaches PayPal, all answer the same."""
    url = request.getfixturevalue("pg_url") if backend == "postgres" else sqlite_url(tmp_path)
    with serve(emulator, url, tmp_path) as pw:
        async with httpx.AsyncClient(base_url=pw.url, timeout=60) as c:
            order = await buy(c, emulator)
            answers = await asyncio.gather(*(
                c.post(f"/v1/checkout/orders/{order['id']}/capture", headers=ADMIN)
                for _ in range(20)))
            assert {a.status_code for a in answers} == {200}
            bodies = [a.json() for a in answers]
            assert {(b["status"], b["capture_id"]) for b in bodies} == {
                ("COMPLETED", bodies[0]["capture_id"])}
            assert len(pw.provider_calls("POST", CAPTURE_PATH)) == 1
            assert types(await pw.outbox(order["id"])).count("order.completed") == 1


class SimulatedCrash(Exception):
    """Stands for the process dying between PayPal's answer and paywire's commit."""


class CrashAfterFirstCapture:
    """The real PayPal client, except the first capture 'crashes' after PayPal answered."""

    def __init__(self, real: PaymentProvider) -> None:
        self.real = real
        self.name = real.name
        self.crashed = False

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.real, attr)

    async def capture_order(self, provider_order_id: str, *, request_id: str,
                            **kw: Any) -> CaptureResult:
        """Capture for real; the first time, lose the answer."""
        result = await self.real.capture_order(provider_order_id, request_id=request_id, **kw)
        if not self.crashed:
            self.crashed = True
            raise SimulatedCrash("the process died before committing the capture")
        return result


@pytest.mark.parametrize("emulator_config", [config(orders_idempotency_seconds=0)])
async def test_crash_replay_past_key_retention_converges_once(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    """Crash after PayPal captured; the retry's replay is refused (key expired), the truth wins."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path, wrap_provider=CrashAfterFirstCapture,
               operation_lease_seconds=1.0, paypal_timeout_seconds=1.0) as pw:
        async with httpx.AsyncClient(base_url=pw.url, timeout=30) as c:
            order = await buy(c, emulator)
            crashed = await c.post(f"/v1/checkout/orders/{order['id']}/capture")
            assert_error(crashed, 500, "internal_error")
            assert "SimulatedCrash" not in crashed.text
            retried = await c.post(f"/v1/checkout/orders/{order['id']}/capture")
            assert retried.status_code == 200, retried.text
            assert retried.json()["status"] == "COMPLETED"
            calls = pw.provider_calls("POST", CAPTURE_PATH)
            assert [x.status for x in calls] == [201, 422]
            assert calls[0].request_id == calls[1].request_id
            assert len(emulator.emu.captures) == 1
            assert types(await pw.outbox(order["id"])).count("order.completed") == 1


async def test_amount_mismatch_needs_attention_and_is_never_announced_paid(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """PayPal captures an amount other than ours: needs attention, no order.completed."""
    r = await client.post("/v1/checkout/orders", json={"items": [{"sku": "mug", "quantity": 1}]})
    created = r.json()
    one = {"currency_code": "USD", "value": "1.00"}
    unit = f"/purchase_units/@reference_id=='{created['id']}'"
    token = get_token(emulator.url)
    async with httpx.AsyncClient(base_url=emulator.url,
                                 headers={"Authorization": f"Bearer {token}"}) as pp:
        patched = await pp.patch(f"/v2/checkout/orders/{created['provider_order_id']}", json=[
            {"op": "replace", "path": f"{unit}/amount",
             "value": {**one, "breakdown": {"item_total": one}}},
            {"op": "replace", "path": f"{unit}/items",
             "value": [{"name": "tampered", "quantity": "1", "unit_amount": one}]}])
        assert patched.status_code == 204, patched.text
    await approve(emulator, created["provider_order_id"])
    r = await client.post(f"/v1/checkout/orders/{created['id']}/capture", headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["needs_attention"] == "amount_mismatch" and body["status"] != "COMPLETED"
    announced = types(await paywire.outbox(created["id"]))
    assert "order.completed" not in announced and "order.needs_attention" in announced


async def test_404_after_the_approval_window_expires_the_order(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    """A capture answered 404 once the order is older than PayPal's window marks it EXPIRED."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path,
               paypal_approval_window_seconds=0) as pw:
        async with httpx.AsyncClient(base_url=pw.url, timeout=30) as client:
            created = (await client.post("/v1/checkout/orders", json={
                "items": [{"sku": "mug", "quantity": 1}]})).json()
            await control(emulator, f"orders/{created['provider_order_id']}/expire",
                          {})
            r = await client.post(f"/v1/checkout/orders/{created['id']}/capture")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "EXPIRED"
            assert types(await pw.outbox(created["id"])) == ["order.expired"]


async def test_young_404_is_not_expiry(client: httpx.AsyncClient, paywire: Paywire,
                                       emulator: EmulatorServer) -> None:
    """A 404 for an order younger than the window is a provider error, not an expiry."""
    created = (await client.post("/v1/checkout/orders", json={
        "items": [{"sku": "mug", "quantity": 1}]})).json()
    await control(emulator, f"orders/{created['provider_order_id']}/expire", {})
    r = await client.post(f"/v1/checkout/orders/{created['id']}/capture")
    assert_error(r, 502, "provider_error")
    order = (await client.get(f"/v1/orders/{created['id']}")).json()
    assert order["status"] == "CREATED"
