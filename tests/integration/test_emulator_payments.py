"""Payments v2 on the emulator over real HTTP: captures, refunds, authorizations, control API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from paywire.emulator import EmulatorConfig
from paywire.testing import EmulatorServer
from testkit import (
    OTHER_ID,
    OTHER_SECRET,
    approve,
    auth_headers,
    events,
    get_token,
    order_body,
    two_app_config,
    usd,
)

FULL = {"Prefer": "return=representation"}
DAY = 86400


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Two apps, so resources of one can be looked up with the other's token."""
    return two_app_config()




def issue_of(r: httpx.Response) -> str:
    """The first PayPal issue name in an error answer."""
    name: str = r.json()["details"][0]["issue"]
    return name




def captured(paypal: httpx.Client, value: str = "10.00", scenario: str = "approve",
             **unit: object) -> dict[str, Any]:
    """The capture of a freshly created, approved and captured order."""
    order = paypal.post("/v2/checkout/orders", json=order_body(value, "USD", **unit)).json()
    approve(paypal, order["id"], scenario)
    r = paypal.post(f"/v2/checkout/orders/{order['id']}/capture", headers=FULL)
    assert r.status_code == 201, r.text
    cap: dict[str, Any] = r.json()["purchase_units"][0]["payments"]["captures"][0]
    return cap


def authorized(paypal: httpx.Client, value: str = "10.00") -> dict[str, Any]:
    """The authorization of a freshly created, approved and authorized order."""
    body = order_body(value, custom_id="shop-order-7")
    body["intent"] = "AUTHORIZE"
    order = paypal.post("/v2/checkout/orders", json=body).json()
    approve(paypal, order["id"])
    r = paypal.post(f"/v2/checkout/orders/{order['id']}/authorize", headers=FULL)
    assert r.status_code == 201, r.text
    auth: dict[str, Any] = r.json()["purchase_units"][0]["payments"]["authorizations"][0]
    return auth


def refund(paypal: httpx.Client, capture_id: str, value: str | None = None,
           **headers: str) -> httpx.Response:
    """POST a refund of `value` USD (None: the full remaining amount)."""
    body = {} if value is None else {"amount": usd(value)}
    return paypal.post(f"/v2/payments/captures/{capture_id}/refund", json=body,
                       headers={**FULL, **headers})


def test_get_capture_shows_fee_breakdown_and_links(paypal: httpx.Client) -> None:
    """A capture shows gross - fee = net in minor units, its order id and self/refund/up links."""
    cap = captured(paypal, "10.00", custom_id="shop-1")
    got = paypal.get(f"/v2/payments/captures/{cap['id']}").json()
    assert got == cap
    srb = got["seller_receivable_breakdown"]
    assert srb["gross_amount"] == usd("10.00")
    assert srb["paypal_fee"] == usd("0.84")  # 3.49% of 10.00 rounded, plus 0.49
    assert srb["net_amount"] == usd("9.16")
    assert got["supplementary_data"]["related_ids"]["order_id"]
    assert [link["rel"] for link in got["links"]] == ["self", "refund", "up"]


def test_full_refund_without_amount(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """An empty refund body refunds everything, marks the capture REFUNDED and emits the refund."""
    cap = captured(paypal, "25.00", custom_id="shop-2")
    r = paypal.post(f"/v2/payments/captures/{cap['id']}/refund")
    assert r.status_code == 201
    assert set(r.json()) == {"id", "status", "links"}
    full = paypal.get(f"/v2/payments/refunds/{r.json()['id']}").json()
    assert full["amount"] == usd("25.00")
    assert full["custom_id"] == "shop-2"
    assert {"rel": "up", "method": "GET",
            "href": f"{emulator.url}/v2/payments/captures/{cap['id']}"} in full["links"]
    assert paypal.get(f"/v2/payments/captures/{cap['id']}").json()["status"] == "REFUNDED"
    [event] = events(emulator, "PAYMENT.CAPTURE.REFUNDED")
    assert event["resource_type"] == "refund"
    assert event["resource"]["id"] == full["id"]


def test_partial_refunds_until_exceeded(paypal: httpx.Client) -> None:
    """Partial refunds add up; past what is left: REFUND_AMOUNT_EXCEEDED, then FULLY_REFUNDED."""
    cap = captured(paypal, "10.00")
    first = refund(paypal, cap["id"], "3.00").json()
    assert first["seller_payable_breakdown"]["total_refunded_amount"] == usd("3.00")
    status = paypal.get(f"/v2/payments/captures/{cap['id']}").json()["status"]
    assert status == "PARTIALLY_REFUNDED"
    second = refund(paypal, cap["id"], "4.00", **{"Content-Type": "application/json"}).json()
    assert second["seller_payable_breakdown"]["total_refunded_amount"] == usd("7.00")
    over = refund(paypal, cap["id"], "3.01")
    assert (over.status_code, issue_of(over)) == (422, "REFUND_AMOUNT_EXCEEDED")
    assert refund(paypal, cap["id"], "3.00").status_code == 201
    assert paypal.get(f"/v2/payments/captures/{cap['id']}").json()["status"] == "REFUNDED"
    done = refund(paypal, cap["id"])
    assert (done.status_code, issue_of(done)) == (422, "CAPTURE_FULLY_REFUNDED")


@pytest.mark.parametrize(("body", "status", "name"), [
    ({"amount": {"currency_code": "EUR", "value": "1.00"}}, 422, "CURRENCY_MISMATCH"),
    ({"amount": usd("1.001")}, 422, "DECIMAL_PRECISION"),
    ({"amount": usd("0.00")}, 422, "CANNOT_BE_ZERO_OR_NEGATIVE"),
    ({"amount": usd("-1.00")}, 422, "CANNOT_BE_ZERO_OR_NEGATIVE"),
    ({"amount": {"currency_code": "XYZ", "value": "1.00"}}, 422, "INVALID_CURRENCY_CODE"),
    ({"amount": usd("ten")}, 400, "INVALID_PARAMETER_SYNTAX"),
    ({"amount": {"currency_code": "USD"}}, 400, "MISSING_REQUIRED_PARAMETER"),
    ({"note_to_payer": ""}, 400, "INVALID_STRING_LENGTH"),
    (b"[1, 2]", 400, "INVALID_PARAMETER_SYNTAX"),
    (b"{not json", 400, "INVALID_PARAMETER_SYNTAX"),  # payments' 400s list no MALFORMED_*
])
def test_refund_validation(paypal: httpx.Client, body: object, status: int, name: str) -> None:
    """Malformed or mismatched refund requests answer the issue PayPal documents."""
    cap = captured(paypal)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = paypal.post(f"/v2/payments/captures/{cap['id']}/refund", content=raw,
                    headers={"Content-Type": "application/json"})
    assert (r.status_code, issue_of(r)) == (status, name)


def test_refund_idempotent_with_request_id(paypal: httpx.Client,
                                           emulator: EmulatorServer) -> None:
    """The same PayPal-Request-Id replays the first refund (201) instead of refunding again."""
    cap = captured(paypal, "10.00")
    first = refund(paypal, cap["id"], "2.00", **{"PayPal-Request-Id": "refund-key-1"})
    again = refund(paypal, cap["id"], "2.00", **{"PayPal-Request-Id": "refund-key-1"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert len(emulator.emu.refunds) == 1
    assert emulator.emu.captures[cap["id"]].refunded_minor == 200
    assert len(events(emulator, "PAYMENT.CAPTURE.REFUNDED")) == 1
    other = refund(paypal, cap["id"], "2.00", **{"PayPal-Request-Id": "refund-key-2"})
    assert other.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(("scenario", "name"), [
    ("pending", "PENDING_CAPTURE"), ("decline", "REFUND_NOT_ALLOWED")])
def test_refund_of_unsettled_capture(paypal: httpx.Client, scenario: str, name: str) -> None:
    """Pending captures answer PENDING_CAPTURE, declined ones REFUND_NOT_ALLOWED."""
    cap = captured(paypal, scenario=scenario)
    r = refund(paypal, cap["id"])
    assert (r.status_code, issue_of(r)) == (422, name)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v2/payments/captures/NOSUCHCAPTURE1"),
    ("POST", "/v2/payments/captures/NOSUCHCAPTURE1/refund"),
    ("GET", "/v2/payments/refunds/NOSUCHREFUND1"),
    ("GET", "/v2/payments/authorizations/NOSUCHAUTH1"),
    ("POST", "/v2/payments/authorizations/NOSUCHAUTH1/capture"),
    ("POST", "/v2/payments/authorizations/NOSUCHAUTH1/void"),
    ("POST", "/v2/payments/authorizations/NOSUCHAUTH1/reauthorize"),
])
def test_unknown_ids_are_404(paypal: httpx.Client, method: str, path: str) -> None:
    """Unknown payment ids answer 404 RESOURCE_NOT_FOUND / INVALID_RESOURCE_ID."""
    r = paypal.request(method, path)
    assert r.status_code == 404
    assert (r.json()["name"], issue_of(r)) == ("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID")


def test_other_apps_resources_are_404(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """Captures, refunds and authorizations of another app are invisible (404)."""
    cap = captured(paypal)
    ref = refund(paypal, cap["id"], "1.00").json()
    auth = authorized(paypal)
    token = get_token(emulator.url, OTHER_ID, OTHER_SECRET)
    with httpx.Client(base_url=emulator.url,
                      headers={"Authorization": f"Bearer {token}"}) as other:
        for path in (f"/v2/payments/captures/{cap['id']}", f"/v2/payments/refunds/{ref['id']}",
                     f"/v2/payments/authorizations/{auth['id']}"):
            assert other.get(path).status_code == 404
        assert other.post(f"/v2/payments/captures/{cap['id']}/refund").status_code == 404


def test_authorization_partial_then_final_capture(paypal: httpx.Client,
                                                  emulator: EmulatorServer) -> None:
    """A partial capture leaves PARTIALLY_CAPTURED; final_capture closes it; more is refused."""
    auth = authorized(paypal, "10.00")
    base = f"/v2/payments/authorizations/{auth['id']}"
    r = paypal.post(f"{base}/capture", json={"amount": usd("4.00")})
    assert r.status_code == 201
    assert set(r.json()) == {"id", "status", "links"}
    assert paypal.get(base).json()["status"] == "PARTIALLY_CAPTURED"
    r = paypal.post(f"{base}/capture", json={"amount": usd("3.00"), "final_capture": True},
                    headers=FULL)
    cap = r.json()
    assert (cap["amount"], cap["final_capture"]) == (usd("3.00"), True)
    assert cap["supplementary_data"]["related_ids"]["authorization_id"] == auth["id"]
    assert {"rel": "up", "method": "GET", "href": f"{emulator.url}{base}"} in cap["links"]
    assert paypal.get(base).json()["status"] == "CAPTURED"
    again = paypal.post(f"{base}/capture", json={"amount": usd("1.00")})
    assert (again.status_code, issue_of(again)) == (422, "AUTHORIZATION_ALREADY_CAPTURED")
    order_id = auth["supplementary_data"]["related_ids"]["order_id"]
    order = paypal.get(f"/v2/checkout/orders/{order_id}").json()
    assert order["status"] == "COMPLETED"
    assert len(order["purchase_units"][0]["payments"]["captures"]) == 2
    assert len(events(emulator, "PAYMENT.CAPTURE.COMPLETED")) == 2


def test_authorization_capture_defaults_to_all(paypal: httpx.Client) -> None:
    """A capture without amount takes all, marks the authorization CAPTURED and unvoidable."""
    auth = authorized(paypal, "12.50")
    base = f"/v2/payments/authorizations/{auth['id']}"
    cap = paypal.post(f"{base}/capture", headers=FULL).json()
    assert (cap["amount"], cap["status"], cap["custom_id"]) == (
        usd("12.50"), "COMPLETED", "shop-order-7")
    assert paypal.get(base).json()["status"] == "CAPTURED"
    r = paypal.post(f"{base}/void")
    assert (r.status_code, issue_of(r)) == (422, "PREVIOUSLY_CAPTURED")


@pytest.mark.parametrize(("amount", "name"), [
    (usd("10.01"), "MAX_CAPTURE_AMOUNT_EXCEEDED"),
    ({"currency_code": "EUR", "value": "1.00"}, "AUTH_CAPTURE_CURRENCY_MISMATCH"),
    (usd("1.005"), "DECIMAL_PRECISION"),
])
def test_authorization_capture_refusals(paypal: httpx.Client, amount: dict[str, str],
                                        name: str) -> None:
    """Over-capture, another currency and bad precision answer the documented 422 issue."""
    auth = authorized(paypal, "10.00")
    r = paypal.post(f"/v2/payments/authorizations/{auth['id']}/capture", json={"amount": amount})
    assert (r.status_code, issue_of(r)) == (422, name)


def test_authorization_capture_idempotent(paypal: httpx.Client) -> None:
    """Repeating a capture with the same PayPal-Request-Id replays the same capture (201)."""
    auth = authorized(paypal, "10.00")
    path = f"/v2/payments/authorizations/{auth['id']}/capture"
    headers = {"PayPal-Request-Id": "cap-key-1"}
    first = paypal.post(path, json={"amount": usd("5.00")}, headers=headers)
    again = paypal.post(path, json={"amount": usd("5.00")}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    auth_now = paypal.get(f"/v2/payments/authorizations/{auth['id']}").json()
    assert auth_now["status"] == "PARTIALLY_CAPTURED"


def test_expired_authorization_cannot_be_captured(paypal: httpx.Client,
                                                  emulator: EmulatorServer) -> None:
    """Past its 29 days an authorization still reads CREATED with expiration_time passed (no
    EXPIRED status: see docs/emulator-authorizations.md); capture answers AUTHORIZATION_EXPIRED."""
    auth = authorized(paypal)
    after_honor_period(paypal, emulator, days=29)
    r = paypal.post(f"/v2/payments/authorizations/{auth['id']}/capture")
    assert (r.status_code, issue_of(r)) == (422, "AUTHORIZATION_EXPIRED")
    shown = paypal.get(f"/v2/payments/authorizations/{auth['id']}").json()
    assert (shown["status"], shown["expiration_time"]) == ("CREATED", auth["expiration_time"])
    r = paypal.post(f"/v2/payments/authorizations/{auth['id']}/reauthorize")
    assert (r.status_code, issue_of(r)) == (422, "TRANSACTION_REFUSED")


def test_void_answers_204_and_emits(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """A void answers 204, then capture/void/reauthorize of it are refused."""
    auth = authorized(paypal)
    base = f"/v2/payments/authorizations/{auth['id']}"
    r = paypal.post(f"{base}/void")
    assert (r.status_code, r.content) == (204, b"")
    assert paypal.get(base).json()["status"] == "VOIDED"
    [event] = events(emulator, "PAYMENT.AUTHORIZATION.VOIDED")
    assert (event["resource_type"], event["resource"]["id"]) == ("authorization", auth["id"])
    for action, name in (("void", "PREVIOUSLY_VOIDED"), ("capture", "AUTHORIZATION_VOIDED"),
                         ("reauthorize", "AUTHORIZATION_VOIDED")):
        r = paypal.post(f"{base}/{action}")
        assert (r.status_code, issue_of(r)) == (422, name)


def test_void_with_representation(paypal: httpx.Client) -> None:
    """Prefer: return=representation makes a void answer 200 with the authorization."""
    auth = authorized(paypal)
    r = paypal.post(f"/v2/payments/authorizations/{auth['id']}/void", headers=FULL)
    assert r.status_code == 200
    assert (r.json()["id"], r.json()["status"]) == (auth["id"], "VOIDED")


def after_honor_period(paypal: httpx.Client, emulator: EmulatorServer,
                       days: float = 3.5) -> None:
    """Move the emulator's clock `days` on (past the 3-day honor period) and renew the token."""
    r = paypal.post("/_emulator/clock/advance", json={"seconds": days * DAY})
    assert r.status_code == 200
    paypal.headers.update(auth_headers(emulator.url))  # the old token expired meanwhile


def test_reauthorize(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """After the honor period a reauthorization is a new capturable authorization, once."""
    auth = authorized(paypal, "10.00")
    after_honor_period(paypal, emulator)
    r = paypal.post(f"/v2/payments/authorizations/{auth['id']}/reauthorize",
                    json={"amount": {"currency_code": "EUR", "value": "1.00"}})
    assert (r.status_code, issue_of(r)) == (422, "AUTH_CURRENCY_MISMATCH")
    r = paypal.post(f"/v2/payments/authorizations/{auth['id']}/reauthorize",
                    json={"amount": usd("11.00")}, headers=FULL)
    assert r.status_code == 201
    new = r.json()
    assert new["id"] != auth["id"]
    assert (new["status"], new["amount"]) == ("CREATED", usd("11.00"))
    assert new["expiration_time"] == auth["expiration_time"]
    base = f"/v2/payments/authorizations/{new['id']}"
    r = paypal.post(f"{base}/reauthorize")
    assert (r.status_code, issue_of(r)) == (422, "REAUTHORIZATION_NOT_SUPPORTED")
    r = paypal.post(f"{base}/void")
    assert (r.status_code, issue_of(r)) == (422, "CANNOT_BE_VOIDED")
    cap = paypal.post(f"{base}/capture", headers=FULL).json()
    assert cap["amount"] == usd("11.00")


def test_reauthorize_inside_honor_period_is_too_soon(paypal: httpx.Client,
                                                     emulator: EmulatorServer) -> None:
    """Inside the 3-day honor period (the original's, then the reauthorization's) PayPal answers
    422 REAUTHORIZATION_TOO_SOON; once it is over the reauthorization is made (201)."""
    auth = authorized(paypal)
    url = f"/v2/payments/authorizations/{auth['id']}/reauthorize"
    r = paypal.post(url)
    assert (r.status_code, issue_of(r)) == (422, "REAUTHORIZATION_TOO_SOON")
    assert r.json()["details"][0]["description"].startswith("A reauthorization is only allowed")
    after_honor_period(paypal, emulator, days=2.9)
    r = paypal.post(url)
    assert (r.status_code, issue_of(r)) == (422, "REAUTHORIZATION_TOO_SOON")
    after_honor_period(paypal, emulator, days=0.2)  # day 3.1: the honor period is over
    first = paypal.post(url, headers=FULL)
    assert first.status_code == 201, first.text
    r = paypal.post(url)  # the reauthorization restarted the honor period
    assert (r.status_code, issue_of(r)) == (422, "REAUTHORIZATION_TOO_SOON")
    after_honor_period(paypal, emulator)
    r = paypal.post(url, headers=FULL)
    assert r.status_code == 201, r.text
    assert r.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(("original", "asked", "status"), [
    ("100.00", "115.00", 201),  # exactly 115%
    ("100.00", "115.01", 422),  # the 115% limb
    ("500.00", "575.00", 201),  # exactly USD 75 more (and exactly 115%)
    ("1000.00", "1075.00", 201),  # USD 75 more, below 115%
    ("1000.00", "1075.01", 422),  # the USD 75 limb, though below 115% (1150.00)
    ("10.00", "9.00", 201),  # less than the original
])
def test_reauthorize_amount_cap(paypal: httpx.Client, emulator: EmulatorServer, original: str,
                                asked: str, status: int) -> None:
    """A reauthorization may ask up to 115% of the original and at most USD 75 more, whichever is
    lower; above it PayPal answers 422 AUTHORIZATION_AMOUNT_EXCEEDED."""
    auth = authorized(paypal, original)
    after_honor_period(paypal, emulator)
    r = paypal.post(f"/v2/payments/authorizations/{auth['id']}/reauthorize",
                    json={"amount": usd(asked)}, headers=FULL)
    assert r.status_code == status, r.text
    if status == 422:
        assert issue_of(r) == "AUTHORIZATION_AMOUNT_EXCEEDED"
        assert r.json()["details"][0]["value"] == asked
    else:
        assert r.json()["amount"] == usd(asked)


def test_pending_capture_completes(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """Control complete moves a PENDING capture to COMPLETED and emits PAYMENT.CAPTURE.COMPLETED."""
    cap = captured(paypal, scenario="pending")
    assert (cap["status"], cap["status_details"]) == ("PENDING", {"reason": "PENDING_REVIEW"})
    r = paypal.post(f"/_emulator/captures/{cap['id']}/complete")
    assert r.status_code == 200
    got = paypal.get(f"/v2/payments/captures/{cap['id']}").json()
    assert got["status"] == "COMPLETED"
    assert "status_details" not in got
    [event] = events(emulator, "PAYMENT.CAPTURE.COMPLETED")
    assert event["resource"]["id"] == cap["id"]
    [completed] = events(emulator, "CHECKOUT.ORDER.COMPLETED")  # withheld while pending
    assert completed["resource"]["id"] == cap["supplementary_data"]["related_ids"]["order_id"]
    assert paypal.post(f"/_emulator/captures/{cap['id']}/complete").status_code == 409
    assert refund(paypal, cap["id"]).status_code == 201


def test_pending_capture_denied(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """Control deny moves a PENDING capture to DECLINED and emits PAYMENT.CAPTURE.DENIED."""
    cap = captured(paypal, scenario="pending")
    assert paypal.post(f"/_emulator/captures/{cap['id']}/deny").json()["status"] == "DECLINED"
    assert paypal.get(f"/v2/payments/captures/{cap['id']}").json()["status"] == "DECLINED"
    [event] = events(emulator, "PAYMENT.CAPTURE.DENIED")
    assert event["resource"]["status"] == "DECLINED"
    r = refund(paypal, cap["id"])
    assert (r.status_code, issue_of(r)) == (422, "REFUND_NOT_ALLOWED")


def test_reverse_is_a_chargeback(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """A reversal refunds what is left with reason CHARGEBACK and emits the refund-shaped event."""
    cap = captured(paypal, "10.00", custom_id="shop-9")
    assert refund(paypal, cap["id"], "4.00").status_code == 201
    r = paypal.post(f"/_emulator/captures/{cap['id']}/reverse")
    assert r.status_code == 200
    assert r.json()["amount"] == usd("6.00")
    got = paypal.get(f"/v2/payments/captures/{cap['id']}").json()
    assert (got["status"], got["status_details"]) == ("REFUNDED", {"reason": "CHARGEBACK"})
    [event] = events(emulator, "PAYMENT.CAPTURE.REVERSED")
    assert event["resource_type"] == "refund"
    assert event["resource"]["custom_id"] == "shop-9"
    up = [link["href"] for link in event["resource"]["links"] if link["rel"] == "up"]
    assert up == [f"{emulator.url}/v2/payments/captures/{cap['id']}"]
    r = refund(paypal, cap["id"])
    assert (r.status_code, issue_of(r)) == (422, "REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK")


def test_control_errors_are_plain_json(paypal: httpx.Client) -> None:
    """The control API answers unknown ids and bad bodies with 4xx {error, message}."""
    r = paypal.post("/_emulator/captures/NOPE/complete")
    assert r.status_code == 404
    assert set(r.json()) == {"error", "message"}
    cap = captured(paypal)
    r = paypal.post(f"/_emulator/captures/{cap['id']}/reverse", content=b"[")
    assert r.status_code == 400
    r = paypal.post(f"/_emulator/captures/{cap['id']}/reverse", json={"amount": usd("99.00")})
    assert r.status_code == 400
    assert paypal.post(f"/_emulator/captures/{cap['id']}/deny").status_code == 409


def test_reverse_approval(paypal: httpx.Client, emulator: EmulatorServer) -> None:
    """Reversing an approval emits CHECKOUT.PAYMENT-APPROVAL.REVERSED with the order."""
    order = paypal.post("/v2/checkout/orders", json=order_body()).json()
    r = paypal.post(f"/_emulator/orders/{order['id']}/reverse-approval")
    assert r.status_code == 409
    approve(paypal, order["id"])
    r = paypal.post(f"/_emulator/orders/{order['id']}/reverse-approval")
    assert r.status_code == 200
    [event] = events(emulator, "CHECKOUT.PAYMENT-APPROVAL.REVERSED")
    assert (event["resource_type"], event["resource"]["id"]) == ("checkout-order", order["id"])
    assert emulator.emu.orders[order["id"]].approval_reversed
