"""A real Chromium buyer on the emulator's approval page and its JS SDK buttons."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from paywire.testing import EmulatorServer, ServerThread

pytestmark = pytest.mark.browser


SHOP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<script src="{sdk_url}"></script></head>
<body><h1>Mug, 12.34 USD</h1><div id="paypal-buttons"></div>
<script>
window.events = [];
paypal.Buttons({{
  createOrder: () => fetch("/api/orders", {{method: "POST"}})
    .then((r) => r.json()).then((d) => d.id),
  onApprove: (data) => {{
    window.events.push({{kind: "approve", data: data}});
    return fetch("/api/orders/" + data.orderID + "/capture", {{method: "POST"}})
      .then((r) => r.json()).then((body) => window.events.push({{kind: "captured", body}}));
  }},
  onCancel: (data) => window.events.push({{kind: "cancel", data: data}}),
  onError: (err) => window.events.push({{kind: "error", message: String(err)}}),
}}).render("#paypal-buttons");
</script></body></html>"""


def shop_app(emulator_url: str, authorization: str, client_id: str) -> Starlette:
    """A tiny shop: prices and creates orders server-side, captures on the buyer's approval."""

    async def page(request: Request) -> HTMLResponse:
        client = request.query_params.get("client", client_id)
        sdk_url = f"{emulator_url}/sdk/js?" + urlencode({"client-id": client, "currency": "USD"})
        return HTMLResponse(SHOP_PAGE.format(sdk_url=sdk_url))

    async def create(request: Request) -> JSONResponse:
        body = {"intent": "CAPTURE", "purchase_units": [
            {"amount": {"currency_code": "USD", "value": "12.34"}, "description": "Mug"}]}
        async with httpx.AsyncClient(base_url=emulator_url, timeout=10) as paypal:
            r = await paypal.post("/v2/checkout/orders", json=body,
                                  headers={"Authorization": authorization})
        return JSONResponse(r.json(), status_code=r.status_code)

    async def capture(request: Request) -> JSONResponse:
        order_id = request.path_params["id"]
        async with httpx.AsyncClient(base_url=emulator_url, timeout=10) as paypal:
            r = await paypal.post(f"/v2/checkout/orders/{order_id}/capture",
                                  headers={"Authorization": authorization,
                                           "PayPal-Request-Id": f"capture-{order_id}"})
        return JSONResponse(r.json(), status_code=r.status_code)

    async def landed(request: Request) -> HTMLResponse:
        return HTMLResponse(f"<h1 id='landed'>{request.url.path.strip('/')}</h1>")

    return Starlette(routes=[
        Route("/shop", page), Route("/api/orders", create, methods=["POST"]),
        Route("/api/orders/{id}/capture", capture, methods=["POST"]),
        Route("/return", landed), Route("/cancel", landed),
    ])


@pytest.fixture
def shop(emulator: EmulatorServer, paypal: httpx.Client) -> Iterator[ServerThread]:
    """The shop served on its own loopback port (another origin than the emulator)."""
    client_id = next(iter(emulator.emu.apps))
    server = ServerThread(shop_app(emulator.url, paypal.headers["Authorization"], client_id))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def create_order(paypal: httpx.Client, shop: ServerThread, context_key: str) -> dict[str, Any]:
    """An order whose buyer returns to the shop, created the way a merchant server would."""
    urls = {"return_url": f"{shop.url}/return?keep=1", "cancel_url": f"{shop.url}/cancel"}
    body: dict[str, Any] = {"intent": "CAPTURE", "purchase_units": [{
        "description": "Mug <b>bold</b>",
        "amount": {"currency_code": "USD", "value": "10.00",
                   "breakdown": {"item_total": {"currency_code": "USD", "value": "10.00"}}},
        "items": [{"name": "Mug", "quantity": "2",
                   "unit_amount": {"currency_code": "USD", "value": "5.00"}}]}]}
    if context_key == "payment_source":
        body["payment_source"] = {"paypal": {"experience_context": urls}}
    else:
        body["application_context"] = urls
    r = paypal.post("/v2/checkout/orders", json=body)
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


def buyer_link(order: dict[str, Any]) -> str:
    """The approve / payer-action link the buyer is sent to."""
    href: str = next(x["href"] for x in order["links"] if x["rel"] in ("approve", "payer-action"))
    return href


def query_of(url: str) -> dict[str, list[str]]:
    """The parsed query string of `url`."""
    return parse_qs(urlsplit(url).query)


def test_approve_redirects_to_return_url(page: Page, paypal: httpx.Client,
                                         shop: ServerThread) -> None:
    """Approving lands on return_url (query kept) with token and PayerID; the order is APPROVED."""
    order = create_order(paypal, shop, "payment_source")
    page.goto(buyer_link(order))
    assert page.locator(".amount").inner_text().split() == ["10.00", "USD"]
    assert "<b>bold</b>" in page.inner_text("main")  # shown as text, not markup
    page.check("input[name=scenario][value=pending]")
    page.click("#approve")
    page.wait_for_url(f"{shop.url}/return?**")
    query = query_of(page.url)
    assert query["keep"] == ["1"] and query["token"] == [order["id"]]
    got = paypal.get(f"/v2/checkout/orders/{order['id']}").json()
    assert got["status"] == "APPROVED"
    assert query["PayerID"] == [got["payer"]["payer_id"]]
    captured = paypal.post(f"/v2/checkout/orders/{order['id']}/capture").json()
    assert captured["purchase_units"][0]["payments"]["captures"][0]["status"] == "PENDING"


def test_cancel_redirects_to_cancel_url(page: Page, paypal: httpx.Client,
                                        shop: ServerThread) -> None:
    """Cancelling lands on cancel_url with the token and leaves the order CREATED."""
    order = create_order(paypal, shop, "application_context")
    page.goto(buyer_link(order))
    page.click("#cancel")
    page.wait_for_url(f"{shop.url}/cancel?**")
    assert query_of(page.url) == {"token": [order["id"]]}
    assert paypal.get(f"/v2/checkout/orders/{order['id']}").json()["status"] == "CREATED"


def test_unknown_token_is_a_friendly_404(page: Page, emulator: EmulatorServer) -> None:
    """An unknown token answers a 404 HTML page that does not reflect the token."""
    token = "<img src=x onerror=alert(1)>"
    response = page.goto(f"{emulator.url}/checkoutnow?" + urlencode({"token": token}))
    assert response is not None and response.status == 404
    assert "unknown or has expired" in page.inner_text("#message-text")
    assert "onerror" not in page.content()


def open_checkout_popup(page: Page, shop: ServerThread) -> Page:
    """Load the shop, click the PayPal button and return the approval popup once loaded."""
    page.goto(f"{shop.url}/shop")
    with page.expect_popup() as popup_info:
        page.click("button.paypal-button")
    popup = popup_info.value
    popup.wait_for_url("**/checkoutnow?**")
    return popup


def wait_for_event(page: Page, kind: str) -> dict[str, Any]:
    """The first shop-page SDK callback event of `kind` (waits for it)."""
    page.wait_for_function(f"window.events.some((e) => e.kind === {json.dumps(kind)})")
    events: list[dict[str, Any]] = page.evaluate("window.events")
    assert not [e for e in events if e["kind"] == "error"], events
    return next(e for e in events if e["kind"] == kind)


def test_sdk_buttons_approve_and_capture(page: Page, paypal: httpx.Client,
                                         shop: ServerThread) -> None:
    """Approving in the SDK popup calls onApprove with orderID and payerID; capture completes."""
    popup = open_checkout_popup(page, shop)
    popup.click("#approve")
    captured = wait_for_event(page, "captured")["body"]
    data = wait_for_event(page, "approve")["data"]
    order = paypal.get(f"/v2/checkout/orders/{data['orderID']}").json()
    assert data["payerID"] == order["payer"]["payer_id"]
    assert captured["status"] == order["status"] == "COMPLETED"
    if not popup.is_closed():
        popup.wait_for_event("close")


def test_sdk_buttons_cancel_calls_on_cancel(page: Page, paypal: httpx.Client,
                                            shop: ServerThread) -> None:
    """Cancelling in the SDK popup calls onCancel with the orderID; the order stays CREATED."""
    popup = open_checkout_popup(page, shop)
    popup.click("#cancel")
    order_id = wait_for_event(page, "cancel")["data"]["orderID"]
    assert paypal.get(f"/v2/checkout/orders/{order_id}").json()["status"] == "CREATED"


def test_sdk_popup_closed_by_buyer_is_a_cancel(page: Page, shop: ServerThread) -> None:
    """Closing the popup without deciding calls onCancel, as PayPal's SDK does."""
    popup = open_checkout_popup(page, shop)
    popup.close()
    assert wait_for_event(page, "cancel")["data"]["orderID"]


def test_sdk_refuses_unknown_client_id(page: Page, emulator: EmulatorServer,
                                       shop: ServerThread) -> None:
    """An unknown client-id gets PayPal's 400 validation script, so no `paypal` global appears."""
    page.goto(f"{shop.url}/shop?client=not-an-app")
    assert page.evaluate("typeof window.paypal") == "undefined"
    r = httpx.get(f"{emulator.url}/sdk/js", params={"client-id": "not-an-app"})
    assert r.status_code == 400
    assert "Invalid query value for client-id: not-an-app" in r.text
