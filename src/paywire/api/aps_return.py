"""`/v1/aps/return`: where APS sends the buyer back after its payment page (the `return_url`).

Informative only (aps.md: never the source of truth). The page verifies the signed parameters
the browser brings (a POSTed form, or a query string) with the same verifier as the feedback
endpoint, applies nothing, and shows the order as paywire has stored it from the
server-to-server channels, which it prefers: "paid" only once the stored order is paid. A
verified success not yet confirmed server-to-server reads "confirming"; a declined attempt
invites another card (the order's next attempt); parameters that fail verification show no
result at all. The "continue" link goes to the shop's return URL with `order_id`.

With APS's tokenization flow (`PAYWIRE_APS_CHECKOUT=tokenization`) this page is also where the
buyer's card arrives as a token: it pays with it server to server (the operation key of the
order's current attempt makes a reload harmless), and a 3-D Secure step answers a 303 to APS's
`3ds_url`; the final result comes back here and, authoritative, on the feedback channels.
"""

from __future__ import annotations

import html
import secrets
from typing import Annotated, Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from paywire.domain import trace
from paywire.domain.errors import PaywireError, ProviderError, SignatureError, ValidationError
from paywire.domain.order import Order, OrderStatus
from paywire.ports import Store
from paywire.services.checkout import Checkout
from paywire.services.webhooks import WebhookIngest
from paywire.settings import Settings

S = OrderStatus
RETURN_PATH = "/v1/aps/return"
FORM = "application/x-www-form-urlencoded"
MAX_BYTES = 16 * 1024


class ReturnContainer(Protocol):
    """What the page needs from the composition root."""

    settings: Settings
    store: Store
    checkout: Checkout
    aps_webhooks: WebhookIngest | None


def _container(request: Request) -> ReturnContainer:
    container: ReturnContainer = request.app.state.container
    return container


Container = Annotated[ReturnContainer, Depends(_container)]
router = APIRouter()


def _page(status: int, title: str, text: str, link: str | None = None) -> HTMLResponse:
    nonce = secrets.token_urlsafe(12)
    more = (f'<p><a id="continue" href="{html.escape(link)}">Continue to the shop</a></p>'
            if link else "")
    body = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(title)}</title><style nonce=\"{nonce}\">body{{font-family:"
            f"sans-serif;max-width:36em;margin:3em auto}}</style></head><body>"
            f"<h1 id=\"title\">{html.escape(title)}</h1><p id=\"text\">{html.escape(text)}</p>"
            f"{more}</body></html>")
    resp = HTMLResponse(body, status_code=status)
    resp.headers["content-security-policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'")
    resp.headers["cache-control"] = "no-store"
    resp.headers["referrer-policy"] = "no-referrer"
    resp.headers["x-content-type-options"] = "nosniff"
    return resp


def _declined(link: str | None) -> HTMLResponse:
    return _page(200, "Card declined", "Your card was declined; nothing was charged. You can "
                 "try another card.", link)


def _continue(settings: Settings, order_id: str) -> str | None:
    if not settings.return_url:
        return None
    parts = urlsplit(settings.return_url)
    query = "&".join(q for q in (parts.query, urlencode({"order_id": order_id})) if q)
    return urlunsplit(parts._replace(query=query))


@router.api_route(RETURN_PATH, methods=["GET", "POST"], include_in_schema=False)
async def aps_return(request: Request, c: Container) -> Response:
    """The buyer's landing page after APS's payment page (see the module doc)."""
    ingest = c.aps_webhooks
    if ingest is None:
        return _page(404, "Not found", "This shop does not take card payments through APS.")
    if request.method == "POST":
        body = await request.body()
        ctype = request.headers.get("content-type", FORM)
    else:
        body, ctype = request.url.query.encode("utf-8"), FORM
    if len(body) > MAX_BYTES:
        return _page(413, "Result not readable", "The payment result was too large to read.")
    try:
        await ingest.verifier.verify({"content-type": ctype}, body)
        event = ingest.parser.parse(body)
    except (SignatureError, ValidationError):
        return _page(400, "Result not verified", "We could not verify the result this page was "
                     "given, so it shows none. Your order's status is on the shop's receipt.")
    if event.order_id is None:
        return _page(404, "Unknown order", "This payment result is not for an order of ours.")
    async with c.store.transaction() as uow:
        order = await uow.get_order(event.order_id)
    if order is None or order.provider != "aps":
        return _page(404, "Unknown order", "This payment result is not for an order of ours.")
    trace.follow(order.trace_id, order_id=order.id, provider=order.provider)
    link = _continue(c.settings, order.id)
    if event.payment_token is not None and order.status is S.CREATED and (
            event.attempt == order.capture_attempt):  # a stale token pays nothing
        paid = await _pay_with_token(c, order, event.payment_token, link)
        if isinstance(paid, Response):
            return paid
        order = paid
    fact = event.fact
    if order.status in (S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED):
        return _page(200, "Payment received", f"Order {order.id} is paid.", link)
    if order.status is S.AUTHORIZED:
        return _page(200, "Payment authorized", f"Order {order.id} is authorized.", link)
    if order.status in (S.DENIED, S.FAILED, S.VOIDED, S.EXPIRED, S.REVERSED):
        return _page(200, "Payment not completed", f"Order {order.id} is "
                     f"{order.status.value.lower()}.", link)
    if fact is not None and fact.target is S.DENIED:
        return _declined(link)
    if fact is not None and fact.target in (S.COMPLETED, S.AUTHORIZED):
        return _page(200, "Confirming your payment", "APS reports your payment went through; "
                     "we are confirming it with APS. Your receipt will show it shortly.", link)
    return _page(200, "Payment processing", "Your payment is being processed; your receipt "
                 "will show the result.", link)


async def _pay_with_token(c: ReturnContainer, order: Order, token: str,
                          link: str | None) -> Order | Response:
    try:
        return await c.checkout.pay(order.id, token=token)
    except ProviderError as exc:
        redirect = exc.details.get("redirect_url") if exc.kind == "awaiting_payer" else None
        if isinstance(redirect, str) and redirect.startswith(("https://", "http://")):
            return RedirectResponse(redirect, status_code=303)
        if exc.kind == "declined":
            return _declined(link)
        return _page(502, "Payment not confirmed", "We could not complete the payment with "
                     "APS just now; your receipt will show the result.", link)
    except PaywireError:
        return _page(503, "Payment not confirmed", "We could not complete the payment just "
                     "now; your receipt will show the result.", link)
