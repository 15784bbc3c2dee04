"""`domain.transition`: the same facts, delivered in any order, end in the same order.

Each example draws one true provider history (a payment, or a declined attempt, or nothing;
refunds; disputes; a body with an amount the provider never took) and the facts paywire may
learn about it: webhook bodies (hints), redeliveries, the provider's answers to our own calls,
declines of earlier attempts, a refund that was never made. Two shuffles of those facts go
through `transition`, with the services' answer to `ask` modelled as they run it: the truth
fetcher reads the provider's order and applies it (`TruthApplier.apply`: a conflict it
cannot apply goes to a person), then the refund it was asked about (`TruthFetcher._settle`;
a refund the provider does not know changes nothing). Truth fetches run at random points, as
the queue does.

Compared at the end: status, money (captured, refunded, reserved), capture and authorization
ids, the next attempt, the dispute mark, whether a person is needed and every reason raised, and
every announcement the shop must hear once. Two things depend on the order, by design, and are
compared as such:

- `needs_attention` holds one reason, the latest raised: when two reasons are raised (an amount
  the provider took that differs from ours, then a refund of that payment), which one the column
  shows last is the order they were raised in. The set of reasons raised is the same.
- Progress notices (`order.approved`, `order.authorized`) are best effort (architecture.md): a
  state skipped because a later fact came first is not back-filled.

Not drawn: facts that cannot be true together (a capture and a PayPal denial of one order); the
state machine's own test (`test_order_state.py`) covers those conflicts, which the truth
settles. Nor a reversal: the truth of a reversed capture is a REVERSED fact, which an order that
never saw the capture cannot take (a conflict, for a person).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from paywire.domain.facts import Dispute, Fact, Flag
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus, Verdict
from paywire.domain.transition import AnyFact, KnownRefund, transition

S = OrderStatus
NOW = datetime(2026, 1, 1, tzinfo=UTC)
OURS = Money(2000, "USD")
OTHER = Money(1500, "USD")
PROGRESS = ("order.approved", "order.authorized")


@dataclass
class Scenario:
    """One provider history, where paywire's records start, and the facts to deliver."""

    start: Order
    truth: Fact  # what a GET of the provider's order states (`checkout.truth_fact`)
    facts: list[AnyFact]
    ledger: dict[str, KnownRefund] = field(default_factory=dict)  # refunds of ours, pending
    real_refunds: dict[str, Money] = field(default_factory=dict)  # what the provider refunded
    next_attempt: int = 1  # the attempt a new payment call would make


@dataclass
class Run:
    """One delivery order's end."""

    order: Order
    reasons: set[str]
    announced: set[str]


def hint(fact: Fact) -> Fact:
    """The fact as a webhook body tells it."""
    return dataclasses.replace(fact, source="webhook", hint=True)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A true history and the facts paywire may learn of it (see the module docstring)."""
    attempt = draw(st.integers(min_value=1, max_value=3))
    base = Order.new("ord_1", Intent.CAPTURE, [OrderLine("mug", "Mug", 2, Money(1000, "USD"))],
                     NOW)
    # Earlier attempts were declined and counted when they ended; their bodies may come again.
    facts: list[AnyFact] = [hint(Fact(S.DENIED, "webhook", attempt=n))
                            for n in range(1, attempt) if draw(st.booleans())]
    ledger: dict[str, KnownRefund] = {}
    real: dict[str, Money] = {}
    paid_before = draw(st.booleans())
    payment = "paid" if paid_before else draw(st.sampled_from(
        ["none", "paid", "pending_paid", "authorized", "authorized_paid", "tampered",
         "declined", "denied"]))
    captured = OTHER if payment == "tampered" else OURS
    capture = Fact(S.COMPLETED, "api", capture_id="CAP-1", amount=captured)
    start = base.evolve(NOW, status=S.APPROVED, provider_order_id="PP-1",
                        capture_attempt=attempt)
    truth = Fact(S.APPROVED, "reconcile")
    if payment in ("paid", "pending_paid", "authorized_paid", "tampered"):
        truth = dataclasses.replace(capture, source="reconcile")
        facts.append(hint(capture))
        if draw(st.booleans()):
            facts.append(capture)  # our own capture call's answer
        if payment == "pending_paid":
            facts.append(hint(Fact(S.PENDING, "webhook", capture_id="CAP-1", amount=OURS)))
    if payment in ("authorized", "authorized_paid"):
        auth = Fact(S.AUTHORIZED, "api", authorization_id="AUTH-1", amount=OURS)
        facts.append(hint(auth))
        if payment == "authorized":
            truth = dataclasses.replace(auth, source="reconcile")
    if payment == "declined":  # this attempt's card declined (APS): the next one opens
        facts.append(hint(Fact(S.DENIED, "webhook", attempt=attempt)))
    if payment == "denied":  # PayPal denied the payment: the order ends
        truth = Fact(S.DENIED, "reconcile")
        facts.append(hint(Fact(S.DENIED, "webhook")))
    if payment not in ("tampered", "denied", "declined") and draw(st.booleans()):
        # A body claiming an amount the provider never took (garbled, or not the provider's).
        facts.append(hint(dataclasses.replace(capture, amount=Money(1, "USD"))))
    if paid_before:
        start = start.evolve(NOW, status=S.COMPLETED, capture_id="CAP-1", captured=OURS)
        facts = [f for f in facts if f is not capture]
    paid = payment in ("paid", "pending_paid", "authorized_paid", "tampered")
    if paid:
        left, reserved = captured.minor, 0
        for n in range(draw(st.integers(min_value=0, max_value=3))):
            if left == 0:
                break
            minor = draw(st.integers(min_value=1, max_value=left))
            left -= minor
            refund = Fact(S.REFUNDED, "api", refund_id=f"RF-{n}", amount=Money(minor, "USD"),
                          capture_id="CAP-1")
            real[f"RF-{n}"] = refund.amount
            facts.append(hint(refund))
            if paid_before and draw(st.booleans()):
                # Ours: reserved when asked for; the API's answer counts it too.
                ledger[f"RF-{n}"] = KnownRefund(refund.amount, completed=False)
                reserved += minor
                facts.append(refund)
        if reserved:
            start = start.evolve(NOW, refund_reserved=Money(reserved, "USD"))
        for n in range(draw(st.integers(min_value=0, max_value=2))):
            facts.append(Dispute(f"DS-{n}", True, "webhook"))
            if draw(st.booleans()):
                facts.append(Dispute(f"DS-{n}", False, "webhook"))
    if draw(st.booleans()):  # a refund the provider never made, for more than was captured
        facts.append(hint(Fact(S.REFUNDED, "webhook", refund_id="RF-FAKE",
                               amount=Money(5000, "USD"), capture_id="CAP-1")))
    if facts and draw(st.booleans()):
        facts.append(draw(st.sampled_from(facts)))  # a redelivery
    return Scenario(start, truth, facts, ledger, real,
                    attempt + 1 if payment == "declined" else attempt)


def deliver(s: Scenario, facts: list[AnyFact], rnd: random.Random) -> Run:
    """Apply `facts` in this order as the services do, truth fetches at random points."""
    order, ledger = s.start, dict(s.ledger)
    reasons: set[str] = set()
    announced: set[str] = set()
    asked: list[AnyFact] = []

    def apply(fact: AnyFact) -> Verdict:
        nonlocal order
        rid = fact.refund_id if isinstance(fact, Fact) else None
        outcome = transition(order, fact, NOW, known=ledger.get(rid) if rid else None)
        order = outcome.after(order)
        if rid and outcome.verdict is Verdict.APPLY and isinstance(fact, Fact):
            ledger[rid] = KnownRefund(fact.amount or OURS, completed=True)
        if outcome.attention:
            reasons.add(outcome.attention)
        announced.update(a.key for a in outcome.announcements)
        if outcome.ask is not None:
            asked.append(fact)
        return outcome.verdict

    def truth_fetches() -> None:
        while asked:
            fact = asked.pop(0)
            if apply(s.truth) is Verdict.CONFLICT and order.needs_attention is None:
                apply(Flag(f"conflict:{s.truth.target}", "reconcile"))
            if isinstance(fact, Fact) and fact.target is S.REFUNDED and (
                    fact.refund_id in s.real_refunds):
                apply(dataclasses.replace(fact, source="reconcile", hint=False))

    for fact in facts:
        apply(fact)
        if rnd.random() < 0.3:
            truth_fetches()
    truth_fetches()
    return Run(order, reasons, announced)


def state(run: Run) -> tuple[object, ...]:
    """What must not depend on the delivery order."""
    o = run.order
    # The authorization id is taken when the order moves to AUTHORIZED, where capturing or
    # voiding needs it; an AUTHORIZED fact that comes after the capture is stale, and its id
    # history only.
    auth = o.authorization_id if o.status is S.AUTHORIZED else None
    return (o.status, o.captured, o.refunded, o.refund_reserved, o.capture_id, auth,
            o.capture_attempt, o.disputed, o.needs_attention is not None,
            run.reasons, {k for k in run.announced if not k.startswith(PROGRESS)})


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_any_delivery_order_ends_in_the_same_state(s: Scenario, one: random.Random,
                                                   two: random.Random) -> None:
    """Two shuffles of one history's facts end in the same status, money, marks and notices."""
    first, second = list(s.facts), list(s.facts)
    one.shuffle(first)
    two.shuffle(second)
    a, b = deliver(s, first, one), deliver(s, second, two)
    assert state(a) == state(b)
    if a.reasons <= {"amount_mismatch"}:
        assert a.order.needs_attention == b.order.needs_attention


@given(scenarios(), st.randoms(use_true_random=False))
def test_the_truth_is_reached(s: Scenario, rnd: random.Random) -> None:
    """Whatever the order, the end agrees with the provider: paid in full at our amount, or
    flagged when the provider took another amount; every real refund counted, none reserved;
    the next attempt one past the last declined."""
    facts = list(s.facts)
    rnd.shuffle(facts)
    end = deliver(s, facts, rnd).order
    assert end.capture_attempt == s.next_attempt  # one decline, one new attempt
    if s.truth.target is S.COMPLETED and s.truth.amount == OURS:
        assert end.status in (S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED)
        assert end.captured == OURS and end.refund_reserved is None
        assert end.needs_attention is None
        total = sum(m.minor for m in s.real_refunds.values())
        assert (end.refunded.minor if end.refunded else 0) == total
    if s.truth.target is S.COMPLETED and s.truth.amount != OURS:
        assert end.needs_attention is not None and end.status is S.APPROVED
        assert end.captured is None
