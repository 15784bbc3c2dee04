"""The HTTP endpoints: checkout for browsers, orders and refunds for admins, health probes.

Handlers translate between the wire (schemas) and the services; errors are raised, never
rendered here (`errors.py` holds the one table). A browser names catalog skus and quantities;
only a trusted caller (API key) may send priced `lines`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from paywire.api.auth import AdminDep, Caller, CallerDep, unauthorized
from paywire.api.errors import error_response, request_id_of
from paywire.api.idempotency import IdempotencyGate, fingerprint
from paywire.api.schemas import (
    ID_PATTERN,
    BuyerOrderOut,
    CatalogOut,
    CreateOrderIn,
    ErrorOut,
    OrderOut,
    OrderPage,
    RefundIn,
    RefundOut,
    dump,
)
from paywire.domain.catalog import Catalog
from paywire.domain.errors import ValidationError
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import CheckoutForm, Store
from paywire.services.checkout import Alongside, Checkout
from paywire.services.orders import OrderQueries
from paywire.services.refunds import Refunds
from paywire.services.registry import ProviderRegistry


class ApiContainer(Protocol):
    """What the API needs from the composition root."""

    store: Store
    catalog: Catalog
    providers: ProviderRegistry
    orders: OrderQueries
    checkout: Checkout
    refunds: Refunds


# The dependencies are `async` though they await nothing: FastAPI runs a plain function
# dependency in its thread pool, a thread hop per dependency per request.
async def _container(request: Request) -> ApiContainer:
    container: ApiContainer = request.app.state.container
    return container


async def _gate(request: Request) -> IdempotencyGate:
    gate: IdempotencyGate = request.app.state.gate
    return gate


Container = Annotated[ApiContainer, Depends(_container)]
Gate = Annotated[IdempotencyGate, Depends(_gate)]
OrderRef = Annotated[str, Path(pattern=ID_PATTERN, description="our order id or PayPal's")]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="1-255 printable ASCII characters, unique per request")]

_E: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 422, 502, 503)}

router = APIRouter()


PRIVATE = {"Cache-Control": "no-store", "Vary": "Authorization"}
"""An answer that depends on the caller and may carry a signed form: never cached."""


def _form(order: Order, c: ApiContainer) -> CheckoutForm | None:
    try:
        return c.checkout.checkout_form(order)
    except ValidationError:  # an order the provider can no longer build a form for
        return None


def _out(order: Order, c: ApiContainer) -> OrderOut:
    return OrderOut.of(order, _form(order, c))


def _order(order: Order, c: ApiContainer) -> JSONResponse:
    return JSONResponse(dump(_out(order, c)))


def _provider_choice(body: CreateOrderIn, c: ApiContainer) -> str:
    name = body.provider or c.providers.default.name
    if name not in c.providers:
        raise ValidationError(f"this shop does not offer {name!r} (it offers "
                              f"{', '.join(sorted(c.providers.names()))})", field="provider")
    # Card payments on APS's page are tied to the buyer's e-mail (APS requires it).
    if name == "aps" and not body.customer_email:
        raise ValidationError("customer_email is required to pay by card (APS)",
                              field="customer_email")
    return name


def _priced_lines(body: CreateOrderIn, catalog: Catalog, trusted: bool) -> list[OrderLine]:
    if body.items is not None:
        return catalog.price([(item.sku, item.quantity) for item in body.items])
    if not trusted:
        raise unauthorized("explicitly priced `lines` need an API key; browsers send `items`")
    return [OrderLine(sku=line.sku or f"line-{i}", name=line.name, quantity=line.quantity,
                      unit_price=Money.parse(line.unit_amount.value,
                                             line.unit_amount.currency_code))
            for i, line in enumerate(body.lines or [], start=1)]


# --- public: catalog and checkout -------------------------------------------------------------


@router.get("/v1/catalog", response_model=CatalogOut, tags=["checkout"])
async def get_catalog(c: Container) -> JSONResponse:
    """The products and their prices (the server's: the only ones that count)."""
    return JSONResponse(dump(CatalogOut.of(c.catalog)))


@router.post("/v1/checkout/orders", status_code=201, response_model=OrderOut,
             responses=_E, tags=["checkout"])
async def create_order(body: CreateOrderIn, request: Request, who: CallerDep, c: Container,
                       gate: Gate, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Price the items from the catalog and create the order at PayPal.

    Answers our `id`, PayPal's order id (`provider_order_id`, what the JS SDK's `createOrder`
    resolves to) and the buyer's `approve_url`. With an `Idempotency-Key`, a retry answers the
    first response instead of creating a second order.
    """
    lines = _priced_lines(body, c.catalog, who.trusted)
    intent = Intent(body.intent)
    provider = _provider_choice(body, c)
    metadata = {"customer_email": body.customer_email} if body.customer_email else None

    async def create(order_id: str | None, alongside: Alongside | None) -> Order:
        return await c.checkout.create_order(lines, intent, order_id=order_id,
                                             provider=provider, metadata=metadata,
                                             alongside=alongside)

    def render(order: Order) -> tuple[int, dict[str, Any]]:
        return 201, dump(_out(order, c))

    # Only a keyed request's body is hashed: the gate reads the digest only with a key.
    digest = "" if idempotency_key is None else fingerprint("POST", request.url.path, body)
    return await gate.run_alongside(
        key=idempotency_key, scope=f"{who.id}|POST /v1/checkout/orders", digest=digest,
        prefix="ord", create=create, render=render, request_id=request_id_of(request))


def _viewed(order: Order, c: ApiContainer, who: Caller) -> JSONResponse:
    """The whole order for a key holder, the buyer's view for anyone else; never cached."""
    view = _out(order, c) if who.trusted else BuyerOrderOut.of(order, _form(order, c))
    return JSONResponse(dump(view), headers=PRIVATE)


@router.post("/v1/checkout/orders/{order_id}/capture", response_model=OrderOut | BuyerOrderOut,
             responses=_E, tags=["checkout"])
async def capture_order(order_id: OrderRef, who: CallerDep, c: Container) -> JSONResponse:
    """Capture an approved order (our id or PayPal's). Repeats answer the same result.

    Answered like `GET /v1/orders/{id}`: the whole order with an API key, else the buyer's view
    (a repeat must not tell an id's holder more than the GET would)."""
    return _viewed(await c.checkout.capture(order_id), c, who)


@router.post("/v1/checkout/orders/{order_id}/authorize",
             response_model=OrderOut | BuyerOrderOut, responses=_E, tags=["checkout"])
async def authorize_order(order_id: OrderRef, who: CallerDep, c: Container) -> JSONResponse:
    """Authorize an approved AUTHORIZE order (our id or PayPal's); answered like the capture."""
    return _viewed(await c.checkout.authorize(order_id), c, who)


@router.get("/v1/orders/{order_id}", response_model=OrderOut | BuyerOrderOut, responses=_E,
            tags=["orders"])
async def get_order(order_id: OrderRef, who: CallerDep, c: Container) -> JSONResponse:
    """An order by our id or PayPal's.

    With an API key: the whole order (`OrderOut`). Without one: only what the buyer's pages
    need (`BuyerOrderOut`: status, amount, lines, provider, attempt, and the next step while it
    is the buyer's), since an order id travels in URLs, logs and referrers. A wrong key is 401,
    never the buyer's view. Either answer is `Cache-Control: no-store`.
    """
    return _viewed(await c.orders.get(order_id), c, who)


# --- admin: orders, refunds, authorizations ----------------------------------------------------


def _cursor(order: Order) -> str:
    raw = json.dumps([order.created_at.isoformat(), order.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, order_id = json.loads(raw)
        when = datetime.fromisoformat(at)
        if not isinstance(order_id, str) or when.tzinfo is None:
            raise TypeError("not a cursor")
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValidationError("invalid cursor: pass a `next_cursor` back unchanged",
                              field="cursor") from exc
    return when, order_id


@router.get("/v1/orders", response_model=OrderPage, responses=_E, tags=["admin"])
async def list_orders(_: AdminDep, c: Container, status: OrderStatus | None = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50,
                      cursor: Annotated[str | None, Query(max_length=512)] = None,
                      ) -> JSONResponse:
    """Orders newest first, optionally of one status; page on with `cursor`."""
    before = _parse_cursor(cursor) if cursor else None
    async with c.store.transaction() as uow:
        found = await uow.list_orders(status=status, limit=limit + 1, before=before)
    page = found[:limit]
    next_cursor = _cursor(page[-1]) if len(found) > limit else None
    return JSONResponse(dump(OrderPage(data=[OrderOut.of(o) for o in page],
                                       next_cursor=next_cursor)))


@router.post("/v1/orders/{order_id}/refunds", status_code=201, response_model=RefundOut,
             responses=_E, tags=["admin"])
async def refund_order(order_id: OrderRef, request: Request, who: AdminDep, c: Container,
                       gate: Gate, body: RefundIn | None = None,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Refund part (`amount`) or all of a paid order. An over-refund is refused (409
    `over_refund`) before PayPal is called. Send an `Idempotency-Key` so a retry cannot
    refund twice."""
    body = body or RefundIn()
    order = await c.orders.get(order_id)
    amount = Money.parse(body.amount, order.amount.currency) if body.amount else None

    async def work(refund_id: str | None) -> tuple[int, dict[str, Any]]:
        moved, refund = await c.refunds.refund(order.id, amount, refund_id=refund_id,
                                               reason=body.reason)
        return 201, dump(RefundOut.of(refund, moved))

    return await gate.run(
        key=idempotency_key, scope=f"{who.id}|POST /v1/orders/{{id}}/refunds",
        digest=fingerprint("POST", f"/v1/orders/{order.id}/refunds", body),
        prefix="ref", work=work, request_id=request_id_of(request))


@router.post("/v1/orders/{order_id}/capture", response_model=OrderOut, responses=_E,
             tags=["admin"])
async def capture_authorization(order_id: OrderRef, _: AdminDep, c: Container) -> JSONResponse:
    """Capture an AUTHORIZED order's authorization in full."""
    return _order(await c.checkout.capture_authorization(order_id), c)


@router.post("/v1/orders/{order_id}/void", response_model=OrderOut, responses=_E,
             tags=["admin"])
async def void_authorization(order_id: OrderRef, _: AdminDep, c: Container) -> JSONResponse:
    """Void an AUTHORIZED order's authorization."""
    return _order(await c.checkout.void(order_id), c)


# --- probes -----------------------------------------------------------------------------------


@router.get("/healthz", tags=["probes"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", tags=["probes"], responses={503: {"model": ErrorOut}})
async def readyz(request: Request) -> JSONResponse:
    """The store answers a cheap query."""
    container: ApiContainer | None = getattr(request.app.state, "container", None)
    if container is None:
        return error_response(503, "not_ready", "starting up", request_id=request_id_of(request))
    try:
        async with container.store.transaction() as uow:
            await uow.get_order("readyz-probe")
    except Exception:  # noqa: BLE001 - any failure here means "not ready", never a 500
        return error_response(503, "not_ready", "the store is unreachable",
                              request_id=request_id_of(request))
    return JSONResponse({"status": "ready"})
