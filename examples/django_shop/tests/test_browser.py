"""A buyer in headless Chromium: the Django shop's catalog page, PayPal's buttons (the
approval in the SDK's popup) and the card option (APS's hosted page), then the order page,
which shows the payment as paid and then the shop's shipment as fulfilled."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from shop.models import Shipment

from paywire.emulator.aps.cards import CARDS, SUCCESS

from ..conftest import Site

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("products")]
CARD = next(c.number for c in CARDS if c.behaviour == SUCCESS)


def order_page_settles(page: Page, site: Site) -> str:
    """On the order page: paid, then fulfilled; the order id."""
    page.wait_for_url(re.compile(rf"^{re.escape(site.url)}/orders/ord_\w+/$"))
    order_id = page.inner_text("#order-id")
    expect(page.locator("#payment")).to_have_text("paid")
    expect(page.locator("#fulfilment")).to_have_text("fulfilled")
    return order_id


def test_paypal_buttons_pay_and_the_order_is_fulfilled(page: Page, site: Site) -> None:
    """Two mugs through PayPal's buttons: priced by paywire (25.00), approved in the popup,
    captured through the project's URLs, paid then fulfilled, shipped once."""
    sent: list[Any] = []
    page.on("request", lambda r: sent.append(r.post_data_json)
            if r.method == "POST" and r.url.endswith("/paywire/v1/checkout/orders") else None)
    page.goto(f"{site.url}/")
    expect(page.locator("tr[data-sku=mug]")).to_contain_text("12.50 USD")
    page.fill("tr[data-sku=mug] input.qty", "2")
    with page.expect_popup() as popup_info:
        page.click("#paypal-buttons button")
    popup = popup_info.value
    popup.wait_for_url("**/checkoutnow?**")
    assert popup.locator(".amount").inner_text().split() == ["25.00", "USD"]
    popup.click("#approve")
    order_id = order_page_settles(page, site)
    expect(page.locator("#amount")).to_have_text("25.00 USD")
    assert sent == [{"items": [{"sku": "mug", "quantity": 2}], "intent": "CAPTURE"}]
    assert Shipment.objects.filter(paywire_order_id=order_id).count() == 1


def test_card_on_the_aps_page_pays_and_the_order_is_fulfilled(page: Page, site: Site) -> None:
    """A sticker pack by card: the signed form posted to APS's page, the card entered there,
    back through paywire's return page (served by Django) to the order page."""
    page.goto(f"{site.url}/")
    page.fill("tr[data-sku=stickers] input.qty", "1")
    page.fill("#card-email", "buyer@example.com")
    page.click("#pay-by-card")
    page.wait_for_url(f"{site.emulator.url}/aps/FortAPI/paymentPage")
    page.fill("#card_number", CARD)
    page.fill("#expiry_date", "3512")
    page.fill("#card_security_code", "123")
    page.fill("#card_holder_name", "A Buyer")
    page.click("#pay")
    page.wait_for_url(f"{site.paywire}/v1/aps/return")
    page.click("#continue")
    order_id = order_page_settles(page, site)
    expect(page.locator("#amount")).to_have_text("3.99 USD")
    assert Shipment.objects.get(paywire_order_id=order_id).amount == Decimal("3.99")
