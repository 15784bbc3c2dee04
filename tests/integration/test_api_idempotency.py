"""Idempotency-Key over real HTTP: replay, reuse, in flight, crashed owners, failures, scopes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikit import ADMIN, Paywire, assert_error, buy, control, serve, sqlite_url
from paywire.api.idempotency import fingerprint
from paywire.api.schemas import CreateOrderIn
from paywire.ports import IdempotencyRecord
from paywire.store.sql import SqlStore
from paywire.testing import EmulatorServer

CREATE = "/v1/checkout/orders"
CREATE_PATH = r"/v2/checkout/orders"
REFUND_PATH = r"/v2/payments/captures/[^/]+/refund"
MUG = {"items": [{"sku": "mug", "quantity": 1}], "intent": "CAPTURE"}


@pytest.fixture
def paywire(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Paywire]:
    """paywire on SQLite in the test's directory, against the emulator."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path, request_timeout_seconds=30) as pw:
        yield pw


@pytest.fixture
async def client(paywire: Paywire) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client for paywire."""
    async with httpx.AsyncClient(base_url=paywire.url, timeout=30) as c:
        yield c


def key(name: str) -> dict[str, str]:
    """An Idempotency-Key header."""
    return {"Idempotency-Key": name}


async def test_same_key_same_body_replays_the_first_answer(
        client: httpx.AsyncClient, paywire: Paywire) -> None:
    """A retry with the same key and body answers the first 201, marked replayed, one order."""
    first = await client.post(CREATE, json=MUG, headers=key("k-1"))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # Same request, other key order and whitespace, default intent left out: same canonical JSON.
    second = await client.post(CREATE, content=b'{ "items":[{"quantity":1,"sku":"mug"}] }',
                               headers={**key("k-1"), "Content-Type": "application/json"})
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert len(paywire.provider_calls("POST", CREATE_PATH)) == 1
    listed = (await client.get("/v1/orders", headers=ADMIN)).json()["data"]
    assert [o["id"] for o in listed] == [first.json()["id"]]


async def test_same_key_different_body_is_refused(client: httpx.AsyncClient) -> None:
    """Reusing a key for another request → 422 idempotency_key_reused; the first stays."""
    first = await client.post(CREATE, json=MUG, headers=key("k-2"))
    assert first.status_code == 201
    other = {"items": [{"sku": "mug", "quantity": 2}]}
    assert_error(await client.post(CREATE, json=other, headers=key("k-2")), 422,
                 "idempotency_key_reused")
    again = await client.post(CREATE, json=MUG, headers=key("k-2"))
    assert again.json()["id"] == first.json()["id"]


async def test_same_key_while_in_flight_is_409(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """A second request while the first is still at PayPal → 409 in flight with Retry-After."""
    await control(emulator, "faults", {"target": "http", "action": "latency", "seconds": 1.0,
                                       "method": "POST", "path": CREATE_PATH, "count": 1})
    slow = asyncio.create_task(client.post(CREATE, json=MUG, headers=key("k-3")))
    while not paywire.provider_calls("POST", "/v1/oauth2/token"):
        await asyncio.sleep(0.02)  # the first request is past its key claim
    await asyncio.sleep(0.1)
    busy = await client.post(CREATE, json=MUG, headers=key("k-3"))
    assert_error(busy, 409, "idempotency_key_in_flight")
    assert int(busy.headers["retry-after"]) >= 1
    first = await slow
    assert first.status_code == 201
    replay = await client.post(CREATE, json=MUG, headers=key("k-3"))
    assert replay.json()["id"] == first.json()["id"]
    assert replay.headers["idempotent-replayed"] == "true"


async def test_lapsed_lock_of_a_crashed_owner_resumes_the_same_order(
        client: httpx.AsyncClient, paywire: Paywire) -> None:
    """A key whose owner died mid-request is taken over, and the work keeps its resource id."""
    now = datetime.now(UTC)
    crashed = IdempotencyRecord(
        scope="public|POST /v1/checkout/orders", key="k-4",
        request_hash=fingerprint("POST", CREATE, CreateOrderIn(**MUG)), status="in_flight",
        created_at=now - timedelta(minutes=5), expires_at=now + timedelta(hours=23),
        locked_until=now - timedelta(seconds=1), resource_id="ord_crashedowner000000000001")
    store = SqlStore(paywire.database_url)
    try:
        async with store.transaction() as uow:
            assert await uow.put_idempotency(crashed)
    finally:
        await store.close()
    r = await client.post(CREATE, json=MUG, headers=key("k-4"))
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "ord_crashedowner000000000001"
    assert r.json()["provider_order_id"]
    replay = await client.post(CREATE, json=MUG, headers=key("k-4"))
    assert replay.json() == r.json()


async def test_keys_are_scoped_per_caller(client: httpx.AsyncClient) -> None:
    """The same key from a browser and from an API-key holder names two different requests."""
    public = await client.post(CREATE, json=MUG, headers=key("k-5"))
    trusted = await client.post(CREATE, json=MUG, headers={**key("k-5"), **ADMIN})
    assert public.status_code == trusted.status_code == 201
    assert public.json()["id"] != trusted.json()["id"]
    assert "idempotent-replayed" not in trusted.headers


async def test_refund_key_replays_without_a_second_refund(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """Retrying a refund under its key answers the first refund; PayPal refunds once."""
    order = await buy(client, emulator)
    await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    url = f"/v1/orders/{order['id']}/refunds"
    first = await client.post(url, json={"amount": "5.00"}, headers={**ADMIN, **key("r-1")})
    assert first.status_code == 201, first.text
    second = await client.post(url, json={"amount": "5.00"}, headers={**ADMIN, **key("r-1")})
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert len(paywire.provider_calls("POST", REFUND_PATH)) == 1
    assert_error(await client.post(url, json={"amount": "6.00"},
                                   headers={**ADMIN, **key("r-1")}), 422,
                 "idempotency_key_reused")


async def test_request_refused_before_acting_forgets_its_key(
        client: httpx.AsyncClient, emulator: EmulatorServer) -> None:
    """An over-refund did nothing, so its key is free for the corrected request."""
    order = await buy(client, emulator)
    await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    url = f"/v1/orders/{order['id']}/refunds"
    headers = {**ADMIN, **key("r-2")}
    assert_error(await client.post(url, json={"amount": "99.00"}, headers=headers), 409,
                 "over_refund")
    fixed = await client.post(url, json={"amount": "1.00"}, headers=headers)
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers


async def test_transient_failure_releases_the_key_and_the_retry_resumes(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """PayPal down for every attempt → 502; the retry under the key resumes the same order."""
    await control(emulator, "faults", {"target": "http", "action": "error", "status": 503,
                                       "method": "POST", "path": CREATE_PATH, "count": 4})
    down = await client.post(CREATE, json=MUG, headers=key("k-6"))
    assert_error(down, 502, "provider_unavailable")
    retried = await client.post(CREATE, json=MUG, headers=key("k-6"))
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    ids = {e.request_id for e in paywire.provider_calls("POST", CREATE_PATH)}
    assert ids == {f"{retried.json()['id']}:create"}
    listed = (await client.get("/v1/orders", headers=ADMIN)).json()["data"]
    assert [o["id"] for o in listed] == [retried.json()["id"]]


@pytest.mark.parametrize("bad", ["", "has space", "x" * 256, "caf\u00e9"])
async def test_malformed_keys_are_refused(client: httpx.AsyncClient, bad: str,
                                          paywire: Paywire) -> None:
    """Keys must be 1-255 printable ASCII characters; others → 422 before anything happens."""
    headers: dict[str, Any] = {"Idempotency-Key": bad.encode()}
    r = await client.post(CREATE, json=MUG, headers=headers)
    assert_error(r, 422, "invalid_idempotency_key")
    assert paywire.provider_calls("POST", CREATE_PATH) == []
