"""paywire's endpoints served through Django: a buyer's checkout through the project's URLs, and
PayPal's signed webhooks through Django's ASGI handler, verified on the raw body and applied
once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.conf import settings
from shop.models import Shipment

from paywire.contrib.django.models import ProcessedMessage

from ..conftest import Site

pytestmark = pytest.mark.usefixtures("products")


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def paid_order(site: Site, http: httpx.Client) -> dict[str, Any]:
    """A mug bought through the project's paywire URLs, approved at the emulator, captured."""
    created = http.post(f"{site.paywire}/v1/checkout/orders",
                        json={"items": [{"sku": "mug", "quantity": 2}]})
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    assert order["amount"] == {"currency_code": "USD", "value": "25.00"}  # priced by paywire
    site.emulator.approve(order)
    captured = http.post(f"{site.paywire}/v1/checkout/orders/{order['id']}/capture")
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "COMPLETED"
    return order


def test_checkout_and_a_redelivered_webhook_apply_once(site: Site) -> None:
    """The emulator's webhooks reach paywire through Django and are taken; the same event
    signed and delivered again is answered 200 and changes nothing; the shop ships once."""
    with httpx.Client(timeout=15) as http:
        order = paid_order(site, http)
        events = wait_for(lambda: site.emulator.events("PAYMENT.CAPTURE.COMPLETED",
                                                       order=order), "the capture event")
        webhook = f"{site.paywire}/webhooks/paypal"
        wait_for(lambda: [d for d in site.emulator.deliveries("/paywire/webhooks/paypal")
                          if d["event_id"] == events[0]["id"] and d["status"] == 200],
                 "the emulator's delivery through Django")
        again = site.emulator.webhooks.redeliver(
            events[0], webhook, webhook_id=settings.PAYWIRE["PAYPAL_WEBHOOK_ID"]).send()
        assert again.status_code == 200, again.text
        wait_for(lambda: Shipment.objects.filter(paywire_order_id=order["id"]).exists(),
                 "the shipment")
        admin = http.get(f"{site.paywire}/v1/orders/{order['id']}")
    assert admin.json()["status"] == "COMPLETED"
    assert Shipment.objects.filter(paywire_order_id=order["id"]).count() == 1
    assert list(ProcessedMessage.objects.filter(order_id=order["id"]).values_list(
        "type", flat=True)) == ["order.completed"]


def test_webhook_is_verified_on_the_raw_body(site: Site) -> None:
    """A signed delivery whose body was re-serialised on the way is refused (400), as PayPal's
    signature covers the bytes; the untouched bytes are accepted."""
    event = {"id": "WH-DJANGO-RAW-1", "event_version": "1.0", "create_time":
             "2026-01-01T00:00:00Z", "resource_type": "checkout-order",
             "event_type": "CHECKOUT.ORDER.APPROVED", "summary": "An order has been approved",
             "resource": {"id": "5O190127TN364715T", "status": "APPROVED"}}
    delivery = site.emulator.webhooks.paypal(
        f"{site.paywire}/webhooks/paypal", event,
        webhook_id=settings.PAYWIRE["PAYPAL_WEBHOOK_ID"])
    forged = site.emulator.webhooks.paypal(
        f"{site.paywire}/webhooks/paypal", event,
        webhook_id=settings.PAYWIRE["PAYPAL_WEBHOOK_ID"])
    forged.body = json.dumps(json.loads(forged.body), indent=2).encode()
    refused = forged.send()
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"]
    accepted = delivery.send()
    assert accepted.status_code == 200, accepted.text


def test_the_endpoints_answer_through_djangos_sync_handler_too(site: Site) -> None:
    """Under WSGI (Django's test client's handler) the same views reach the same runtime:
    paywire's answer, its content type and its structured errors, unchanged."""
    from django.test import Client

    client = Client()
    catalog = client.get("/paywire/v1/catalog")
    assert catalog.status_code == 200
    assert catalog.headers["Content-Type"] == "application/json"
    assert {p["sku"] for p in catalog.json()["products"]} == {"mug", "tee", "stickers"}
    missing = client.get("/paywire/v1/orders/ord_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    refused = client.post("/paywire/v1/checkout/orders", {"items": [{"sku": "mug",
                                                                     "quantity": 0}]},
                          content_type="application/json")
    assert refused.status_code in (400, 422)
    assert refused.json()["error"]["code"]
