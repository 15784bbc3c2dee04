"""The emulator answers garbage with PayPal-shaped 4xx, never a 5xx or a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.testing import EmulatorServer
from testkit import CLIENT_ID, CLIENT_SECRET, approve, auth_headers, order_body

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
# Bodies shaped like the real thing, so validation goes deep before it finds the fault.
money = st.fixed_dictionaries({"currency_code": st.sampled_from(["USD", "JPY", "EUR", "XXX", ""])
                               | json_values,
                               "value": st.from_regex(r"-?[0-9]{0,4}(\.[0-9]{0,4})?",
                                                      fullmatch=True) | json_values})
unit = st.fixed_dictionaries({"amount": money | json_values}, optional={
    "reference_id": json_values | st.text(max_size=300), "items": st.lists(
        st.fixed_dictionaries({"name": json_values, "quantity": st.text(max_size=4) | json_values,
                               "unit_amount": money}), max_size=3) | json_values,
    "invoice_id": json_values, "custom_id": st.text(max_size=300)})
order_like = st.fixed_dictionaries(
    {"intent": st.sampled_from(["CAPTURE", "AUTHORIZE", "X"]) | json_values,
     "purchase_units": st.lists(unit, max_size=3) | json_values})


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    """One emulator for the whole module (Hypothesis calls the test many times)."""
    srv = EmulatorServer(EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)]))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: EmulatorServer) -> Iterator[httpx.Client]:
    """An authenticated client for the module's emulator."""
    with httpx.Client(base_url=server.url, headers=auth_headers(server.url), timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def captured(client: httpx.Client) -> dict[str, str]:
    """An approved order, and a completed capture, to aim garbage at."""
    approved = client.post("/v2/checkout/orders", json=order_body()).json()["id"]
    approve(client, approved)
    paid = client.post("/v2/checkout/orders", json=order_body()).json()["id"]
    approve(client, paid)
    cap = client.post(f"/v2/checkout/orders/{paid}/capture").json()
    return {"order": approved,
            "capture": cap["purchase_units"][0]["payments"]["captures"][0]["id"]}


def assert_paypal_4xx(r: httpx.Response) -> None:
    """A client error in PayPal's shape (or a success), never a server error."""
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        body = r.json()
        assert body["name"] and body["debug_id"] and "message" in body


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(body=order_like | json_values)
def test_create_order_garbage(client: httpx.Client, body: Any) -> None:
    """Random and order-shaped bodies to create-order never produce a 5xx."""
    assert_paypal_4xx(client.post("/v2/checkout/orders", json=body))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(body=json_values, target=st.sampled_from(["order-capture", "order-authorize",
                                                 "order-patch", "refund", "auth-capture"]))
def test_action_garbage(client: httpx.Client, captured: dict[str, str], body: Any,
                        target: str) -> None:
    """Garbage bodies to capture, authorize, patch and refund never produce a 5xx."""
    order, capture = captured["order"], captured["capture"]
    path, method = {
        "order-capture": (f"/v2/checkout/orders/{order}/capture", "POST"),
        "order-authorize": (f"/v2/checkout/orders/{order}/authorize", "POST"),
        "order-patch": (f"/v2/checkout/orders/{order}", "PATCH"),
        "refund": (f"/v2/payments/captures/{capture}/refund", "POST"),
        "auth-capture": ("/v2/payments/authorizations/NOPE/capture", "POST"),
    }[target]
    r = client.request(method, path, content=json.dumps(body))
    assert_paypal_4xx(r)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(raw=st.binary(max_size=200), path=st.sampled_from([
    "/v2/checkout/orders", "/v1/notifications/webhooks", "/v1/notifications/simulate-event",
    "/v1/notifications/verify-webhook-signature", "/v1/oauth2/token", "/_emulator/faults"]))
def test_raw_bytes_garbage(client: httpx.Client, raw: bytes, path: str) -> None:
    """Arbitrary bytes to any POST endpoint answer below 500."""
    r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_malformed(client: httpx.Client, constant: bytes) -> None:
    """NaN/Infinity (accepted by Python, not by JSON) answer MALFORMED_REQUEST_JSON."""
    body = b'{"intent":"CAPTURE","purchase_units":[{"amount":{"currency_code":"USD",' \
        b'"value":"1.00"},"items":[{"name":"a","quantity":"1","sku":' + constant + b'}]}]}'
    r = client.post("/v2/checkout/orders", content=body)
    assert r.status_code == 400
    assert r.json()["details"][0]["issue"] == "MALFORMED_REQUEST_JSON"
