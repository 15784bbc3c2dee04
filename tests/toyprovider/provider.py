"""The toy provider's client: an in-memory payment service that creates orders and answers
what it knows (a real one would call its API here)."""

from __future__ import annotations

from paywire.domain.errors import ProviderError, ValidationError
from paywire.domain.money import Money
from paywire.domain.order import Order, OrderStatus
from paywire.ports import (
    AuthorizationResult,
    CaptureResult,
    CheckoutForm,
    DisputeResult,
    ProviderOrder,
    ProviderOrderState,
    RefundResult,
)

NAME = "toy"


class ToyProvider:
    """`PaymentProvider` for the toy service: orders are paid by the buyer at the toy's page
    and reported by a signed webhook; nothing is captured or refunded through the API."""

    name = NAME

    def __init__(self, page_url: str) -> None:
        self.page_url = page_url.rstrip("/")
        self.created: dict[str, Order] = {}
        self.closed = False

    def check_amount(self, amount: Money) -> None:
        """The toy takes US dollars only."""
        if amount.currency != "USD":
            raise ValidationError(f"the toy provider takes USD only, not {amount.currency}",
                                  field="currency")

    async def create_order(self, order: Order, *, request_id: str, return_url: str | None = None,
                           cancel_url: str | None = None) -> ProviderOrder:
        """Remember the order; the buyer pays it at the toy's page."""
        toy_id = f"TOY-{order.id}"
        self.created[toy_id] = order
        return ProviderOrder(toy_id, "CREATED", f"{self.page_url}/pay/{toy_id}")

    def checkout_form(self, order: Order) -> CheckoutForm | None:
        """No posted form: the buyer is redirected."""
        return None

    def _unsupported(self, what: str) -> ProviderError:
        return ProviderError(f"the toy provider does not {what} through its API",
                             provider=NAME, kind="invalid")

    async def capture_order(self, provider_order_id: str, *, request_id: str,
                            order: Order | None = None,
                            token: str | None = None) -> CaptureResult:
        """Not through the API (the webhook reports the payment)."""
        raise self._unsupported("capture")

    async def authorize_order(self, provider_order_id: str, *, request_id: str,
                              order: Order | None = None,
                              token: str | None = None) -> AuthorizationResult:
        """Not through the API."""
        raise self._unsupported("authorize")

    async def capture_authorization(self, authorization_id: str, amount: Money | None, *,
                                    request_id: str, final: bool = True,
                                    order: Order | None = None) -> CaptureResult:
        """Not through the API."""
        raise self._unsupported("capture authorizations")

    async def void_authorization(self, authorization_id: str, *, request_id: str,
                                 order: Order | None = None) -> None:
        """Not through the API."""
        raise self._unsupported("void")

    async def refund_capture(self, capture_id: str, amount: Money | None, *, request_id: str,
                             invoice_id: str | None = None,
                             order: Order | None = None) -> RefundResult:
        """Not through the API."""
        raise self._unsupported("refund")

    async def get_order(self, provider_order_id: str, *,
                        order: Order | None = None) -> ProviderOrderState:
        """What the toy knows: an order it created, still unpaid."""
        known = self.created.get(provider_order_id)
        if known is None:
            raise ProviderError(f"no toy order {provider_order_id}", provider=NAME,
                                kind="not_found")
        return ProviderOrderState(provider_order_id, OrderStatus.CREATED, "CREATED",
                                  known.amount)

    async def get_capture(self, capture_id: str) -> CaptureResult:
        """Not through the API."""
        raise self._unsupported("report captures")

    async def get_refund(self, refund_id: str) -> RefundResult:
        """Not through the API."""
        raise self._unsupported("report refunds")

    async def get_dispute(self, dispute_id: str) -> DisputeResult:
        """Not through the API."""
        raise self._unsupported("report disputes")

    async def aclose(self) -> None:
        """Nothing to release."""
        self.closed = True
