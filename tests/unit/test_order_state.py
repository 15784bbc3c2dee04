"""The ranked order state machine: total, monotone, and order-independent with truth fetches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.domain.errors import IllegalTransition, OverRefund, ValidationError
from paywire.domain.money import Money
from paywire.domain.order import (
    RANK,
    SIDE_EXITS,
    Intent,
    Order,
    OrderLine,
    OrderStatus,
    Verdict,
    decide,
)

S = OrderStatus
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_decide_is_total_and_never_lowers_rank(current: S, target: S) -> None:
    """Every pair has a verdict; an APPLY never lowers a ranked status or leaves a side exit."""
    verdict = decide(current, target)
    assert verdict in Verdict
    if verdict is Verdict.APPLY:
        assert current not in SIDE_EXITS
        if target in RANK:
            assert RANK[target] > RANK[current]


def test_table_examples() -> None:
    """The architecture's examples: no regression, contradictions are conflicts."""
    assert decide(S.COMPLETED, S.APPROVED) is Verdict.STALE
    assert decide(S.REFUNDED, S.COMPLETED) is Verdict.STALE
    assert decide(S.COMPLETED, S.DENIED) is Verdict.CONFLICT
    assert decide(S.COMPLETED, S.VOIDED) is Verdict.CONFLICT
    assert decide(S.PENDING, S.DENIED) is Verdict.APPLY
    assert decide(S.EXPIRED, S.APPROVED) is Verdict.STALE
    assert decide(S.VOIDED, S.COMPLETED) is Verdict.CONFLICT
    assert decide(S.CREATED, S.COMPLETED) is Verdict.APPLY
    # An authorization past its 29 days expires the order; once captured it cannot.
    assert decide(S.AUTHORIZED, S.EXPIRED) is Verdict.APPLY
    assert decide(S.EXPIRED, S.AUTHORIZED) is Verdict.STALE
    assert decide(S.COMPLETED, S.EXPIRED) is Verdict.CONFLICT


CHAINS = [
    [S.APPROVED, S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED],
    [S.APPROVED, S.PENDING, S.COMPLETED, S.PARTIALLY_REFUNDED],
    [S.APPROVED, S.AUTHORIZED, S.COMPLETED],
    [S.APPROVED, S.AUTHORIZED, S.PENDING, S.COMPLETED, S.REFUNDED],
]


@st.composite
def provider_histories(draw: st.DrawFn) -> list[S]:
    """A sequence of facts that really can happen at the provider, in its true order."""
    chain = draw(st.sampled_from(CHAINS))
    history = chain[: draw(st.integers(min_value=1, max_value=len(chain)))]
    exits = [e for e, after in SIDE_EXITS.items() if history[-1] in after]
    if exits and draw(st.booleans()):
        history = [*history, draw(st.sampled_from(exits))]
    return history


@given(provider_histories(), st.randoms())
def test_any_delivery_order_converges(history: list[S], rnd: object) -> None:
    """Facts applied in any order (conflicts settled by fetching the truth) end where PayPal is."""
    truth = history[-1]
    shuffled = list(history)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    state = S.CREATED
    for fact in shuffled:
        verdict = decide(state, fact)
        if verdict is Verdict.APPLY:
            state = fact
        elif verdict is Verdict.CONFLICT:
            state = truth  # paywire fetches the provider's object and applies that
    assert state == truth


def order(minor: int = 1000, qty: int = 2) -> Order:
    """A CREATED order of `qty` × `minor` USD cents."""
    line = OrderLine("mug", "Mug", qty, Money(minor, "USD"))
    return Order.new("ord_1", Intent.CAPTURE, [line], NOW)


def test_order_prices_from_lines() -> None:
    """An order's amount is the sum of its lines; lines refuse zero quantities and prices."""
    assert order().amount == Money(2000, "USD")
    with pytest.raises(ValidationError):
        OrderLine("mug", "Mug", 0, Money(100, "USD"))
    with pytest.raises(ValidationError):
        OrderLine("mug", "Mug", 1, Money(0, "USD"))


@given(st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=8))
def test_refunds_never_exceed_the_capture(refunds: list[int]) -> None:
    """Refunds are accepted while they fit in what is left, and refused beyond it."""
    o = order().evolve(NOW, status=S.COMPLETED, captured=Money(2000, "USD"))
    total = 0
    for r in refunds:
        amount = Money(r, "USD")
        if total + r <= 2000:
            o.check_refund(amount)
            total += r
            o = o.evolve(NOW, refunded=Money(total, "USD"),
                         status=o.status_after_refunds(Money(total, "USD")))
        else:
            with pytest.raises((OverRefund, IllegalTransition)):
                o.check_refund(amount)
    assert (o.refunded or Money(0, "USD")).minor <= 2000


def test_unpaid_orders_do_not_refund() -> None:
    """Only COMPLETED or PARTIALLY_REFUNDED orders can refund."""
    with pytest.raises(IllegalTransition):
        order().check_refund(Money(100, "USD"))
