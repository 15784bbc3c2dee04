"""Request and response models of the HTTP API.

Requests are strict: unknown fields are refused (so a browser-sent `price` is an error, never
silently used), quantities are integers 1..10000, skus match one pattern, and amounts are
decimal strings ("10.00", never 10.0). Responses carry money as `{currency_code, value}`, the
shape PayPal and most shops already use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from paywire.domain.catalog import Catalog, Product
from paywire.domain.money import Money
from paywire.domain.order import Order, OrderLine, OrderStatus
from paywire.ports import CheckoutForm, Refund

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$"
DECIMAL_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,4})?$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_ITEMS = 100
PAYABLE = frozenset({OrderStatus.CREATED, OrderStatus.APPROVED})
"""Statuses in which the buyer may still pay on a provider's page (a checkout form's window)."""


class Strict(BaseModel):
    """A request model: no unknown fields, no type coercion ("2" is not a quantity)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ItemIn(Strict):
    """A catalog product and how many."""

    sku: str = Field(pattern=SKU_PATTERN, examples=["mug"])
    quantity: int = Field(ge=1, le=10_000, examples=[2])


class MoneyIn(Strict):
    """An amount as a decimal string in a currency."""

    currency_code: str = Field(pattern=CURRENCY_PATTERN, examples=["USD"])
    value: str = Field(pattern=DECIMAL_PATTERN, examples=["12.50"])


class LineIn(Strict):
    """An explicitly priced line (trusted server-to-server callers only)."""

    name: str = Field(min_length=1, max_length=127)
    quantity: int = Field(ge=1, le=10_000)
    unit_amount: MoneyIn
    sku: str | None = Field(default=None, pattern=SKU_PATTERN)


class CreateOrderIn(Strict):
    """A checkout: catalog `items` (priced by the server), or priced `lines` with an API key.

    `provider` picks one of the shop's payment providers (default: its first); APS needs the
    buyer's `customer_email`."""

    items: list[ItemIn] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    lines: list[LineIn] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    intent: Literal["CAPTURE", "AUTHORIZE"] = "CAPTURE"
    provider: Literal["paypal", "aps"] | None = None
    customer_email: str | None = Field(default=None, max_length=254,
                                       pattern=r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$",
                                       examples=["buyer@example.com"])

    @model_validator(mode="after")
    def _one_of(self) -> CreateOrderIn:
        if (self.items is None) == (self.lines is None):
            raise ValueError("send exactly one of `items` or `lines`")
        return self


class RefundIn(Strict):
    """A refund: `amount` omitted = everything left to refund."""

    amount: str | None = Field(default=None, pattern=DECIMAL_PATTERN, examples=["5.00"])
    reason: str | None = Field(default=None, min_length=1, max_length=255)


# --- responses ---------------------------------------------------------------------------------


class MoneyOut(BaseModel):
    """An amount as a decimal string in a currency."""

    currency_code: str
    value: str

    @classmethod
    def of(cls, money: Money) -> MoneyOut:
        """The wire form of `money`."""
        return cls(currency_code=money.currency, value=money.to_decimal())

    @classmethod
    def maybe(cls, money: Money | None) -> MoneyOut | None:
        """The wire form of `money`, None staying None."""
        return None if money is None else cls.of(money)


class LineOut(BaseModel):
    """A priced order line."""

    sku: str
    name: str
    quantity: int
    unit_amount: MoneyOut

    @classmethod
    def of(cls, line: OrderLine) -> LineOut:
        """The wire form of a line."""
        return cls(sku=line.sku, name=line.name, quantity=line.quantity,
                   unit_amount=MoneyOut.of(line.unit_price))


class CheckoutFormOut(BaseModel):
    """A signed form for the buyer's browser to post (APS's hosted payment page): render
    `fields` as hidden inputs of a `<form method="post" action="{url}">` and submit it."""

    url: str
    fields: dict[str, str]


class OrderOut(BaseModel):
    """An order as paywire records it (the operator's view: with an API key).

    `checkout_form` is set while an unpaid order is paid on the provider's own page from a
    posted form (APS); `payment_attempt` counts the buyer's attempts (a declined card opens
    the next one, with a fresh form)."""

    id: str
    provider: str
    provider_order_id: str | None
    status: str
    intent: str
    amount: MoneyOut
    approve_url: str | None
    capture_id: str | None
    authorization_id: str | None
    captured: MoneyOut | None
    refunded: MoneyOut | None
    refundable: MoneyOut
    needs_attention: str | None
    disputed: bool
    lines: list[LineOut]
    created_at: datetime
    updated_at: datetime
    payment_attempt: int = 1
    checkout_form: CheckoutFormOut | None = None

    @classmethod
    def of(cls, order: Order, form: CheckoutForm | None = None) -> OrderOut:
        """The wire form of an order (with its checkout form, if it has one)."""
        return cls(id=order.id, provider=order.provider, payment_attempt=order.capture_attempt,
                   checkout_form=CheckoutFormOut(url=form.url, fields=dict(form.fields))
                   if form is not None else None,
                   provider_order_id=order.provider_order_id, status=str(order.status),
                   intent=str(order.intent), amount=MoneyOut.of(order.amount),
                   approve_url=order.approve_url, capture_id=order.capture_id,
                   authorization_id=order.authorization_id,
                   captured=MoneyOut.maybe(order.captured),
                   refunded=MoneyOut.maybe(order.refunded),
                   refundable=MoneyOut.of(order.refundable), needs_attention=order.needs_attention,
                   disputed=order.disputed, lines=[LineOut.of(x) for x in order.lines],
                   created_at=order.created_at, updated_at=order.updated_at)


class BuyerOrderOut(BaseModel):
    """An order as its buyer's pages see it (`GET /v1/orders/{id}` without an API key).

    What a receipt shows (status, amount, lines, which provider, the attempt) and the next step
    while it is the buyer's to take: `approve_url` while a PayPal order awaits approval,
    `checkout_form` while an unpaid card order (APS) awaits payment. Nothing else: no provider
    ids, captures, refunds, history or metadata (those need the API key). The APS form carries
    the account's access code and the buyer's e-mail because APS's payment page requires them
    in the form the browser posts; it is answered only while paying is the next step."""

    model_config = ConfigDict(extra="forbid")

    id: str
    provider: str
    status: str
    amount: MoneyOut
    lines: list[LineOut]
    payment_attempt: int
    approve_url: str | None
    checkout_form: CheckoutFormOut | None

    @classmethod
    def of(cls, order: Order, form: CheckoutForm | None = None) -> BuyerOrderOut:
        """The buyer's view of `order`; `form` is its checkout form while one is open."""
        awaiting_approval = order.status is OrderStatus.CREATED
        return cls(id=order.id, provider=order.provider, status=str(order.status),
                   amount=MoneyOut.of(order.amount), lines=[LineOut.of(x) for x in order.lines],
                   payment_attempt=order.capture_attempt,
                   approve_url=order.approve_url if awaiting_approval else None,
                   checkout_form=CheckoutFormOut(url=form.url, fields=dict(form.fields))
                   if form is not None and order.status in PAYABLE else None)


class RefundOut(BaseModel):
    """A refund, with the order as it stands after it."""

    id: str
    order_id: str
    amount: MoneyOut
    status: str
    provider_refund_id: str | None
    reason: str | None
    created_at: datetime
    order: OrderOut

    @classmethod
    def of(cls, refund: Refund, order: Order) -> RefundOut:
        """The wire form of a refund."""
        return cls(id=refund.id, order_id=refund.order_id, amount=MoneyOut.of(refund.amount),
                   status=refund.status,
                   provider_refund_id=refund.provider_refund_id, reason=refund.reason,
                   created_at=refund.created_at, order=OrderOut.of(order))


class OrderPage(BaseModel):
    """One page of orders, newest first; pass `next_cursor` as `cursor` for the next."""

    data: list[OrderOut]
    next_cursor: str | None


class ProductOut(BaseModel):
    """A product at the server's price."""

    sku: str
    name: str
    unit_amount: MoneyOut
    in_stock: bool

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        """The wire form of a product."""
        return cls(sku=product.sku, name=product.name, in_stock=product.in_stock,
                   unit_amount=MoneyOut.of(product.unit_price))


class CatalogOut(BaseModel):
    """The shop's catalog."""

    currency: str | None
    products: list[ProductOut]

    @classmethod
    def of(cls, catalog: Catalog) -> CatalogOut:
        """The wire form of the catalog."""
        products = [ProductOut.of(p) for p in catalog.products.values()]
        return cls(currency=products[0].unit_amount.currency_code if products else None,
                   products=products)


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str
    message: str
    details: dict[str, Any]
    request_id: str | None


class ErrorOut(BaseModel):
    """The one error body."""

    error: ErrorDetail


def dump(model: BaseModel) -> dict[str, Any]:
    """A response model as a JSON-ready dict (what an Idempotency-Key stores and replays)."""
    return model.model_dump(mode="json")
