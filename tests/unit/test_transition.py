"""`domain.transition` by example: the amount rule, refunds, declines and disputes."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

from paywire.domain.facts import AttemptOver, Dispute, Fact, Release, Reserve
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus, Verdict
from paywire.domain.transition import KnownRefund, transition

S = OrderStatus
NOW = datetime(2026, 1, 1, tzinfo=UTC)
OURS = Money(2000, "USD")
LESS = Money(1500, "USD")


def approved() -> Order:
    """An APPROVED order of 20.00 USD."""
    order = Order.new("ord_1", Intent.CAPTURE, [OrderLine("mug", "Mug", 2, Money(1000, "USD"))],
                      NOW)
    return order.evolve(NOW, status=S.APPROVED, provider_order_id="PP-1")


def paid() -> Order:
    """The same order, captured in full."""
    return approved().evolve(NOW, status=S.COMPLETED, capture_id="CAP-1", captured=OURS)


def capture(amount: Money, *, hint: bool) -> Fact:
    """A capture of `amount`, as a webhook body tells it or as the provider answered us."""
    return Fact(S.COMPLETED, "webhook" if hint else "api", capture_id="CAP-1", amount=amount,
                hint=hint)


def test_a_body_with_another_amount_is_asked_about() -> None:
    """A webhook body claiming another amount moves nothing, writes nothing, asks the provider."""
    out = transition(approved(), capture(LESS, hint=True), NOW)
    assert (out.order, out.verdict, out.ask, out.attention) == (
        None, Verdict.CONFLICT, "amount_mismatch", None)
    assert out.lines == () and out.announcements == ()


def test_the_providers_answer_with_another_amount_goes_to_a_person_once() -> None:
    """The provider's own answer with another amount flags the order (never paid, never
    announced paid); the same answer again writes nothing more."""
    out = transition(approved(), capture(LESS, hint=False), NOW)
    assert out.order is not None and out.order.status is S.APPROVED
    assert out.order.needs_attention == "amount_mismatch" and out.attention == "amount_mismatch"
    assert out.order.captured is None and out.verdict is Verdict.CONFLICT and out.ask is None
    assert [a.type for a in out.announcements] == ["order.needs_attention"]
    assert out.lines[0].detail["provider_amount"] == "15.00 USD"
    again = transition(out.order, capture(LESS, hint=False), NOW)
    assert (again.order, again.lines, again.announcements) == (None, (), ())


def test_an_authorization_for_another_amount_is_held_too() -> None:
    """An authorization is money held at the provider: another amount stops it as a capture's."""
    auth = Fact(S.AUTHORIZED, "api", authorization_id="AUTH-1", amount=LESS)
    out = transition(approved(), auth, NOW)
    assert out.order is not None and out.order.status is S.APPROVED
    assert out.order.needs_attention == "amount_mismatch"


def test_a_fact_that_moves_nothing_is_not_checked_for_its_amount() -> None:
    """A stale capture body (the order already paid at our amount) is recorded, not asked."""
    out = transition(paid(), capture(LESS, hint=True), NOW)
    assert (out.order, out.verdict, out.ask) == (None, Verdict.STALE, None)
    assert [line.verdict for line in out.lines] == ["STALE"]


def test_our_amount_moves_the_order_and_is_announced() -> None:
    """A capture at our amount completes the order and announces it."""
    out = transition(approved(), capture(OURS, hint=True), NOW)
    assert out.order is not None and out.order.status is S.COMPLETED
    assert out.order.captured == OURS and out.order.version == approved().version + 1
    assert [a.key for a in out.announcements] == ["order.completed:ord_1"]


def test_a_refund_before_its_capture_waits_for_the_truth() -> None:
    """A refund body before the capture asks the provider; the provider's answer of a refund on
    an unpaid order goes to a person."""
    refund = Fact(S.REFUNDED, "webhook", refund_id="RF-1", amount=LESS, hint=True)
    assert transition(approved(), refund, NOW).ask == "refund_mismatch"
    told = transition(approved(), dataclasses.replace(refund, source="reconcile", hint=False),
                      NOW)
    assert told.attention == "refund_mismatch:RF-1" and told.ask is None


def test_refunds_are_counted_once_and_release_what_they_reserved() -> None:
    """A refund of ours releases its reservation; counted, it is stale; one made elsewhere must
    fit in what is left."""
    held = transition(paid(), Reserve("ref_1", LESS), NOW).order
    assert held is not None and held.refund_reserved == LESS and held.refundable.minor == 500
    refund = Fact(S.REFUNDED, "api", refund_id="RF-1", amount=LESS)
    out = transition(held, refund, NOW, known=KnownRefund(LESS, completed=False))
    assert out.order is not None and out.order.status is S.PARTIALLY_REFUNDED
    assert out.order.refunded == LESS and out.order.refund_reserved is None
    assert [a.key for a in out.announcements] == ["refund:RF-1"]
    stale = transition(out.order, refund, NOW, known=KnownRefund(LESS, completed=True))
    assert (stale.order, stale.verdict) == (None, Verdict.STALE)
    too_much = Fact(S.REFUNDED, "webhook", refund_id="RF-2", amount=LESS, hint=True)
    assert transition(out.order, too_much, NOW).ask == "refund_mismatch"
    rest = dataclasses.replace(too_much, amount=Money(500, "USD"))
    done = transition(out.order, rest, NOW).order
    assert done is not None and done.status is S.REFUNDED
    freed = transition(held, Release(LESS), NOW).order
    assert freed is not None and freed.refund_reserved is None


def test_declines_open_the_next_attempt_once() -> None:
    """A decline of the current attempt opens the next; of another attempt it is stale; a
    payment call's own refusal counts once with its decline."""
    declined = Fact(S.DENIED, "webhook", attempt=1, hint=True)
    out = transition(approved(), declined, NOW)
    assert out.order is not None and out.order.capture_attempt == 2
    assert out.order.status is S.APPROVED
    assert transition(out.order, declined, NOW).verdict is Verdict.STALE
    refused = transition(out.order, AttemptOver(1, "api", {"kind": "declined"}), NOW)
    assert refused.order is None and refused.lines[0].detail == {"kind": "declined"}


def test_disputes_mark_once_and_are_announced_per_dispute() -> None:
    """An opened dispute marks the order; a second one is announced under its own key; a
    resolution is a history line and leaves the mark."""
    one = transition(paid(), Dispute("DS-1", True, "webhook"), NOW)
    assert one.order is not None and one.order.disputed
    two = transition(one.order, Dispute("DS-2", True, "webhook"), NOW)
    assert two.order is None and [a.key for a in two.announcements] == ["dispute:DS-2"]
    closed = transition(one.order, Dispute("DS-1", False, "webhook"), NOW)
    assert closed.order is None and closed.announcements == () and len(closed.lines) == 1


def test_only_the_transition_service_writes_orders() -> None:
    """`update_order` is called from one module: the one that writes a transition's outcome."""
    src = Path(__file__).resolve().parents[2] / "src" / "paywire"
    callers = {str(p.relative_to(src)) for p in src.rglob("*.py")
               if re.search(r"\.update_order\(", p.read_text(encoding="utf-8"))
               and "store" not in p.relative_to(src).parts}
    assert callers == {"services/transitions.py"}
