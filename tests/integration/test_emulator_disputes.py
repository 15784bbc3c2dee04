"""Customer Disputes v1 on the emulator over real HTTP: open, show, list, resolve."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from paywire.emulator import EmulatorConfig
from paywire.testing import EmulatorServer
from testkit import (
    OTHER_ID,
    OTHER_SECRET,
    approve,
    events,
    get_token,
    order_body,
    two_app_config,
    usd,
)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Two apps, so one app's disputes can be looked up with the other's token."""
    return two_app_config()






def capture_id(paypal: httpx.Client, value: str = "10.00") -> str:
    """The id of the capture of a freshly paid order."""
    order = paypal.post("/v2/checkout/orders", json=order_body(value, custom_id="shop-1")).json()
    approve(paypal, order["id"])
    r = paypal.post(f"/v2/checkout/orders/{order['id']}/capture",
                    headers={"Prefer": "return=representation"})
    cid: str = r.json()["purchase_units"][0]["payments"]["captures"][0]["id"]
    return cid


def open_dispute(paypal: httpx.Client, cid: str, **extra: object) -> dict[str, Any]:
    """Open a dispute through the control API and return it."""
    r = paypal.post("/_emulator/disputes", json={"capture_id": cid, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_open_and_get_dispute(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """Opening a dispute emits CUSTOMER.DISPUTE.CREATED naming the capture; GET shows the same."""
    cid = capture_id(paypal)
    dispute = open_dispute(paypal, cid, reason="UNAUTHORISED", amount=usd("4.00"))
    assert dispute["status"] == "WAITING_FOR_SELLER_RESPONSE"
    assert dispute["dispute_amount"] == usd("4.00")
    assert dispute["disputed_transactions"][0]["seller_transaction_id"] == cid
    got = paypal.get(f"/v1/customer/disputes/{dispute['dispute_id']}")
    assert got.status_code == 200
    assert got.json() == dispute
    [event] = events(emulator, "CUSTOMER.DISPUTE.CREATED")
    assert event["resource_type"] == "dispute"
    assert event["resource"]["dispute_id"] == dispute["dispute_id"]


def test_list_disputes_filters(paypal: httpx.Client) -> None:
    """The list call filters by transaction and state, pages, and omits `items` when empty."""
    first, second = capture_id(paypal), capture_id(paypal)
    d1 = open_dispute(paypal, first)
    d2 = open_dispute(paypal, second)
    listed = paypal.get("/v1/customer/disputes").json()
    assert {d["dispute_id"] for d in listed["items"]} == {d1["dispute_id"], d2["dispute_id"]}
    one = paypal.get("/v1/customer/disputes", params={"disputed_transaction_id": first}).json()
    assert [d["dispute_id"] for d in one["items"]] == [d1["dispute_id"]]
    resolved = paypal.get("/v1/customer/disputes", params={"dispute_state": "RESOLVED"}).json()
    assert "items" not in resolved
    page = paypal.get("/v1/customer/disputes", params={"page_size": 1}).json()
    assert len(page["items"]) == 1
    [next_link] = [link["href"] for link in page["links"] if link["rel"] == "next"]
    rest = paypal.get(next_link).json()
    assert {d["dispute_id"] for d in page["items"] + rest["items"]} == {
        d1["dispute_id"], d2["dispute_id"]}
    bad = paypal.get("/v1/customer/disputes", params={"page_size": 0})
    assert bad.status_code == 400


def test_resolve_in_seller_favour(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """A seller-favour resolution closes the dispute and leaves the capture untouched."""
    cid = capture_id(paypal)
    dispute = open_dispute(paypal, cid)
    r = paypal.post(f"/_emulator/disputes/{dispute['dispute_id']}/resolve",
                    json={"outcome": "RESOLVED_SELLER_FAVOUR"})
    assert r.status_code == 200
    got = paypal.get(f"/v1/customer/disputes/{dispute['dispute_id']}").json()
    assert got["status"] == "RESOLVED"
    assert got["dispute_outcome"] == {"outcome_code": "RESOLVED_SELLER_FAVOUR"}
    assert paypal.get(f"/v2/payments/captures/{cid}").json()["status"] == "COMPLETED"
    [event] = events(emulator, "CUSTOMER.DISPUTE.RESOLVED")
    assert event["resource"]["status"] == "RESOLVED"
    assert events(emulator, "PAYMENT.CAPTURE.REVERSED") == []


def test_resolve_in_buyer_favour_reverses(paypal: httpx.Client,
                                          emulator: EmulatorServer) -> None:
    """A buyer-favour resolution reverses the disputed amount on the capture first."""
    cid = capture_id(paypal, "10.00")
    dispute = open_dispute(paypal, cid, amount="6.00")
    paypal.post(f"/_emulator/disputes/{dispute['dispute_id']}/resolve",
                json={"outcome": "RESOLVED_BUYER_FAVOUR"})
    got = paypal.get(f"/v1/customer/disputes/{dispute['dispute_id']}").json()
    assert got["dispute_outcome"]["amount_refunded"] == usd("6.00")
    cap = paypal.get(f"/v2/payments/captures/{cid}").json()
    assert (cap["status"], cap["status_details"]) == ("PARTIALLY_REFUNDED",
                                                      {"reason": "CHARGEBACK"})
    [reversed_event] = events(emulator, "PAYMENT.CAPTURE.REVERSED")
    assert reversed_event["resource"]["amount"] == usd("6.00")
    kinds = [e["event_type"] for e in emulator.emu.events.values()]
    assert kinds.index("PAYMENT.CAPTURE.REVERSED") < kinds.index("CUSTOMER.DISPUTE.RESOLVED")


def test_open_dispute_blocks_partial_refund(paypal: httpx.Client) -> None:
    """While a dispute is open a partial refund is TRANSACTION_DISPUTED; a full one is allowed."""
    cid = capture_id(paypal)
    open_dispute(paypal, cid)
    r = paypal.post(f"/v2/payments/captures/{cid}/refund", json={"amount": usd("1.00")})
    assert (r.status_code, r.json()["details"][0]["issue"]) == (422, "TRANSACTION_DISPUTED")
    assert paypal.post(f"/v2/payments/captures/{cid}/refund").status_code == 201


def test_unknown_and_foreign_disputes_are_404(paypal: httpx.Client,
                                              emulator: EmulatorServer) -> None:
    """Unknown dispute ids, and another app's disputes, answer 404 in the error shape."""
    r = paypal.get("/v1/customer/disputes/PP-D-00000000")
    assert r.status_code == 404
    assert {"name", "message", "debug_id"} <= set(r.json())
    dispute = open_dispute(paypal, capture_id(paypal))
    token = get_token(emulator.url, OTHER_ID, OTHER_SECRET)
    with httpx.Client(base_url=emulator.url,
                      headers={"Authorization": f"Bearer {token}"}) as other:
        assert other.get(f"/v1/customer/disputes/{dispute['dispute_id']}").status_code == 404
        assert "items" not in other.get("/v1/customer/disputes").json()


@pytest.mark.parametrize(("body", "status"), [
    ({"capture_id": "NOPE"}, 404),
    ({"reason": "BORED"}, 400),
    ({"amount": "10.01"}, 400),
    ({"amount": {"currency_code": "EUR", "value": "1.00"}}, 400),
])
def test_open_dispute_control_errors(paypal: httpx.Client, body: dict[str, object],
                                     status: int) -> None:
    """Bad control requests to open a dispute answer 4xx {error, message}."""
    r = paypal.post("/_emulator/disputes", json={"capture_id": capture_id(paypal), **body})
    assert r.status_code == status
    assert set(r.json()) == {"error", "message"}


def test_resolve_control_errors(paypal: httpx.Client) -> None:
    """Unknown disputes, unknown outcomes and second resolutions are refused."""
    assert paypal.post("/_emulator/disputes/PP-D-1/resolve",
                       json={"outcome": "ACCEPTED"}).status_code == 404
    dispute = open_dispute(paypal, capture_id(paypal))
    path = f"/_emulator/disputes/{dispute['dispute_id']}/resolve"
    assert paypal.post(path, json={"outcome": "MAYBE"}).status_code == 400
    assert paypal.post(path, json={"outcome": "DENIED"}).status_code == 200
    assert paypal.post(path, json={"outcome": "DENIED"}).status_code == 409
