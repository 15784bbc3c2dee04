"""Admin API over real HTTP: API keys, listing, refunds, authorizations, probes, bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikit import ADMIN, Paywire, assert_error, buy, serve, sqlite_url
from paywire.testing import EmulatorServer

REFUND_PATH = r"/v2/payments/captures/[^/]+/refund"


@pytest.fixture
def paywire(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Paywire]:
    """paywire on SQLite in the test's directory, against the emulator."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path) as pw:
        yield pw


@pytest.fixture
async def client(paywire: Paywire) -> AsyncIterator[httpx.AsyncClient]:
    """A client without an API key."""
    async with httpx.AsyncClient(base_url=paywire.url, timeout=30) as c:
        yield c


async def paid(client: httpx.AsyncClient, emulator: EmulatorServer) -> dict[str, Any]:
    """A captured order of 25.00 USD."""
    order = await buy(client, emulator)
    r = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    assert r.json()["status"] == "COMPLETED", r.text
    captured: dict[str, Any] = r.json()
    return captured


ADMIN_CALLS = [("GET", "/v1/orders"), ("POST", "/v1/orders/ord_x/refunds"),
               ("POST", "/v1/orders/ord_x/capture"), ("POST", "/v1/orders/ord_x/void")]


async def test_admin_endpoints_refuse_missing_or_wrong_keys(client: httpx.AsyncClient) -> None:
    """No key, a wrong key or another scheme → 401 in the error shape, with a Bearer challenge."""
    for method, path in ADMIN_CALLS:
        for auth in (None, "Bearer wrong-key-0123456789abc", "Bearer", "Basic dXNlcjpwdw=="):
            headers = {"Authorization": auth} if auth else {}
            r = await client.request(method, path, headers=headers)
            assert_error(r, 401, "unauthorized", f"{method} {path} with {auth}")
            assert r.headers["www-authenticate"] == "Bearer"


async def test_list_orders_filters_by_status_and_pages(
        client: httpx.AsyncClient, emulator: EmulatorServer) -> None:
    """GET /v1/orders pages newest first with a cursor and filters by status."""
    done = await paid(client, emulator)
    created = [(await client.post("/v1/checkout/orders", json={
        "items": [{"sku": "tee", "quantity": 1}]})).json()["id"] for _ in range(3)]
    first = (await client.get("/v1/orders?limit=2", headers=ADMIN)).json()
    assert [o["id"] for o in first["data"]] == created[::-1][:2]
    second = (await client.get(f"/v1/orders?limit=2&cursor={first['next_cursor']}",
                               headers=ADMIN)).json()
    assert [o["id"] for o in second["data"]] == [created[0], done["id"]]
    assert second["next_cursor"] is None
    only = (await client.get("/v1/orders?status=COMPLETED", headers=ADMIN)).json()
    assert [o["id"] for o in only["data"]] == [done["id"]]
    assert_error(await client.get("/v1/orders?cursor=garbage", headers=ADMIN), 422,
                 "validation_error")
    assert_error(await client.get("/v1/orders?status=NOPE", headers=ADMIN), 422,
                 "validation_error")


async def test_over_refund_is_refused_before_paypal(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """A refund above what was captured → 409 over_refund, and PayPal never hears of it."""
    order = await paid(client, emulator)
    r = await client.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "25.01"},
                          headers=ADMIN)
    error = assert_error(r, 409, "over_refund")
    assert error["details"]["refundable"] == "25.00"
    assert paywire.provider_calls("POST", REFUND_PATH) == []


async def test_partial_then_full_refund_announces_each(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """10.00 back, then the rest: PARTIALLY_REFUNDED, REFUNDED, two refund announcements."""
    order = await paid(client, emulator)
    part = await client.post(f"/v1/orders/{order['id']}/refunds",
                             json={"amount": "10.00", "reason": "one mug broke"}, headers=ADMIN)
    assert part.status_code == 201, part.text
    assert part.json()["order"]["status"] == "PARTIALLY_REFUNDED"
    assert part.json()["reason"] == "one mug broke"
    rest = await client.post(f"/v1/orders/{order['id']}/refunds", headers=ADMIN)
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"]["value"] == "15.00"
    assert rest.json()["order"]["status"] == "REFUNDED"
    assert rest.json()["order"]["refundable"]["value"] == "0.00"
    keys = [m.key for m in await paywire.outbox(order["id"]) if m.key.startswith("refund:")]
    assert len(keys) == 2
    again = await client.post(f"/v1/orders/{order['id']}/refunds", headers=ADMIN)
    assert_error(again, 409, "illegal_transition")


async def test_authorize_then_admin_capture(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """AUTHORIZE intent: authorize at checkout, capture later as admin → COMPLETED once."""
    order = await buy(client, emulator, intent="AUTHORIZE")
    wrong = await client.post(f"/v1/checkout/orders/{order['id']}/capture")
    assert_error(wrong, 409, "illegal_transition")
    r = await client.post(f"/v1/checkout/orders/{order['id']}/authorize", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "AUTHORIZED" and r.json()["authorization_id"]
    r = await client.post(f"/v1/orders/{order['id']}/capture", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "COMPLETED"
    messages = [m.type for m in await paywire.outbox(order["id"])]
    assert messages.count("order.completed") == 1


async def test_authorize_then_void(
        client: httpx.AsyncClient, paywire: Paywire, emulator: EmulatorServer) -> None:
    """An authorization voided by an admin: VOIDED, announced, and no longer capturable."""
    order = await buy(client, emulator, intent="AUTHORIZE")
    await client.post(f"/v1/checkout/orders/{order['id']}/authorize")
    r = await client.post(f"/v1/orders/{order['id']}/void", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "VOIDED"
    assert "order.voided" in [m.type for m in await paywire.outbox(order["id"])]
    again = await client.post(f"/v1/orders/{order['id']}/capture", headers=ADMIN)
    assert_error(again, 409, "illegal_transition")


async def test_trusted_callers_may_price_lines_browsers_may_not(
        client: httpx.AsyncClient) -> None:
    """Priced `lines` need an API key; with one, paywire uses those amounts (checked for PayPal)."""
    body = {"lines": [{"name": "Consulting", "quantity": 3,
                       "unit_amount": {"currency_code": "EUR", "value": "19.99"}}]}
    assert_error(await client.post("/v1/checkout/orders", json=body), 401, "unauthorized")
    r = await client.post("/v1/checkout/orders", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == {"currency_code": "EUR", "value": "59.97"}
    huf = {"lines": [{"name": "x", "quantity": 1,
                      "unit_amount": {"currency_code": "HUF", "value": "10.50"}}]}
    bad = await client.post("/v1/checkout/orders", json=huf, headers=ADMIN)
    assert_error(bad, 422, "validation_error")


async def test_probes_docs_and_request_ids(client: httpx.AsyncClient) -> None:
    """healthz, readyz, /docs and /openapi.json answer; a valid X-Request-Id is echoed."""
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/checkout/orders" in spec["paths"] and "/v1/orders/{order_id}/refunds" in (
        spec["paths"])
    echoed = await client.get("/healthz", headers={"X-Request-Id": "shop-abc.123"})
    assert echoed.headers["x-request-id"] == "shop-abc.123"
    made = await client.get("/healthz", headers={"X-Request-Id": "bad id <script>"})
    assert made.headers["x-request-id"].startswith("req_")
    assert_error(await client.get("/nope"), 404, "not_found")
    assert_error(await client.delete("/v1/catalog"), 405, "method_not_allowed")


async def test_cors_allows_the_shops_origin_only(client: httpx.AsyncClient) -> None:
    """A preflight from the configured origin is allowed; another origin is not."""
    pre = {"Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type,idempotency-key"}
    ok = await client.options("/v1/checkout/orders",
                              headers={"Origin": "https://shop.example", **pre})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://shop.example"
    other = await client.options("/v1/checkout/orders",
                                 headers={"Origin": "https://evil.example", **pre})
    assert "access-control-allow-origin" not in other.headers


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("malformed JSON", b'{"items": [', 422, "malformed_json"),
    ("not an object", b"[1, 2]", 422, "validation_error"),
    ("wrong types", b'{"items": [{"sku": "mug", "quantity": "2"}]}', 422, "validation_error"),
    ("float quantity", b'{"items": [{"sku": "mug", "quantity": 1.5}]}', 422, "validation_error"),
    ("quantity 0", b'{"items": [{"sku": "mug", "quantity": 0}]}', 422, "validation_error"),
    ("too many", b'{"items": [{"sku": "mug", "quantity": 10001}]}', 422, "validation_error"),
    ("unknown sku", b'{"items": [{"sku": "nope", "quantity": 1}]}', 422, "validation_error"),
    ("out of stock", b'{"items": [{"sku": "poster", "quantity": 1}]}', 422, "validation_error"),
    ("bad sku", b'{"items": [{"sku": "../etc", "quantity": 1}]}', 422, "validation_error"),
    ("price sent", b'{"items": [{"sku": "mug", "quantity": 1, "price": "0.01"}]}', 422,
     "validation_error"),
    ("amount sent", b'{"items": [{"sku": "mug", "quantity": 1}], "amount": "1.00"}', 422,
     "validation_error"),
    ("bad intent", b'{"items": [{"sku": "mug", "quantity": 1}], "intent": "SALE"}', 422,
     "validation_error"),
    ("no items", b'{"items": []}', 422, "validation_error"),
    ("empty", b"{}", 422, "validation_error"),
    ("NaN", b'{"items": [{"sku": "mug", "quantity": NaN}]}', 422, "validation_error"),
    ("huge", json.dumps({"items": [{"sku": "mug", "quantity": 1}] * 2000}).encode(), 413,
     "payload_too_large"),
]


async def test_bad_checkout_input_is_a_4xx_in_the_error_shape(
        client: httpx.AsyncClient, paywire: Paywire) -> None:
    """Bad input to POST /v1/checkout/orders is never a 500 and never reaches PayPal."""
    for what, raw, status, code in BAD_BODIES:
        r = await client.post("/v1/checkout/orders", content=raw,
                              headers={"Content-Type": "application/json"})
        assert_error(r, status, code, what)
    no_type = await client.post("/v1/checkout/orders", content=b"items=mug")
    assert_error(no_type, 422, "validation_error", "form body")
    assert paywire.provider_calls("POST", "/v2/checkout/orders") == []


async def test_bad_input_elsewhere_is_a_4xx(client: httpx.AsyncClient,
                                            emulator: EmulatorServer) -> None:
    """Unknown orders, malformed ids, bad refund bodies and chunked huge bodies → 4xx."""
    assert_error(await client.get("/v1/orders/ord_unknown"), 404, "not_found")
    assert_error(await client.get("/v1/orders/bad%20id!"), 422, "validation_error")
    assert_error(await client.post("/v1/checkout/orders/ord_unknown/capture"), 404, "not_found")
    order = await paid(client, emulator)
    refunds = f"/v1/orders/{order['id']}/refunds"
    for body in ({"amount": "1.001"}, {"amount": 5}, {"amount": "-1.00"}, {"note": "x"}):
        r = await client.post(refunds, json=body, headers=ADMIN)
        assert_error(r, 422, "validation_error")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    assert_error(await client.post("/v1/checkout/orders", content=chunks(),
                                   headers={"Content-Type": "application/json"}),
                 413, "payload_too_large")


async def test_store_down_is_503_never_500(emulator: EmulatorServer, tmp_path: Path) -> None:
    """With the database unreachable: readyz and API calls answer 503 in the error shape."""
    dead = "postgresql+psycopg://postgres@127.0.0.1:1/paywire"
    with serve(emulator, dead, tmp_path) as pw:
        async with httpx.AsyncClient(base_url=pw.url, timeout=30) as c:
            assert (await c.get("/healthz")).status_code == 200
            assert_error(await c.get("/readyz"), 503, "not_ready")
            r = await c.post("/v1/checkout/orders", json={"items": [{"sku": "mug", "quantity": 1}]})
            error = assert_error(r, 503, "storage_unavailable")
            assert "127.0.0.1" not in error["message"]
