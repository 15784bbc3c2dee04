"""A refund learned from the provider (webhook or truth fetch), counted once per refund id."""

from __future__ import annotations

import uuid
from datetime import datetime

from paywire.domain.facts import Fact
from paywire.domain.order import Order, OrderStatus, Verdict
from paywire.ports import Refund, WebhookUnitOfWork
from paywire.services.transitions import apply_refund, record

S = OrderStatus


async def apply_provider_refund(uow: WebhookUnitOfWork, order: Order, fact: Fact,
                                now: datetime) -> bool:
    """Count the provider refund `fact.refund_id` on `order` unless already counted.

    A refund paywire started (pending, with a reservation) is completed and its reservation
    released; a refund made elsewhere (PayPal's dashboard) is recorded as a new refund. Returns
    False when the refund does not fit what is left to refund: the caller asks the provider.
    """
    if fact.refund_id is None or fact.amount is None:
        return False
    known = await uow.find_refund_by_provider_id(fact.refund_id)
    if known is None:
        # Our own refund, before its API call came back: PayPal echoes the invoice id we sent
        # (our refund id), so the webhook can adopt it instead of counting it as a new refund.
        invoice = fact.detail.get("invoice_id")
        mine = await uow.get_refund(invoice) if isinstance(invoice, str) else None
        if mine is not None and mine.order_id == order.id:
            known = mine
    if known is not None and known.status == "completed":
        await record(uow, order, fact, Verdict.STALE.value, now, to=order.status)
        return True
    if order.status not in (S.COMPLETED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.REVERSED):
        return False
    if known is not None:
        await apply_refund(uow, order, fact, now, reserved=known.amount)
        await uow.update_refund(Refund(
            id=known.id, order_id=known.order_id, amount=known.amount, status="completed",
            operation_key=known.operation_key, created_at=known.created_at, updated_at=now,
            provider_refund_id=fact.refund_id, reason=known.reason))
        return True
    if fact.amount.currency != order.amount.currency or order.refundable < fact.amount:
        return False
    await apply_refund(uow, order, fact, now)
    await uow.insert_refund(Refund(
        id=f"ref_{uuid.uuid4().hex[:24]}", order_id=order.id, amount=fact.amount,
        status="completed", operation_key=f"provider:{fact.refund_id}", created_at=now,
        updated_at=now, provider_refund_id=fact.refund_id, reason="refunded at the provider"))
    return True

