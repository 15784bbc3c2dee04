"""Every row of the emulator's events table: what happens emits the events PayPal emits."""

from __future__ import annotations

from typing import Any

import httpx

from paywire.testing import EmulatorServer
from testkit import approve, order_body


def events_since(emulator: EmulatorServer, start: int) -> list[dict[str, Any]]:
    """Events stored after the first `start` ones, in emission order."""
    return list(emulator.emu.events.values())[start:]


def types_of(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(event_type, resource_type, resource_version) of each event."""
    return [(e["event_type"], e["resource_type"], e["resource_version"]) for e in events]


def paid_order(paypal: httpx.Client, scenario: str = "approve") -> tuple[str, dict[str, Any]]:
    """An order approved with `scenario` and captured; returns (order id, capture)."""
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    approve(paypal, order_id, scenario)
    r = paypal.post(f"/v2/checkout/orders/{order_id}/capture")
    assert r.status_code == 201, r.text
    return order_id, r.json()["purchase_units"][0]["payments"]["captures"][0]


ORDER = ("checkout-order", "2.0")


def test_approval_emits_order_approved(emulator: EmulatorServer, paypal: httpx.Client) -> None:
    """Buyer approval → CHECKOUT.ORDER.APPROVED carrying the APPROVED order."""
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    approve(paypal, order_id)
    (event,) = events_since(emulator, 0)
    assert types_of([event]) == [("CHECKOUT.ORDER.APPROVED", *ORDER)]
    assert event["resource"]["id"] == order_id
    assert event["resource"]["status"] == "APPROVED"
    assert event["id"].startswith("WH-")


def test_capture_completed(emulator: EmulatorServer, paypal: httpx.Client) -> None:
    """A completed capture → PAYMENT.CAPTURE.COMPLETED (capture) and CHECKOUT.ORDER.COMPLETED."""
    order_id, cap = paid_order(paypal)
    events = events_since(emulator, 1)
    assert types_of(events) == [("PAYMENT.CAPTURE.COMPLETED", "capture", "2.0"),
                                ("CHECKOUT.ORDER.COMPLETED", *ORDER)]
    assert events[0]["resource"]["id"] == cap["id"]
    assert events[0]["resource"]["supplementary_data"]["related_ids"]["order_id"] == order_id
    assert events[1]["resource"]["status"] == "COMPLETED"


def test_pending_then_completed_or_denied(emulator: EmulatorServer,
                                          paypal: httpx.Client) -> None:
    """Pending review → PAYMENT.CAPTURE.PENDING, then .COMPLETED or .DENIED via control API."""
    _, cap = paid_order(paypal, "pending")
    assert types_of(events_since(emulator, 1)) == [("PAYMENT.CAPTURE.PENDING", "capture", "2.0")]
    start = len(emulator.emu.events)
    assert paypal.post(f"/_emulator/captures/{cap['id']}/complete").status_code == 200
    done, order_done = events_since(emulator, start)
    assert (done["event_type"], done["resource"]["status"]) == (
        "PAYMENT.CAPTURE.COMPLETED", "COMPLETED")
    # The order completes (and says so, once) when its last pending capture completes.
    assert order_done["event_type"] == "CHECKOUT.ORDER.COMPLETED"
    _, cap2 = paid_order(paypal, "pending")
    start = len(emulator.emu.events)
    assert paypal.post(f"/_emulator/captures/{cap2['id']}/deny").status_code == 200
    (denied,) = events_since(emulator, start)
    assert (denied["event_type"], denied["resource"]["status"]) == (
        "PAYMENT.CAPTURE.DENIED", "DECLINED")


def test_declined_capture(emulator: EmulatorServer, paypal: httpx.Client) -> None:
    """The card-declined scenario → PAYMENT.CAPTURE.DECLINED and no order completion."""
    paid_order(paypal, "decline")
    assert types_of(events_since(emulator, 1)) == [("PAYMENT.CAPTURE.DECLINED", "capture", "2.0")]


def test_authorize_and_void(emulator: EmulatorServer, paypal: httpx.Client) -> None:
    """Authorize → PAYMENT.AUTHORIZATION.CREATED; void → PAYMENT.AUTHORIZATION.VOIDED."""
    body = order_body()
    body["intent"] = "AUTHORIZE"
    order_id = paypal.post("/v2/checkout/orders", json=body).json()["id"]
    approve(paypal, order_id)
    auth = paypal.post(f"/v2/checkout/orders/{order_id}/authorize").json()[
        "purchase_units"][0]["payments"]["authorizations"][0]
    assert paypal.post(f"/v2/payments/authorizations/{auth['id']}/void").status_code == 204
    events = events_since(emulator, 1)
    assert types_of(events) == [("PAYMENT.AUTHORIZATION.CREATED", "authorization", "2.0"),
                                ("PAYMENT.AUTHORIZATION.VOIDED", "authorization", "2.0")]
    assert events[1]["resource"]["status"] == "VOIDED"


def test_expired_order_is_voided(emulator: EmulatorServer, paypal: httpx.Client) -> None:
    """An order expiring unapproved → CHECKOUT.ORDER.VOIDED carrying the VOIDED order."""
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    assert paypal.post(f"/_emulator/orders/{order_id}/expire").status_code == 200
    (event,) = events_since(emulator, 0)
    assert types_of([event]) == [("CHECKOUT.ORDER.VOIDED", *ORDER)]
    assert event["resource"]["status"] == "VOIDED"


def test_refund(emulator: EmulatorServer, paypal: httpx.Client) -> None:
    """A refund → PAYMENT.CAPTURE.REFUNDED carrying the refund, linked up to its capture."""
    _, cap = paid_order(paypal)
    start = len(emulator.emu.events)
    refund = paypal.post(f"/v2/payments/captures/{cap['id']}/refund",
                         json={"amount": {"currency_code": "USD", "value": "4.00"}}).json()
    (event,) = events_since(emulator, start)
    assert types_of([event]) == [("PAYMENT.CAPTURE.REFUNDED", "refund", "2.0")]
    assert event["resource"]["id"] == refund["id"]
    ups = [link["href"] for link in event["resource"]["links"] if link["rel"] == "up"]
    assert ups and ups[0].endswith(f"/v2/payments/captures/{cap['id']}")


def test_reversal_and_approval_reversed(emulator: EmulatorServer,
                                        paypal: httpx.Client) -> None:
    """A chargeback and a reversed approval each emit their REVERSED event."""
    _, cap = paid_order(paypal)
    start = len(emulator.emu.events)
    assert paypal.post(f"/_emulator/captures/{cap['id']}/reverse").status_code == 200
    (event,) = events_since(emulator, start)
    assert event["event_type"] == "PAYMENT.CAPTURE.REVERSED"
    order_id = paypal.post("/v2/checkout/orders", json=order_body()).json()["id"]
    approve(paypal, order_id)
    start = len(emulator.emu.events)
    assert paypal.post(f"/_emulator/orders/{order_id}/reverse-approval").status_code == 200
    (event,) = events_since(emulator, start)
    assert types_of([event]) == [("CHECKOUT.PAYMENT-APPROVAL.REVERSED", *ORDER)]
    r = paypal.post(f"/v2/checkout/orders/{order_id}/capture")
    assert r.json()["details"][0]["issue"] == "ORDER_NOT_APPROVED"


def test_dispute_opened_and_resolved(emulator: EmulatorServer, paypal: httpx.Client) -> None:
    """Dispute opened / resolved → CUSTOMER.DISPUTE.CREATED / .RESOLVED carrying the dispute."""
    _, cap = paid_order(paypal)
    start = len(emulator.emu.events)
    r = paypal.post("/_emulator/disputes", json={"capture_id": cap["id"]})
    assert r.status_code in (200, 201), r.text
    dispute_id = r.json()["dispute_id"]
    r = paypal.post(f"/_emulator/disputes/{dispute_id}/resolve",
                    json={"outcome": "RESOLVED_SELLER_FAVOUR"})
    assert r.status_code == 200, r.text
    events = events_since(emulator, start)
    assert types_of(events) == [("CUSTOMER.DISPUTE.CREATED", "dispute", "1.0"),
                                ("CUSTOMER.DISPUTE.RESOLVED", "dispute", "1.0")]
    seller_txn = events[0]["resource"]["disputed_transactions"][0]["seller_transaction_id"]
    assert seller_txn == cap["id"]
    assert paypal.get(f"/v1/customer/disputes/{dispute_id}").json()["status"] == "RESOLVED"
