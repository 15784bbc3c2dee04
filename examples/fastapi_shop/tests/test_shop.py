"""The coffee shop's own tests, written with paywire's pytest plugin (the `paywire_*`
fixtures) as any shop's would be: the whole checkout against the PayPal emulator, no browser,
and the shop's fulfilment code checked for what matters to it (paid exactly once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from paywire.settings import Settings
from paywire.testing import Emulated, ServerThread, WebhookSender, free_port

from ..app import CATALOG, create_app
from ..store import ShopStore


@dataclass
class Shop:
    """The shop, served on loopback, with paywire mounted under /pay."""

    url: str
    store: ShopStore
    settings: Settings
    http: httpx.Client

    def order(self, order_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/api/orders/{order_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture
def shop(paywire_settings: Callable[..., Settings],
         paywire_serve: Callable[..., ServerThread], tmp_path: Path) -> Iterator[Shop]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # paywire's webhook URL (under the shop's /pay mount) is subscribed at the emulator and
    # its webhook id set; the shop's own pages are where PayPal sends the buyer back.
    settings = paywire_settings(paywire_url=f"{url}/pay", catalog_path=CATALOG,
                                return_url=f"{url}/return", cancel_url=f"{url}/cancel")
    app = create_app(settings, tmp_path / "shop")
    paywire_serve(app, port=port)
    with httpx.Client(base_url=url, timeout=10) as http:
        yield Shop(url, app.state.shop, settings, http)


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def buy(shop: Shop, sku: str = "espresso", quantity: int = 2) -> dict[str, Any]:
    created = shop.http.post("/api/orders", json={"sku": sku, "quantity": quantity})
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    assert order["status"] == "awaiting_payment"
    assert order["approve_url"]
    return order


def back_from_paypal(shop: Shop, order: dict[str, Any]) -> httpx.Response:
    """The buyer's browser, sent back by PayPal to the shop's return page."""
    return shop.http.get("/return", params={"token": order["paypal_order_id"],
                                            "PayerID": "TESTBUYER"}, follow_redirects=True)


def test_a_paid_order_is_fulfilled_exactly_once(shop: Shop, paywire_emulator: Emulated,
                                                paywire_webhooks: WebhookSender) -> None:
    order = buy(shop)
    paywire_emulator.approve(order["paypal_order_id"])  # the buyer approves at PayPal
    receipt = back_from_paypal(shop, order)
    assert receipt.status_code == 200, receipt.text

    wait_for(lambda: shop.order(order["id"])["status"] == "paid", "the shop's order paid")
    completed = [m for m in shop.store.messages() if m[1] == "order.completed"]
    assert [m[2] for m in completed] == [order["paywire_order_id"]]
    paid_by = shop.store.get(order["id"])
    assert paid_by is not None and paid_by.paid_by_message == completed[0][0]
    assert 'data-status=paid' in shop.http.get(f"/orders/{order['id']}").text

    # PayPal's webhook for the capture reached paywire under the shop's mount, verified.
    wait_for(lambda: paywire_emulator.deliveries("/pay/webhooks/paypal"), "webhook deliveries")
    [event] = paywire_emulator.events("PAYMENT.CAPTURE.COMPLETED", order["paypal_order_id"])
    webhook_id = shop.settings.paypal.webhook_id
    assert webhook_id is not None
    # PayPal delivering it again (at least once, it says) changes nothing for the shop...
    again = paywire_webhooks.redeliver(event, f"{shop.url}/pay/webhooks/paypal",
                                       webhook_id=webhook_id).send()
    assert again.status_code == 200, again.text
    # ... and neither does paywire delivering its announcement twice.
    shop.store.fulfil(completed[0][0], "order.completed", {"order_id": order["paywire_order_id"]})
    time.sleep(0.3)  # a few outbox rounds
    assert [m for m in shop.store.messages() if m[1] == "order.completed"] == completed


def test_a_declined_card_leaves_the_order_unpaid(shop: Shop, paywire_emulator: Emulated) -> None:
    order = buy(shop, "grinder", 1)
    paywire_emulator.decline(order["paypal_order_id"])
    receipt = back_from_paypal(shop, order)
    assert receipt.status_code == 200, receipt.text
    wait_for(lambda: shop.order(order["id"])["status"] == "payment_failed", "payment_failed")
    assert [m[1] for m in shop.store.messages()] == ["order.denied"]


def test_a_forged_webhook_is_refused(shop: Shop, paywire_emulator: Emulated,
                                     paywire_webhooks: WebhookSender) -> None:
    order = buy(shop)
    paywire_emulator.approve(order["paypal_order_id"])
    [approved] = paywire_emulator.events("CHECKOUT.ORDER.APPROVED", order["paypal_order_id"])
    # PayPal's own delivery of that approval reaches paywire too: let its announcement land
    # first, so that what the forgery could add is all that is left to see.
    wait_for(lambda: [m[1] for m in shop.store.messages()] == ["order.approved"],
             "the genuine approval's announcement")
    webhook_id = shop.settings.paypal.webhook_id
    assert webhook_id is not None
    forged = paywire_webhooks.paypal(f"{shop.url}/pay/webhooks/paypal",
                                     {**approved, "event_type": "PAYMENT.CAPTURE.COMPLETED"},
                                     webhook_id=webhook_id)
    forged.body = forged.body.replace(b"APPROVED", b"COMPLETED")  # altered after signing
    refused = forged.send()
    assert refused.status_code == 400, refused.text
    assert shop.order(order["id"])["status"] == "awaiting_payment"
    time.sleep(0.3)  # a few outbox rounds
    assert [m[1] for m in shop.store.messages()] == ["order.approved"]


def test_an_unknown_product_is_refused(shop: Shop) -> None:
    answer = shop.http.post("/api/orders", json={"sku": "teapot", "quantity": 1})
    assert answer.status_code == 404
    assert shop.http.post("/api/orders", json={"sku": "espresso", "quantity": 0}
                          ).status_code == 422
