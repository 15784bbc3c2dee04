"""A refund learned from the provider (its answer, a webhook, a truth fetch): looked up in our
refund records, counted by `domain.transition`, and the records kept in step."""

from __future__ import annotations

import uuid
from datetime import datetime

from paywire.domain.facts import Fact
from paywire.domain.order import Order, Verdict
from paywire.domain.transition import KnownRefund, Outcome
from paywire.ports import Refund, RefundMoves
from paywire.services.transitions import apply_fact


async def apply_provider_refund(uow: RefundMoves, order: Order, fact: Fact,
                                now: datetime) -> tuple[Order, Outcome]:
    """Count the provider refund `fact.refund_id` on `order` unless already counted.

    A refund paywire started (pending, with a reservation) is completed and its reservation
    released; a refund made elsewhere (PayPal's dashboard) is recorded as a new refund. What a
    refund that does not fit leads to (a truth fetch, a person) is the outcome's `ask` or
    `attention`.
    """
    known = None
    if fact.refund_id is not None:
        known = await uow.find_refund_by_provider_id(fact.refund_id)
        if known is None:
            # Our own refund, before its API call came back: PayPal echoes the invoice id we
            # sent (our refund id), so the webhook adopts it instead of counting a new refund.
            invoice = fact.detail.get("invoice_id")
            mine = await uow.get_refund(invoice) if isinstance(invoice, str) else None
            if mine is not None and mine.order_id == order.id:
                known = mine
    ledger = None if known is None else KnownRefund(known.amount, known.status == "completed")
    moved, outcome = await apply_fact(uow, order, fact, now, known=ledger)
    if outcome.verdict is not Verdict.APPLY or fact.refund_id is None or fact.amount is None:
        return moved, outcome
    if known is not None:
        await uow.update_refund(Refund(
            id=known.id, order_id=known.order_id, amount=known.amount, status="completed",
            operation_key=known.operation_key, created_at=known.created_at, updated_at=now,
            provider_refund_id=fact.refund_id, reason=known.reason))
    else:
        await uow.insert_refund(Refund(
            id=f"ref_{uuid.uuid4().hex[:24]}", order_id=order.id, amount=fact.amount,
            status="completed", operation_key=f"provider:{fact.refund_id}", created_at=now,
            updated_at=now, provider_refund_id=fact.refund_id,
            reason="refunded at the provider"))
    return moved, outcome
