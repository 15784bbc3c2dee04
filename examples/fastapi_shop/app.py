"""A small coffee shop on FastAPI that takes PayPal through an embedded paywire.

The shop owns its catalog (`catalog.toml`, which paywire prices every order from), its pages
and its orders (`store.ShopStore`, SQLite). paywire is mounted under `/pay` with one call
(`paywire.mount`): its API, PayPal's webhooks (`/pay/webhooks/paypal`) and its background jobs
(the outbox worker, the truth fetcher, the reconciler) run in this process, started and stopped
by the shop's own lifespan. paywire tells the shop about payments by calling `ShopStore.fulfil`
(at least once per fact, under a stable message id), which marks the shop's order paid once.

The buyer's path: `POST /checkout` (a form) or `POST /api/orders` (JSON) creates the shop's
order and paywire's, and sends the buyer to PayPal's approval page; PayPal returns the buyer to
`/return?token=...`, where the shop captures through paywire and shows the receipt; the receipt
says "paid" once paywire's announcement arrived (from the capture's answer, or PayPal's webhook
if the buyer never came back: reconciliation covers even that).
"""

from __future__ import annotations

import html
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

import paywire
from paywire.settings import Settings

from .store import ShopOrder, ShopStore

CATALOG = Path(__file__).with_name("catalog.toml")
PAYWIRE_PREFIX = "/pay"


class OrderIn(BaseModel):
    """What the buyer orders: a sku of the catalog and how many."""

    sku: str = Field(max_length=64)
    quantity: int = Field(ge=1, le=20)


def read_catalog(path: Path = CATALOG) -> tuple[str, dict[str, dict[str, Any]]]:
    """The catalog's currency and its products by sku (for the shop's pages)."""
    doc = tomllib.loads(path.read_text("utf-8"))
    return str(doc["currency"]), {p["sku"]: p for p in doc["products"]}


def create_app(settings: Settings, data_dir: Path) -> FastAPI:
    """The shop, with paywire (configured by `settings`) mounted under /pay; the shop's own
    database lives in `data_dir`."""
    currency, products = read_catalog(settings.catalog_path or CATALOG)
    shop = ShopStore(data_dir / "shop.db")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Runs once paywire is up (paywire.mount wraps it): its in-process API client is ready.
        async with pw.client() as client:
            app.state.paywire_api = client
            yield

    app = FastAPI(title="Coffee shop (paywire example)", lifespan=lifespan)
    pw = paywire.mount(app, PAYWIRE_PREFIX, settings, fulfil=shop.fulfil)
    app.state.shop = shop
    app.state.paywire = pw

    async def start_checkout(request: Request, item: OrderIn) -> tuple[ShopOrder, str]:
        if item.sku not in products:
            raise HTTPException(404, f"no product {item.sku!r}")
        order = shop.create(item.sku, item.quantity)
        # paywire prices the order from the catalog: the shop sends skus, never prices.
        answer = await request.app.state.paywire_api.post("/v1/checkout/orders", json={
            "items": [{"sku": item.sku, "quantity": item.quantity}]})
        if answer.status_code != 201:
            raise HTTPException(502, "the payment could not be started; try again")
        created = answer.json()
        shop.link(order.id, created["id"], created["provider_order_id"])
        linked = shop.get(order.id)
        assert linked is not None  # noqa: S101 - just written
        return linked, created["approve_url"]

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        rows = "".join(
            f"<li>{html.escape(p['name'])}: {html.escape(p['unit_price'])} {currency} "
            f"<form method=post action=/checkout style='display:inline'>"
            f"<input type=hidden name=sku value='{html.escape(sku)}'>"
            f"<input type=number name=quantity value=1 min=1 max=20> "
            f"<button>Pay with PayPal</button></form></li>"
            for sku, p in products.items())
        return _page("Coffee shop", f"<ul>{rows}</ul>")

    @app.post("/checkout")
    async def checkout_form(request: Request) -> Response:
        # The page's form, urlencoded (read by hand: no python-multipart needed).
        form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
        try:
            item = OrderIn(sku=form.get("sku", [""])[0],
                           quantity=int(form.get("quantity", ["1"])[0]))
        except ValueError:
            raise HTTPException(422, "choose a product and a quantity from 1 to 20") from None
        _, approve_url = await start_checkout(request, item)
        return RedirectResponse(approve_url, status_code=303)

    @app.post("/api/orders", status_code=201)
    async def checkout_json(request: Request, item: OrderIn) -> dict[str, Any]:
        order, approve_url = await start_checkout(request, item)
        return {**order.to_json(), "approve_url": approve_url}

    @app.get("/api/orders/{order_id}")
    async def order_json(order_id: str) -> dict[str, Any]:
        order = shop.get(order_id)
        if order is None:
            raise HTTPException(404, "no such order")
        return order.to_json()

    @app.get("/return")
    async def paypal_return(request: Request, token: str) -> Response:
        """PayPal sends the buyer back here once approved: capture, then the receipt."""
        order = shop.by_paypal_order(token)
        if order is None or order.paywire_order_id is None:
            raise HTTPException(404, "no such order")
        if order.status == "awaiting_payment":
            # Repeats are safe: paywire answers a second capture with the first one's result.
            await request.app.state.paywire_api.post(
                f"/v1/checkout/orders/{order.paywire_order_id}/capture")
        return RedirectResponse(f"/orders/{order.id}", status_code=303)

    @app.get("/cancel", response_class=HTMLResponse)
    async def paypal_cancel() -> str:
        return _page("Payment cancelled", "<p>Nothing was charged. <a href=/>Back to the shop"
                                          "</a></p>")

    @app.get("/orders/{order_id}", response_class=HTMLResponse)
    async def receipt(order_id: str) -> str:
        order = shop.get(order_id)
        if order is None:
            raise HTTPException(404, "no such order")
        product = products[order.sku]
        total = Decimal(product["unit_price"]) * order.quantity
        said = {"paid": "Paid, thank you: your coffee is on its way.",
                "awaiting_payment": "Confirming your payment: refresh in a moment.",
                "payment_failed": "The payment did not go through; nothing was charged.",
                "refunded": "Refunded."}[order.status]
        return _page(f"Order {order.id}",
                     f"<p>{order.quantity} x {html.escape(product['name'])}: {total} {currency}"
                     f"</p><p id=status data-status={order.status}>{html.escape(said)}</p>")

    return app


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}"
            f"</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
