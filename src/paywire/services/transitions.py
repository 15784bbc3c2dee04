"""Writing what a fact does to an order: the only caller of `update_order`.

`domain.transition` decides (state machine, declined attempts, the amount rule, refund totals,
disputes, attention); this module writes its outcome in the caller's unit of work: the new
version as a compare-and-set (a concurrent writer makes it raise ConflictError and the caller
retries from a fresh read), the history lines, and the announcements under fresh message ids
unless their fact is already announced. Every path (API answer, webhook, truth fetch,
reconciliation, operator, outbox) moves an order through `apply_fact`, so a fact does the same
thing whichever path learned it first.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from paywire.domain import trace
from paywire.domain.errors import NotFoundError
from paywire.domain.facts import Fact, Flag
from paywire.domain.order import Order, OrderStatus
from paywire.domain.transition import AnyFact, KnownRefund, Outcome, line, transition
from paywire.ports import History, HistoryEntry, OrderMoves


async def persist(uow: OrderMoves, before: Order, outcome: Outcome, now: datetime) -> Order:
    """Write `outcome` (computed from `before`) in `uow`; the order as it now stands."""
    trace_id = trace.current_id()
    if outcome.order is not None:
        await uow.update_order(outcome.order, before.version)
    for entry in outcome.lines:
        await uow.append_history(HistoryEntry(
            order_id=before.id, at=now, source=entry.source, verdict=entry.verdict,
            from_status=entry.from_status, to_status=entry.to_status, detail=entry.detail,
            trace_id=trace_id))
    for announcement in outcome.announcements:
        await uow.add_announcement(announcement, "msg_" + uuid.uuid4().hex, now,
                                   trace_id=trace_id)
    return outcome.after(before)


async def apply_fact(uow: OrderMoves, order: Order, fact: AnyFact, now: datetime, *,
                     known: KnownRefund | None = None) -> tuple[Order, Outcome]:
    """Apply `fact` to `order` in `uow`: the order as it now stands, and what the fact did."""
    outcome = transition(order, fact, now, known=known)
    return await persist(uow, order, outcome, now), outcome


async def apply_fact_as_read(uow: OrderMoves, order_id: str, read: Order | None, fact: AnyFact,
                             now: datetime) -> tuple[Order, Order, Outcome]:
    """Apply `fact` to the order as the caller read it in an earlier unit of work (`read`),
    without reading it again, when the outcome writes the order: that write is a compare-and-set
    on `read.version`, so if anyone wrote the order since, it raises ConflictError and the
    caller retries with `read=None` (a fresh read). An outcome that leaves the order as it is
    guards nothing, so it is decided on a fresh read. The order it was applied to, the order
    as it now stands, and what the fact did."""
    if read is not None:
        outcome = transition(read, fact, now)
        if outcome.order is not None:
            return read, await persist(uow, read, outcome, now), outcome
    before = await uow.get_order(order_id)
    if before is None:
        raise NotFoundError(f"no order {order_id!r}")
    after, outcome = await apply_fact(uow, before, fact, now)
    return before, after, outcome


async def flag_attention(uow: OrderMoves, order: Order, reason: str, now: datetime, *,
                         source: str, **detail: Any) -> Order:
    """Mark the order as needing a person, record why, and announce it once per reason."""
    flagged, _ = await apply_fact(uow, order, Flag(reason, source, detail), now)
    return flagged


async def record(uow: History, order: Order, fact: Fact, verdict: str, now: datetime,
                 to: OrderStatus | None = None, **detail: Any) -> None:
    """Append a history line for `fact` that moves nothing (a fact queued for the truth)."""
    entry = line(order, fact, verdict, to, **detail)
    await uow.append_history(HistoryEntry(
        order_id=order.id, at=now, source=entry.source, verdict=entry.verdict,
        from_status=entry.from_status, to_status=entry.to_status, detail=entry.detail,
        trace_id=trace.current_id()))
