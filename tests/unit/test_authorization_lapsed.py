"""When the reconciler counts an AUTHORIZED order's authorization as run out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import AuthorizationResult, CaptureResult, ProviderOrderState
from paywire.services.reconcile import authorization_lapsed

S = OrderStatus
NOW = datetime(2026, 3, 1, tzinfo=UTC)
TEN = Money(1000, "USD")


def order(status: OrderStatus = S.AUTHORIZED) -> Order:
    """An AUTHORIZE order in `status`."""
    line = OrderLine("mug", "Mug", 1, TEN)
    return Order.new("ord_1", Intent.AUTHORIZE, [line], NOW - timedelta(days=40)).evolve(
        NOW - timedelta(days=30), status=status, provider_order_id="O1")


def auth(status: OrderStatus, provider_status: str, expires_in: timedelta | None,
         auth_id: str = "A1") -> AuthorizationResult:
    """An authorization expiring `expires_in` from NOW (None: PayPal gave no expiry)."""
    return AuthorizationResult(auth_id, status, TEN, provider_status,
                               None if expires_in is None else NOW + expires_in)


def truth(*auths: AuthorizationResult, captured: bool = False) -> ProviderOrderState:
    """A COMPLETED PayPal order holding `auths` (and a capture when `captured`)."""
    caps = (CaptureResult("C1", S.COMPLETED, TEN, "COMPLETED"),) if captured else ()
    return ProviderOrderState("O1", S.AUTHORIZED, "COMPLETED", TEN, caps, auths)


PAST, FUTURE = -timedelta(seconds=1), timedelta(days=1)


@pytest.mark.parametrize(("auths", "want"), [
    ([auth(S.AUTHORIZED, "CREATED", PAST)], True),  # PayPal still reads CREATED
    ([auth(S.AUTHORIZED, "CREATED", timedelta(0))], True),  # at the instant itself
    ([auth(S.EXPIRED, "EXPIRED", FUTURE)], True),  # the status says so, whatever the time
    ([auth(S.EXPIRED, "EXPIRED", None)], True),
    ([auth(S.AUTHORIZED, "CREATED", FUTURE)], False),
    ([auth(S.AUTHORIZED, "CREATED", None)], False),  # no expiry known: not guessed
    ([auth(S.PENDING, "PENDING", PAST)], False),
    ([auth(S.VOIDED, "VOIDED", PAST)], False),  # a void is not expiry
    # the original ran out but its reauthorization (same validity here) has not
    ([auth(S.AUTHORIZED, "CREATED", PAST), auth(S.AUTHORIZED, "CREATED", FUTURE, "A2")], False),
    ([auth(S.VOIDED, "VOIDED", PAST), auth(S.AUTHORIZED, "CREATED", PAST, "A2")], True),
])
def test_lapsed_when_every_open_authorization_ran_out(auths: list[AuthorizationResult],
                                                      want: bool) -> None:
    """Lapsed when each open authorization reads EXPIRED or is past its expiry."""
    assert authorization_lapsed(order(), truth(*auths), NOW) is want


def test_only_uncaptured_authorized_orders_lapse() -> None:
    """A capture, or an order not AUTHORIZED, is never expired this way."""
    ran_out = auth(S.AUTHORIZED, "CREATED", PAST)
    assert authorization_lapsed(order(), truth(ran_out, captured=True), NOW) is False
    assert authorization_lapsed(order(S.COMPLETED), truth(ran_out), NOW) is False
    assert authorization_lapsed(order(), truth(), NOW) is False
