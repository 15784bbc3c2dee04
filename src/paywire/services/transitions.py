"""`apply_transition`: the one way any path (API answer, webhook, reconciliation, operator)
moves an order — state change, history line and announcements in the caller's unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from paywire.domain.errors import ValidationError
from paywire.domain.facts import (
    Announcement,
    Fact,
    announcement_for,
    attention_announcement,
    dispute_announcement,
)
from paywire.domain.money import Money
from paywire.domain.order import Order, OrderStatus, Verdict, decide
from paywire.ports import HistoryEntry, UnitOfWork

S = OrderStatus


def _fields_for(order: Order, fact: Fact) -> dict[str, Any]:
    changes: dict[str, Any] = {"status": fact.target}
    if fact.capture_id:
        changes["capture_id"] = fact.capture_id
    if fact.authorization_id:
        changes["authorization_id"] = fact.authorization_id
    if fact.target in (S.COMPLETED, S.PENDING) and fact.amount is not None:
        changes["captured"] = fact.amount
    return changes


async def announce(uow: UnitOfWork, announcement: Announcement | None, now: datetime) -> bool:
    """Write an announcement under a fresh message id unless its fact is already announced."""
    if announcement is None:
        return False
    return await uow.add_announcement(announcement, "msg_" + uuid.uuid4().hex, now)


async def record(uow: UnitOfWork, order: Order, fact: Fact, verdict: str, now: datetime,
                 to: OrderStatus | None = None, **detail: Any) -> None:
    """Append a history line for `fact`."""
    info: dict[str, Any] = {k: v for k, v in (
        ("capture_id", fact.capture_id), ("refund_id", fact.refund_id),
        ("authorization_id", fact.authorization_id), ("dispute_id", fact.dispute_id),
        ("reason", fact.reason)) if v is not None}
    if fact.amount is not None:
        info["amount"] = fact.amount.to_decimal()
        info["currency"] = fact.amount.currency
    info.update(fact.detail)
    info.update(detail)
    await uow.append_history(HistoryEntry(order_id=order.id, at=now, source=fact.source,
                                          verdict=verdict, from_status=order.status,
                                          to_status=to or fact.target, detail=info))


async def apply_transition(uow: UnitOfWork, order: Order, fact: Fact,
                           now: datetime) -> tuple[Order, Verdict]:
    """Apply `fact` to `order` through the state machine, in `uow`.

    APPLY writes the new version (compare-and-set: a concurrent writer makes this raise
    ConflictError and the caller retries from a fresh read), a history line and the fact's
    announcement. STALE records the fact and changes nothing. CONFLICT records it and changes
    nothing: the caller fetches the provider's truth and applies that instead.
    """
    if fact.attempt is not None and fact.target is S.DENIED and (
            order.status in (S.CREATED, S.APPROVED) or fact.attempt != order.capture_attempt):
        return await _attempt_declined(uow, order, fact, now)
    verdict = decide(order.status, fact.target)
    if verdict is not Verdict.APPLY:
        await record(uow, order, fact, verdict.value, now)
        return order, verdict
    if fact.target in (S.COMPLETED, S.PENDING) and fact.amount is not None and (
            fact.amount != order.amount):
        # Invariant 1: a provider amount that differs from ours is never fulfilled.
        flagged = await flag_attention(uow, order, "amount_mismatch", now, source=fact.source,
                                       provider_amount=str(fact.amount),
                                       our_amount=str(order.amount))
        return flagged, Verdict.CONFLICT
    moved = order.evolve(now, **_fields_for(order, fact))
    await uow.update_order(moved, order.version)
    await record(uow, order, fact, verdict.value, now)
    await announce(uow, announcement_for(moved, fact), now)
    return moved, verdict


async def _attempt_declined(uow: UnitOfWork, order: Order, fact: Fact,
                            now: datetime) -> tuple[Order, Verdict]:
    # One card declined is not the order's end: the buyer may try another card under the next
    # attempt's reference. A decline of an earlier attempt changes nothing.
    if fact.attempt != order.capture_attempt:
        await record(uow, order, fact, Verdict.STALE.value, now, to=order.status,
                     attempt=fact.attempt, current_attempt=order.capture_attempt)
        return order, Verdict.STALE
    moved = order.evolve(now, capture_attempt=order.capture_attempt + 1)
    await uow.update_order(moved, order.version)
    await record(uow, order, fact, "NOTE", now, to=order.status, attempt=fact.attempt,
                 declined=True, next_attempt=moved.capture_attempt)
    return moved, Verdict.APPLY


async def apply_refund(uow: UnitOfWork, order: Order, fact: Fact, now: datetime,
                       *, reserved: Money | None = None) -> Order:
    """Count a completed refund (keyed by its refund id) and move to (PARTIALLY_)REFUNDED.

    Refunds are facts of their own: a second partial refund leaves the status where it is but
    is still counted and announced. `reserved` releases what the refund had reserved.
    """
    if fact.refund_id is None or fact.amount is None:
        raise ValidationError("a refund fact names its refund and amount", field="refund")
    zero = Money.zero(order.amount.currency)
    refunded = (order.refunded or zero) + fact.amount
    reserve = order.refund_reserved or zero
    if reserved is not None:
        reserve = reserve - reserved
    status = order.status_after_refunds(refunded)
    if order.status not in (S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED):
        status = order.status  # e.g. a refund fact on a REVERSED order: counted, no move
    moved = order.evolve(now, status=status, refunded=refunded,
                         refund_reserved=reserve if reserve.minor else None)
    await uow.update_order(moved, order.version)
    applied = Fact(target=status, source=fact.source, refund_id=fact.refund_id,
                   amount=fact.amount, capture_id=fact.capture_id)
    await record(uow, order, applied, "APPLY", now, to=status,
                 refunded_total=refunded.to_decimal())
    if status in (S.PARTIALLY_REFUNDED, S.REFUNDED):
        await announce(uow, announcement_for(moved, applied), now)
    return moved


async def flag_attention(uow: UnitOfWork, order: Order, reason: str, now: datetime, *,
                         source: str, **detail: Any) -> Order:
    """Mark the order as needing a person, record why, and announce it once per reason."""
    flagged = order.evolve(now, needs_attention=reason)
    await uow.update_order(flagged, order.version)
    await uow.append_history(HistoryEntry(order_id=order.id, at=now, source=source,
                                          verdict="NOTE", from_status=order.status,
                                          to_status=order.status,
                                          detail={"needs_attention": reason, **detail}))
    await announce(uow, attention_announcement(flagged, reason), now)
    return flagged


async def apply_dispute(uow: UnitOfWork, order: Order, dispute_id: str, now: datetime, *,
                        opened: bool, source: str, **detail: Any) -> Order:
    """Record a dispute on `order`: an open one marks it disputed and is announced once per
    dispute; a resolved one is a history line only."""
    if opened and not order.disputed:
        moved = order.evolve(now, disputed=True)
        await uow.update_order(moved, order.version)
        order = moved
    await uow.append_history(HistoryEntry(
        order_id=order.id, at=now, source=source, verdict="NOTE", from_status=order.status,
        to_status=order.status, detail={"dispute_id": dispute_id, **detail}))
    if opened:
        await announce(uow, dispute_announcement(order, dispute_id), now)
    return order
