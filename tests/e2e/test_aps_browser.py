"""A buyer pays by card through APS in headless Chromium, in `paywire dev`'s demo shop.

Shop → "Pay by card" (an order with `provider: aps`, its signed `checkout_form` posted by the
browser) → the APS emulator's hosted page → 3-D Secure challenge → paywire's `/v1/aps/return`
→ "Continue to the shop" → the shop's receipt, which turns COMPLETED and then fulfilled when
paywire's signed `order.completed` reaches the shop. The emulator's direct feedback to
`/webhooks/aps` is what moves the order; the store is read at the end.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, expect

from apikit import open_store
from apskit import CARD, CHALLENGE, DECLINE, SUCCESS
from paywire.dev.runner import running
from paywire.dev.stack import DevOptions, DevStack
from paywire.domain.order import Order, OrderStatus
from paywire.emulator.aps.cards import CARDS
from paywire.ports import OutboxMessage

EMAIL = "buyer@example.com"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """The dev stack (PayPal + APS emulator, paywire, shop) on free ports, SQLite in a temp dir."""
    options = DevOptions(port=0, emulator_port=0, log_level="warning",
                         data_dir=tmp_path_factory.mktemp("paywire-dev-aps"))
    with running(options) as started:
        yield started


@pytest.fixture
def csp_violations(page: Page) -> list[str]:
    """Console errors about the Content-Security-Policy (a blocked form post shows here)."""
    seen: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            seen.append(message.text)

    page.on("console", record)
    return seen


def stored(stack: DevStack, order_id: str) -> tuple[Order | None, list[OutboxMessage]]:
    """The order and its announcements as the store holds them (read on a thread of its own:
    Playwright's sync API owns this one's event loop)."""
    async def read() -> tuple[Order | None, list[OutboxMessage]]:
        store = open_store(stack.settings.database_url)
        try:
            async with store.transaction() as uow:
                return await uow.get_order(order_id), await uow.outbox_for_order(order_id)
        finally:
            await store.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, read()).result(timeout=30)


def start_card_payment(page: Page, stack: DevStack, quantity: int = 2) -> list[Any]:
    """Fill the basket and the e-mail, press "Pay by card"; the order bodies the shop sent."""
    sent: list[Any] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/v1/checkout/orders"):
            sent.append(request.post_data_json)

    page.on("request", record)
    page.goto(stack.shop_url)
    page.fill("tr[data-sku=mug] input.qty", str(quantity))
    page.fill("#card-email", EMAIL)
    page.click("#pay-by-card")
    page.wait_for_url(f"{stack.emulator_url}/aps/FortAPI/paymentPage")
    return sent


def enter_card(page: Page, number: str) -> None:
    """The buyer types a test card on the APS page and pays."""
    page.fill("#card_number", number)
    page.fill("#expiry_date", "3512")
    page.fill("#card_security_code", "123")
    page.fill("#card_holder_name", "A Buyer")
    page.click("#pay")


def back_to_receipt(page: Page, stack: DevStack, title: str | re.Pattern[str]) -> str:
    """On paywire's return page (checked for `title`), continue to the shop's receipt; the
    order id."""
    page.wait_for_url(f"{stack.url}/v1/aps/return")
    expect(page.locator("#title")).to_have_text(title)
    page.click("#continue")
    page.wait_for_url("**/shop/receipt/**")
    return page.inner_text("#order-id")


@pytest.mark.browser
def test_card_with_3ds_challenge_pays_and_fulfils(page: Page, stack: DevStack,
                                                  csp_violations: list[str]) -> None:
    """Card with a 3-D Secure challenge, approved: COMPLETED, fulfilled, announced once."""
    sent = start_card_payment(page, stack)
    assert sent == [{"items": [{"sku": "mug", "quantity": 2}], "provider": "aps",
                     "customer_email": EMAIL}]
    expect(page.locator("#amount")).to_have_text("25.00 USD")
    enter_card(page, CARD[CHALLENGE])
    expect(page.locator("h1")).to_have_text("3-D Secure check")
    page.click("#approve")

    order_id = back_to_receipt(page, stack,
                               re.compile(r"^(Payment received|Confirming your payment)$"))
    expect(page.locator("#order-status")).to_have_text("COMPLETED")
    expect(page.locator("#fulfilment")).to_have_text("fulfilled", timeout=15_000)
    expect(page.locator("#pay-again")).to_be_hidden()
    assert page.url == f"{stack.shop_url}receipt/{order_id}"

    order, outbox = stored(stack, order_id)
    assert order is not None
    assert (order.provider, order.status) == ("aps", OrderStatus.COMPLETED)
    assert [m.type for m in outbox].count("order.completed") == 1
    answer = httpx.get(f"{stack.url}/v1/orders/{order_id}").json()
    assert answer["amount"] == {"currency_code": "USD", "value": "25.00"}
    assert answer["checkout_form"] is None and answer["payment_attempt"] == 1
    assert csp_violations == []


@pytest.mark.browser
def test_declined_card_then_pay_again(page: Page, stack: DevStack,
                                      csp_violations: list[str]) -> None:
    """A declined card: the return page says so, the receipt offers the next attempt, a good
    card pays it."""
    start_card_payment(page, stack, quantity=1)
    enter_card(page, CARD[DECLINE])
    order_id = back_to_receipt(page, stack, "Card declined")
    expect(page.locator("#pay-again-text")).to_contain_text("declined")
    expect(page.locator("#order-status")).to_have_text("CREATED")

    page.click("#pay-again-button")
    page.wait_for_url(f"{stack.emulator_url}/aps/FortAPI/paymentPage")
    expect(page.locator("#merchant-reference")).to_have_text(f"{order_id}-2")
    enter_card(page, CARD[SUCCESS])
    assert back_to_receipt(page, stack,
                           re.compile(r"^(Payment received|Confirming your payment)$")) == order_id
    expect(page.locator("#order-status")).to_have_text("COMPLETED")
    expect(page.locator("#provider-order-id")).to_have_text("2")
    expect(page.locator("#pay-again")).to_be_hidden()
    assert csp_violations == []


def test_dev_stack_wires_aps_and_keeps_its_secrets(stack: DevStack) -> None:
    """Both providers on, APS feedback aimed at paywire, the test cards in the banner and no APS
    secret in it; the shop's return route takes APS's `order_id` (and refuses a bad one)."""
    assert stack.settings.providers == ["paypal", "aps"]
    assert stack.settings.aps.return_url == f"{stack.url}/v1/aps/return"
    aps = stack.emulator_config.aps
    assert aps.direct_feedback_url == aps.notification_feedback_url == (
        f"{stack.url}/webhooks/aps")
    banner = "\n".join(stack.banner())
    assert all(card.number in banner for card in CARDS)
    cred = stack.aps_credentials
    for secret in (cred.access_code, cred.request_phrase, cred.response_phrase):
        assert secret not in banner

    with httpx.Client(base_url=stack.url, timeout=10) as http:
        back = http.get("/shop/return", params={"order_id": "ord_123-x"})
        assert back.status_code == 303
        assert back.headers["location"] == "/shop/receipt/ord_123-x"
        assert http.get("/shop/return", params={"order_id": "<x>"}).status_code == 400
        assert http.get("/shop/return", params={"token": "PAY-1"}).status_code == 200
        assert http.get("/shop/receipt/ord_none/fulfilment").json() == {"fulfilled": False}
        csp = http.get("/shop/").headers["content-security-policy"]
        assert f"form-action 'self' {stack.emulator_url};" in csp
