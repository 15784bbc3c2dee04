"""Paying by card through APS, end to end over HTTP: paywire + the APS emulator + SQLite.

The buyer is driven over HTTP on the emulator's hosted payment page (`apskit.pay_on_page`); the
emulator's signed direct feedback reaches paywire's `/webhooks/aps`, which moves the order.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikit import ADMIN, Paywire, serve, sqlite_url
from apskit import (
    CARD,
    CHALLENGE,
    DECLINE,
    SUCCESS,
    aps_overrides,
    card_shop,
    hidden_fields,
    pay_on_page,
    point_feedback,
    until,
)
from paywire.testing import EmulatorServer


@pytest.fixture
def paywire(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Paywire]:
    """paywire taking PayPal and cards (APS), both on the emulator, feedback pointed at it."""
    with card_shop(emulator, tmp_path) as pw:
        yield pw


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def create(http: httpx.Client, pw: Paywire, **extra: Any) -> dict[str, Any]:
    body = {"items": [{"sku": "mug", "quantity": 1}], "provider": "aps",
            "customer_email": "buyer@example.com", **extra}
    resp = http.post(f"{pw.url}/v1/checkout/orders", json=body)
    assert resp.status_code == 201, resp.text
    order: dict[str, Any] = resp.json()
    return order


def order_of(http: httpx.Client, pw: Paywire, order_id: str) -> dict[str, Any]:
    """The whole order (the operator's view: with the key)."""
    resp = http.get(f"{pw.url}/v1/orders/{order_id}", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    order: dict[str, Any] = resp.json()
    return order


def status_becomes(http: httpx.Client, pw: Paywire, order_id: str, status: str) -> None:
    until(lambda: order_of(http, pw, order_id)["status"] == status)


async def test_card_payment_with_3ds_completes_and_announces_once(
        http: httpx.Client, paywire: Paywire) -> None:
    order = create(http, paywire)
    assert order["provider"] == "aps" and order["approve_url"] is None
    form = order["checkout_form"]
    assert form["fields"]["merchant_reference"] == f"{order['id']}-1"
    assert form["fields"]["command"] == "PURCHASE"
    returned = pay_on_page(http, form, card=CHALLENGE)
    assert returned["response_code"] == "14000"
    status_becomes(http, paywire, order["id"], "COMPLETED")
    done = order_of(http, paywire, order["id"])
    assert done["capture_id"] == returned["fort_id"] and done["checkout_form"] is None
    messages = await paywire.outbox(order["id"])
    assert [m.type for m in messages].count("order.completed") == 1
    page = http.post(f"{paywire.url}/v1/aps/return", data=returned)
    assert page.status_code == 200 and "Payment received" in page.text
    forged = http.post(f"{paywire.url}/v1/aps/return", data={**returned, "amount": "1"})
    assert forged.status_code == 400 and "not verified" in forged.text


async def test_declined_card_opens_a_second_attempt(http: httpx.Client,
                                                    paywire: Paywire) -> None:
    order = create(http, paywire)
    returned = pay_on_page(http, order["checkout_form"], card=DECLINE)
    assert returned["status"] == "13"
    until(lambda: order_of(http, paywire, order["id"])["payment_attempt"] == 2)
    again = order_of(http, paywire, order["id"])
    assert again["status"] == "CREATED"
    assert again["checkout_form"]["fields"]["merchant_reference"] == f"{order['id']}-2"
    pay_on_page(http, again["checkout_form"])
    status_becomes(http, paywire, order["id"], "COMPLETED")


@pytest.fixture
def tokenizing(emulator: EmulatorServer, tmp_path: Path) -> Iterator[Paywire]:
    with card_shop(emulator, tmp_path, aps_checkout="tokenization") as pw:
        yield pw


def tokenize(http: httpx.Client, form: dict[str, Any], card: str) -> dict[str, str]:
    """The buyer's browser posts the tokenization form with the card fields (a merchant
    page): APS answers the token on return_url (an auto-submitted form; not followed)."""
    page = http.post(form["url"], data={**form["fields"], "card_number": CARD[card],
                                         "expiry_date": "3512", "card_security_code": "123",
                                         "card_holder_name": "A Buyer"})
    assert page.status_code == 200, page.text[:300]
    return hidden_fields(page.text)


async def test_tokenized_card_with_3ds_is_paid_server_to_server(
        http: httpx.Client, tokenizing: Paywire) -> None:
    pw = tokenizing
    order = create(http, pw)
    form = order["checkout_form"]
    assert form["fields"]["service_command"] == "TOKENIZATION"
    returned = tokenize(http, form, CHALLENGE)
    assert returned["response_code"] == "18000"
    landing = http.post(f"{pw.url}/v1/aps/return", data=returned)
    assert landing.status_code == 303  # to APS's 3ds_url
    challenge = http.get(landing.headers["location"])
    assert challenge.status_code == 200 and 'id="approve"' in challenge.text
    action = re.search(r'action="([^"]+)"', challenge.text)
    assert action is not None
    done = http.post(html.unescape(action.group(1)),
                     data={**hidden_fields(challenge.text), "action": "approve"})
    result = hidden_fields(done.text)
    assert result["response_code"] == "14000" and result["command"] == "PURCHASE"
    status_becomes(http, pw, order["id"], "COMPLETED")
    again = http.post(f"{pw.url}/v1/aps/return", data=returned)  # the token page reloaded
    assert again.status_code == 200 and "Payment received" in again.text
    purchases = [r for r in http.get(f"{pw.emulator.url}/aps/_aps/requests").json()["requests"]
                 if r["command"] == "PURCHASE"]
    assert len(purchases) == 1
    assert [m.type for m in await pw.outbox(order["id"])].count("order.completed") == 1


async def test_tokenized_card_declined_then_paid_on_the_next_attempt(
        http: httpx.Client, tokenizing: Paywire) -> None:
    pw = tokenizing
    order = create(http, pw)
    declined = http.post(f"{pw.url}/v1/aps/return",
                         data=tokenize(http, order["checkout_form"], DECLINE))
    assert declined.status_code == 200 and "declined" in declined.text
    again = order_of(http, pw, order["id"])
    assert again["status"] == "CREATED" and again["payment_attempt"] == 2
    paid = http.post(f"{pw.url}/v1/aps/return",
                     data=tokenize(http, again["checkout_form"], SUCCESS))
    assert paid.status_code == 200 and "Payment received" in paid.text
    assert order_of(http, pw, order["id"])["status"] == "COMPLETED"


async def test_a_refund_notified_before_its_payment_is_counted_after_check_status(
        http: httpx.Client, emulator: EmulatorServer, tmp_path: Path) -> None:
    """The purchase's feedback is lost; a back-office refund's notification arrives first:
    queued as a refund truth fetch, which settles the payment by CHECK_STATUS and then counts
    the refund once."""
    with serve(emulator, sqlite_url(tmp_path), tmp_path, truth_fetch_interval_seconds=0.2,
               truth_fetch_base_delay_seconds=0.1, **aps_overrides(emulator)) as pw:
        point_feedback(emulator, None)
        order = create(http, pw)
        pay_on_page(http, order["checkout_form"])
        point_feedback(emulator, pw.url)
        ref = order["checkout_form"]["fields"]["merchant_reference"]
        refund = http.post(f"{emulator.url}/aps/_aps/transactions/{ref}/refund",
                           json={"amount": 100})
        assert refund.status_code == 200, refund.text
        status_becomes(http, pw, order["id"], "PARTIALLY_REFUNDED")
        done = order_of(http, pw, order["id"])
        assert done["refunded"]["value"] == "1.00"
        types = [m.type for m in await pw.outbox(order["id"])]
        assert types.count("order.completed") == 1
        assert types.count("order.partially_refunded") == 1
        tasks = http.get(f"{pw.url}/v1/admin/truth-tasks", headers=ADMIN).json()["data"]
        assert [(t["kind"], t["status"], t["order_id"]) for t in tasks] == [
            ("refund", "done", order["id"])]


async def test_a_shop_may_offer_aps_alone(http: httpx.Client, emulator: EmulatorServer,
                                          tmp_path: Path) -> None:
    with serve(emulator, sqlite_url(tmp_path), tmp_path, paypal_client_id=None,
               paypal_client_secret=None,
               **aps_overrides(emulator, providers=("aps",))) as pw:
        point_feedback(emulator, pw.url)
        resp = http.post(f"{pw.url}/v1/checkout/orders", json={
            "items": [{"sku": "mug", "quantity": 2}], "customer_email": "b@example.com"})
        assert resp.status_code == 201, resp.text
        order = resp.json()
        assert order["provider"] == "aps" and order["checkout_form"] is not None
        paypal = http.post(f"{pw.url}/v1/checkout/orders", json={
            "items": [{"sku": "mug", "quantity": 1}], "provider": "paypal"})
        assert paypal.status_code == 422 and "does not offer 'paypal'" in paypal.text
        assert http.post(f"{pw.url}/webhooks/paypal", content=b"{}").status_code == 404
        pay_on_page(http, order["checkout_form"])
        status_becomes(http, pw, order["id"], "COMPLETED")


async def test_one_decline_opens_one_attempt_when_feedback_races_the_shops_capture(
        http: httpx.Client, emulator: EmulatorServer, paywire: Paywire) -> None:
    """The decline's feedback lands while the shop's capture call (CHECK_STATUS of attempt 1,
    held 2 s) is out: both learn of the same decline, and the order moves to attempt 2 once,
    so the form the buyer is shown (attempt 2) is the one paywire asks APS about."""
    pw, e = paywire, emulator.url
    order = create(http, pw)
    drop = http.post(f"{e}/aps/_aps/faults", json={"action": "drop"}).json()["id"]
    pay_on_page(http, order["checkout_form"], card=DECLINE)
    assert order_of(http, pw, order["id"])["payment_attempt"] == 1  # its feedback was lost
    http.delete(f"{e}/aps/_aps/faults/{drop}")
    held = http.post(f"{e}/aps/_aps/faults", json={
        "target": "http", "path": "^/FortAPI/paymentApi", "action": "latency",
        "seconds": 2.0}).json()["id"]
    answer: dict[str, httpx.Response] = {}
    shop = threading.Thread(target=lambda: answer.update(r=httpx.post(
        f"{pw.url}/v1/checkout/orders/{order['id']}/capture", timeout=20)))
    shop.start()
    time.sleep(0.5)
    resent = http.post(f"{e}/aps/_aps/transactions/{order['id']}-1/feedback", json={})
    assert resent.status_code == 202
    until(lambda: order_of(http, pw, order["id"])["payment_attempt"] == 2)
    shop.join()
    http.delete(f"{e}/aps/_aps/faults/{held}")
    assert answer["r"].status_code == 422
    assert answer["r"].json()["error"]["code"] == "payment_declined"
    now = order_of(http, pw, order["id"])
    assert (now["status"], now["payment_attempt"]) == ("CREATED", 2)
    pay_on_page(http, now["checkout_form"])
    status_becomes(http, pw, order["id"], "COMPLETED")
