"""The demo shop: a product page paying through PayPal's JS SDK buttons or by card through
Amazon Payment Services (APS), and a receipt page.

The shop is what a merchant's front end looks like with paywire behind it. Its pages are static
apart from a little configuration; `static/shop.js` lists `GET /v1/catalog`, sends only skus and
quantities to `POST /v1/checkout/orders` (paywire prices them), hands PayPal's order id to the
SDK, and captures through `POST /v1/checkout/orders/{id}/capture` once the buyer approves. The
API is expected on the same origin (`paywire dev` serves both on one port).

Cards (when `ShopConfig.card_page_url` is set): the buyer gives an e-mail, the order is created
with `"provider": "aps"`, and the browser posts the order's signed `checkout_form` to APS's
hosted payment page. APS sends the buyer to paywire's `/v1/aps/return`, whose link comes back to
the shop's return route with `?order_id=`, which leads to the receipt. The receipt polls the
order (and the shop's own fulfilment record) until it settles, and offers the next attempt's
form when a card was declined.

Templates autoescape; pages carry a Content-Security-Policy allowing scripts only from this
origin and the PayPal SDK's, network calls only to this origin, and form posts only to this
origin and the APS payment page's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from paywire.delivery.receiver import verify_delivery
from paywire.domain.errors import SignatureError

_env = Environment(loader=PackageLoader("paywire.web", "templates"), autoescape=True,
                   undefined=StrictUndefined)

MAX_ORDER_REF = 128


@dataclass(frozen=True)
class ShopConfig:
    """Where the shop finds PayPal's JS SDK, and under which path it is mounted."""

    paypal_sdk_base: str
    """The SDK host, e.g. `http://127.0.0.1:8090` for the emulator or `https://www.paypal.com`."""
    client_id: str
    currency: str = "USD"
    prefix: str = "/shop"
    title: str = "paywire demo shop"
    fulfilment_secret: str | None = None
    """The `whsec_` secret paywire signs fulfilment callbacks with (None: no endpoint)."""
    card_page_url: str | None = None
    """APS's hosted payment page (paywire's `ApsSettings.urls(...)[1]`) when paywire takes cards
    through APS: the shop then offers "Pay by card" (None: PayPal only)."""

    @property
    def sdk_url(self) -> str:
        """The SDK script URL for this app and currency (intent capture)."""
        query = urlencode({"client-id": self.client_id, "currency": self.currency,
                           "intent": "capture"})
        return f"{self.paypal_sdk_base.rstrip('/')}/sdk/js?{query}"

    @property
    def sdk_origin(self) -> str:
        """The SDK's origin, for the Content-Security-Policy."""
        return _origin(self.paypal_sdk_base)

    @property
    def card_origin(self) -> str | None:
        """The APS payment page's origin (the browser posts the checkout form there)."""
        return _origin(self.card_page_url) if self.card_page_url else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _page(config: ShopConfig, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    body = _env.get_template(template).render(shop=config, **ctx)
    resp = HTMLResponse(body, status_code=status)
    form_action = " ".join(["'self'", *([config.card_origin] if config.card_origin else [])])
    resp.headers["content-security-policy"] = (
        f"default-src 'none'; script-src 'self' {config.sdk_origin}; connect-src 'self'; "
        f"style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action {form_action}; "
        "frame-ancestors 'none'"
    )
    resp.headers["cache-control"] = "no-store"
    resp.headers["referrer-policy"] = "same-origin"
    resp.headers["x-content-type-options"] = "nosniff"
    return resp


def _order_ref(raw: str) -> str | None:
    """An order reference from a URL, if it is plausibly one (the API decides if it exists)."""
    if not raw or len(raw) > MAX_ORDER_REF:
        return None
    return raw if all(c.isalnum() or c in "-_" for c in raw) else None


def create_shop_app(config: ShopConfig) -> Starlette:
    """The shop as an ASGI app whose routes live under `config.prefix`."""
    prefix = config.prefix.rstrip("/")
    seen: set[str] = set()  # message ids processed (a demo's memory; a shop uses its database)
    fulfilled: set[str] = set()  # orders whose order.completed arrived

    async def products(request: Request) -> Response:
        return _page(config, "shop.html")

    async def receipt(request: Request) -> Response:
        ref = _order_ref(request.path_params["order_ref"])
        if ref is None:
            return _page(config, "message.html", 404, title="No such order",
                         text="This receipt link is not valid.")
        return _page(config, "receipt.html", order_ref=ref, fulfilled=ref in fulfilled,
                     fulfilment=config.fulfilment_secret is not None)

    async def fulfilment_status(request: Request) -> Response:
        # The receipt polls this until paywire's order.completed has arrived.
        ref = _order_ref(request.path_params["order_ref"])
        if ref is None or config.fulfilment_secret is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse({"fulfilled": ref in fulfilled},
                            headers={"cache-control": "no-store"})

    async def fulfilment(request: Request) -> Response:
        # paywire's signed callback: verify, do the work once per message id, answer 2xx.
        if config.fulfilment_secret is None:
            return Response(status_code=404)
        try:
            delivery = verify_delivery(await request.body(), request.headers,
                                       config.fulfilment_secret, seen=seen.__contains__)
        except SignatureError:
            return Response(status_code=400)
        if not delivery.duplicate:
            if delivery.type == "order.completed":
                fulfilled.add(delivery.order_id)
            seen.add(delivery.id)
        return Response(status_code=204)

    async def returned(request: Request) -> Response:
        # Buyers sent to PayPal's approve_url (no SDK popup) come back here with the token;
        # card buyers come from paywire's APS return page with our order id: its receipt.
        if "order_id" in request.query_params:
            order_id = _order_ref(request.query_params["order_id"])
            if order_id is None:
                return _page(config, "message.html", 400, title="No such order",
                             text="This return link does not name a valid order.")
            return RedirectResponse(f"{prefix}/receipt/{order_id}", status_code=303)
        token = _order_ref(request.query_params.get("token", ""))
        if token is None:
            return _page(config, "message.html", 400, title="Nothing to capture",
                         text="PayPal did not send an order token back.")
        return _page(config, "return.html", token=token)

    async def cancelled(request: Request) -> Response:
        return _page(config, "message.html", title="Payment cancelled",
                     text="You cancelled at PayPal; nothing was charged.")

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{prefix}/", status_code=307)

    return Starlette(routes=[
        Route(f"{prefix}", home, methods=["GET"]),
        Route(f"{prefix}/", products, methods=["GET"], name="shop.products"),
        Route(f"{prefix}/receipt/{{order_ref}}", receipt, methods=["GET"], name="shop.receipt"),
        Route(f"{prefix}/receipt/{{order_ref}}/fulfilment", fulfilment_status, methods=["GET"],
              name="shop.fulfilment_status"),
        Route(f"{prefix}/return", returned, methods=["GET"], name="shop.return"),
        Route(f"{prefix}/cancel", cancelled, methods=["GET"], name="shop.cancel"),
        Route(f"{prefix}/fulfilment", fulfilment, methods=["POST"], name="shop.fulfilment"),
        Mount(f"{prefix}/static", StaticFiles(packages=[("paywire.web", "static")]),
              name="shop.static"),
    ])
