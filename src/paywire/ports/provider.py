"""The payment provider port: a provider's operations in domain terms, and what they answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from paywire.domain.money import Money
from paywire.domain.order import Order, OrderStatus


@dataclass(frozen=True, slots=True)
class CheckoutForm:
    """A signed form the buyer's browser posts to the provider's payment page (APS's hosted
    page): post `fields` as hidden inputs to `url`. Card data goes from the browser to the
    provider, never through paywire."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class ProviderOrder:
    """An order as created at the provider.

    `approve_url` is where the buyer approves a redirect-style payment (PayPal); providers that
    take the card on a posted form (APS) answer no URL and give `PaymentProvider.checkout_form`.
    """

    provider_order_id: str
    status: str
    approve_url: str | None


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """A capture as the provider reports it. `status` is mapped to the order status it means."""

    capture_id: str
    status: OrderStatus  # COMPLETED | PENDING | DENIED | FAILED | PARTIALLY_REFUNDED | REFUNDED
    amount: Money
    provider_status: str
    reason: str | None = None
    provider_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationResult:
    """An authorization as the provider reports it."""

    authorization_id: str
    status: OrderStatus  # AUTHORIZED | PENDING | VOIDED | COMPLETED (captured) | DENIED | EXPIRED
    amount: Money
    provider_status: str
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    """A refund as the provider reports it."""

    refund_id: str
    status: str  # completed | pending | failed
    amount: Money
    provider_status: str
    capture_id: str | None = None  # the capture it refunds, when the provider says
    invoice_id: str | None = None  # the merchant's reference on it (paywire's own refund id)


@dataclass(frozen=True, slots=True)
class DisputeResult:
    """A dispute as the provider reports it: open or closed, and the captures it names."""

    dispute_id: str
    open: bool  # False once the provider reports it resolved
    provider_status: str
    capture_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProviderOrderState:
    """The provider's whole truth about an order (for settling conflicts and replays)."""

    provider_order_id: str
    status: OrderStatus  # what the provider's order status means for ours
    provider_status: str
    amount: Money | None
    captures: tuple[CaptureResult, ...] = ()
    authorizations: tuple[AuthorizationResult, ...] = ()
    # The payment attempt this truth is about (providers with a reference per attempt): a
    # DENIED then ends only that attempt (see `Fact.attempt`).
    attempt: int | None = None


class PaymentProvider(Protocol):
    """A payment provider's operations, in domain terms. Errors are `ProviderError`.

    Every call about an order also gets the `order` itself (keyword, may be None only where a
    test calls a provider directly): providers that key their calls on the merchant's own
    references (APS: `merchant_reference` = order id + attempt, the amount left to refund)
    read them from it; providers with their own order objects (PayPal) ignore it.
    """

    name: str

    def check_amount(self, amount: Money) -> None:
        """Refuse (ValidationError) a currency or amount the provider cannot take."""
        ...

    async def create_order(self, order: Order, *, request_id: str, return_url: str | None = None,
                           cancel_url: str | None = None) -> ProviderOrder:
        """Create the order at the provider."""
        ...

    def checkout_form(self, order: Order) -> CheckoutForm | None:
        """The signed form the buyer posts to pay the order's current attempt, for providers
        that take the card on their own page from a posted form; None for the others."""
        ...

    async def capture_order(self, provider_order_id: str, *, request_id: str,
                            order: Order | None = None,
                            token: str | None = None) -> CaptureResult:
        """Capture an approved CAPTURE-intent order. `token` is a payment token the buyer's
        tokenization produced (APS's tokenization form), for providers that pay with one."""
        ...

    async def authorize_order(self, provider_order_id: str, *, request_id: str,
                              order: Order | None = None,
                              token: str | None = None) -> AuthorizationResult:
        """Authorize an approved AUTHORIZE-intent order (`token` as for `capture_order`)."""
        ...

    async def capture_authorization(self, authorization_id: str, amount: Money | None, *,
                                    request_id: str, final: bool = True,
                                    order: Order | None = None) -> CaptureResult:
        """Capture (part of) an authorization."""
        ...

    async def void_authorization(self, authorization_id: str, *, request_id: str,
                                 order: Order | None = None) -> None:
        """Void an authorization."""
        ...

    async def refund_capture(self, capture_id: str, amount: Money | None, *, request_id: str,
                             invoice_id: str | None = None,
                             order: Order | None = None) -> RefundResult:
        """Refund (part of) a capture; `amount` None = all that is left."""
        ...

    async def get_order(self, provider_order_id: str, *,
                        order: Order | None = None) -> ProviderOrderState:
        """The provider's truth about an order."""
        ...

    async def get_capture(self, capture_id: str) -> CaptureResult:
        """The provider's truth about a capture (with its order id)."""
        ...

    async def get_refund(self, refund_id: str) -> RefundResult:
        """The provider's truth about a refund (with its capture id)."""
        ...

    async def get_dispute(self, dispute_id: str) -> DisputeResult:
        """The provider's truth about a dispute (ProviderError `invalid` for a provider that
        reports none through its API)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
