"""The one place an order moves: `transition(order, fact, now)` → `Outcome`.

Every path that learns something about an order (the API's answer, a webhook, the truth fetch,
reconciliation, an operator, the outbox giving up) describes it as a fact and asks this function
what it does: the order's new version (or none), the verdict, the history lines, the
announcements to the shop, and whether a person must look or the provider must be asked. The
service writes that outcome in the unit of work of its cause and decides nothing itself, so the
rules live here once: the ranked state machine (`order.decide`), declined attempts, the amount
check, refund totals and reservations, disputes and attention flags.

The amount rule (architecture.md, invariants 1 and 7). A fact that would move an order to
AUTHORIZED, PENDING or COMPLETED with an amount other than ours never moves it. Who says so
decides what happens next: a webhook body (`Fact.hint`) is a hint, so the provider is asked (a
truth fetch; a forged or garbled body costs one GET and changes nothing); the provider's own
answer to a request of ours is the truth, so asking again would only repeat it, and the order
goes to a person (`needs_attention="amount_mismatch"`, announced once). A refund that does not
fit (the order is not paid yet, or it is more than is left to refund) follows the same rule.

Pure: no I/O, no clock; `now` is the caller's. Raising is reserved for facts no path can build
(see `Reserve`'s preconditions in `Order.check_refund`, which the service checks first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paywire.domain.facts import (
    Announcement,
    AttemptOver,
    Created,
    Dispute,
    Fact,
    Flag,
    Release,
    Reserve,
    Resolved,
    announcement_for,
    attention_announcement,
    dispute_announcement,
)
from paywire.domain.money import Money
from paywire.domain.order import PAID, Order, OrderStatus, Verdict, decide

S = OrderStatus
AnyFact = Fact | Dispute | Flag | Resolved | AttemptOver | Created | Reserve | Release
# Targets whose fact carries the provider's amount for the whole order.
PAYMENT_TARGETS = frozenset({S.AUTHORIZED, S.PENDING, S.COMPLETED})
AMOUNT_MISMATCH = "amount_mismatch"
REFUND_MISMATCH = "refund_mismatch"


@dataclass(frozen=True, slots=True)
class Line:
    """One history line, before the store gives it the order's id and the time."""

    source: str
    verdict: str  # APPLY | STALE | CONFLICT | NOTE
    from_status: OrderStatus
    to_status: OrderStatus
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class KnownRefund:
    """What paywire's own refund records hold under a refund fact's id (the service looks it
    up): a refund of ours still pending (its `amount` is reserved) or one already counted."""

    amount: Money
    completed: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a fact does to an order."""

    order: Order | None  # the new version to write; None: the order stays as it is
    verdict: Verdict
    lines: tuple[Line, ...] = ()
    announcements: tuple[Announcement, ...] = ()
    attention: str | None = None  # flagged for a person now, for this reason
    ask: str | None = None  # not settled by this fact: fetch the provider's object (why)

    def after(self, before: Order) -> Order:
        """The order as it stands once this outcome is written."""
        return self.order or before


def line(order: Order, fact: Fact, verdict: str, to: OrderStatus | None = None,
         **detail: Any) -> Line:
    """The history line of `fact` on `order`, with what it named and `detail`."""
    info: dict[str, Any] = {k: v for k, v in (
        ("capture_id", fact.capture_id), ("refund_id", fact.refund_id),
        ("authorization_id", fact.authorization_id), ("dispute_id", fact.dispute_id),
        ("reason", fact.reason)) if v is not None}
    if fact.amount is not None:
        info["amount"] = fact.amount.to_decimal()
        info["currency"] = fact.amount.currency
    info.update(fact.detail)
    info.update(detail)
    return Line(fact.source, verdict, order.status, to or fact.target, info)


def transition(order: Order, fact: AnyFact, now: datetime, *,
               known: KnownRefund | None = None) -> Outcome:
    """What `fact` does to `order` at `now`; `known`: our records of a refund fact's refund."""
    if isinstance(fact, Fact):
        if fact.target is S.REFUNDED:
            return _refund(order, fact, now, known)
        return _status(order, fact, now)
    if isinstance(fact, Dispute):
        return _dispute(order, fact, now)
    if isinstance(fact, Flag):
        return flag(order, fact.reason, now, fact.source, **fact.detail)
    if isinstance(fact, Resolved):
        return resolve(order, fact, now)
    return _bookkeeping(order, fact, now)


def flag(order: Order, reason: str, now: datetime, source: str, **detail: Any) -> Outcome:
    """Mark the order for a person, say why in its history, and announce it once per reason."""
    flagged = order.evolve(now, needs_attention=reason)
    note = Line(source, "NOTE", order.status, order.status,
                {"needs_attention": reason, **detail})
    return Outcome(flagged, Verdict.APPLY, (note,), (attention_announcement(flagged, reason),),
                   attention=reason)


def resolve(order: Order, fact: Resolved, now: datetime) -> Outcome:
    """Clear the order's needs-attention flag, keeping who settled it and their note in its
    history; on an order not flagged, the note alone is kept (STALE: nothing to clear)."""
    same = order.status
    detail = {"resolved": order.needs_attention, "note": fact.note, "by": fact.by}
    if order.needs_attention is None:
        return Outcome(None, Verdict.STALE, (Line(fact.source, "NOTE", same, same, detail),))
    return Outcome(order.evolve(now, needs_attention=None), Verdict.APPLY,
                   (Line(fact.source, "NOTE", same, same, detail),))


def _status(order: Order, fact: Fact, now: datetime) -> Outcome:
    if fact.attempt is not None and fact.target is S.DENIED and (
            order.status in (S.CREATED, S.APPROVED) or fact.attempt != order.capture_attempt):
        return _declined(order, fact, now)
    verdict = decide(order.status, fact.target)
    if verdict is not Verdict.APPLY:
        # STALE: already there or past it. CONFLICT: two facts contradict and paywire does not
        # pick one: the provider's object decides (the caller holding it flags instead).
        ask = f"conflict:{fact.target}" if verdict is Verdict.CONFLICT else None
        return Outcome(None, verdict, (line(order, fact, verdict.value),), ask=ask)
    if fact.target in PAYMENT_TARGETS and fact.amount is not None and (
            fact.amount != order.amount):
        return _unfit(order, fact, now, AMOUNT_MISMATCH, AMOUNT_MISMATCH,
                      provider_amount=str(fact.amount), our_amount=str(order.amount))
    changes: dict[str, Any] = {"status": fact.target}
    if fact.capture_id:
        changes["capture_id"] = fact.capture_id
    if fact.authorization_id:
        changes["authorization_id"] = fact.authorization_id
    if fact.target in (S.COMPLETED, S.PENDING) and fact.amount is not None:
        changes["captured"] = fact.amount
    moved = order.evolve(now, **changes)
    told = announcement_for(moved, fact)
    return Outcome(moved, verdict, (line(order, fact, verdict.value),),
                   (told,) if told is not None else ())


def _declined(order: Order, fact: Fact, now: datetime) -> Outcome:
    # One card declined is not the order's end: the buyer may try another card under the next
    # attempt's reference. A decline of another attempt changes nothing: an earlier one was
    # counted when it ended, and a later one cannot exist before this one ended.
    if fact.attempt != order.capture_attempt:
        return Outcome(None, Verdict.STALE, (line(
            order, fact, Verdict.STALE.value, to=order.status, attempt=fact.attempt,
            current_attempt=order.capture_attempt),))
    moved = order.evolve(now, capture_attempt=order.capture_attempt + 1)
    return Outcome(moved, Verdict.APPLY, (line(
        order, fact, "NOTE", to=order.status, attempt=fact.attempt, declined=True,
        next_attempt=moved.capture_attempt),))


def _unfit(order: Order, fact: Fact, now: datetime, ask: str, attention: str,
           **detail: Any) -> Outcome:
    """A fact the order cannot take as told: ask the provider about a hint; flag the
    provider's own answer for a person, once per reason (asking again would repeat it)."""
    if fact.hint:
        return Outcome(None, Verdict.CONFLICT, ask=ask)
    if order.needs_attention == attention:
        return Outcome(None, Verdict.CONFLICT)
    flagged = flag(order, attention, now, fact.source, **detail)
    return Outcome(flagged.order, Verdict.CONFLICT, flagged.lines, flagged.announcements,
                   attention=attention)


def _refund(order: Order, fact: Fact, now: datetime, known: KnownRefund | None) -> Outcome:
    """Count a completed refund once per refund id and move to (PARTIALLY_)REFUNDED.

    Refunds are facts of their own: a second partial refund leaves the status where it is but
    is still counted and announced. A refund of ours (`known`, pending) was checked against
    what was left when it was reserved, and releases its reservation; one made elsewhere (the
    provider's dashboard) must fit in what is left now. A refund before its capture is not yet
    countable: the same rule as an amount other than ours (ask about a hint, else a person).
    """
    unfit_reason = f"{REFUND_MISMATCH}:{fact.refund_id}"
    if fact.refund_id is None or fact.amount is None:
        return _unfit(order, fact, now, REFUND_MISMATCH, unfit_reason)
    if known is not None and known.completed:
        return Outcome(None, Verdict.STALE, (line(
            order, fact, Verdict.STALE.value, to=order.status),))
    if order.status not in PAID and order.status is not S.REVERSED:
        return _unfit(order, fact, now, REFUND_MISMATCH, unfit_reason)
    if known is None and (fact.amount.currency != order.amount.currency
                          or order.refundable < fact.amount):
        return _unfit(order, fact, now, REFUND_MISMATCH, unfit_reason)
    zero = Money.zero(order.amount.currency)
    refunded = (order.refunded or zero) + fact.amount
    reserve = order.refund_reserved or zero
    if known is not None:
        reserve = reserve - known.amount
    # A refund on a REVERSED order is counted, and the order stays where it is.
    status = order.status_after_refunds(refunded) if order.status in PAID else order.status
    moved = order.evolve(now, status=status, refunded=refunded,
                         refund_reserved=reserve if reserve.minor else None)
    applied = Fact(target=status, source=fact.source, refund_id=fact.refund_id,
                   amount=fact.amount, capture_id=fact.capture_id)
    told = announcement_for(moved, applied) if status in (
        S.PARTIALLY_REFUNDED, S.REFUNDED) else None
    return Outcome(moved, Verdict.APPLY, (line(
        order, applied, "APPLY", to=status, refunded_total=refunded.to_decimal()),),
        (told,) if told is not None else ())


def _dispute(order: Order, fact: Dispute, now: datetime) -> Outcome:
    """An open dispute marks the order disputed (it stays so when resolved: it happened) and is
    announced once per dispute; a resolved one is a history line only."""
    moved = order.evolve(now, disputed=True) if fact.opened and not order.disputed else None
    note = Line(fact.source, "NOTE", order.status, order.status,
                {"dispute_id": fact.dispute_id, **fact.detail})
    told = (dispute_announcement(moved or order, fact.dispute_id),) if fact.opened else ()
    return Outcome(moved, Verdict.APPLY if moved else Verdict.STALE, (note,), told)


def _bookkeeping(order: Order, fact: AttemptOver | Created | Reserve | Release,
                 now: datetime) -> Outcome:
    """Changes of our own records that move no status."""
    same = order.status
    if isinstance(fact, AttemptOver):
        # Unless this attempt's decline already opened the next one (its feedback or a truth
        # fetch got here first): one decline, one new attempt.
        moved = (order.evolve(now, capture_attempt=order.capture_attempt + 1)
                 if fact.attempt == order.capture_attempt else None)
        return Outcome(moved, Verdict.APPLY if moved else Verdict.STALE,
                       (Line(fact.source, "NOTE", same, same, dict(fact.detail)),))
    if isinstance(fact, Created):
        moved = order.evolve(now, provider_order_id=fact.provider_order_id,
                             approve_url=fact.approve_url)
        return Outcome(moved, Verdict.APPLY, (Line(
            fact.source, "NOTE", same, same, {"provider_order_id": fact.provider_order_id}),))
    zero = Money.zero(fact.amount.currency)
    if isinstance(fact, Reserve):
        held = (order.refund_reserved or zero) + fact.amount
        return Outcome(order.evolve(now, refund_reserved=held), Verdict.APPLY, (Line(
            fact.source, "NOTE", same, same,
            {"refund_requested": fact.refund_id, "amount": fact.amount.to_decimal()}),))
    left = (order.refund_reserved or zero) - fact.amount
    return Outcome(order.evolve(now, refund_reserved=left if left.minor > 0 else None),
                   Verdict.APPLY)
