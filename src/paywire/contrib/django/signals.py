"""Django signals for each announcement, sent inside the shop's transaction.

`fulfilment.deliver` sends `announcement` for every message and then the signal of its type
(`order_completed` for `order.completed`, ...), each with `sender=Announcement` and
`announcement=` the message. Both are sent inside the `transaction.atomic()` that records the
message as processed, after the shop's `FULFILMENT_CALLABLE`: a receiver's changes commit with
it, once per message, and a receiver that raises rolls everything back, so the message is
delivered again later (at least once to the receivers, exactly once in effect). Work that must
wait for the commit (an e-mail) belongs in `transaction.on_commit`.

    from django.dispatch import receiver
    from paywire.contrib.django.signals import order_completed

    @receiver(order_completed)
    def ship(sender, announcement, **kwargs):
        Order.objects.filter(paywire_id=announcement.order_id).update(status="paid")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal


@dataclass(frozen=True)
class Announcement:
    """One message of paywire's outbox, as the shop receives it."""

    message_id: str  # stable across redeliveries: the dedupe key
    type: str  # "order.completed", ...
    order_id: str  # paywire's order id
    payload: dict[str, Any]  # the announcement's fields (amount, currency, capture_id, ...)


# Every announcement, whatever its type.
announcement = Signal()
order_approved = Signal()
order_authorized = Signal()
order_completed = Signal()
order_partially_refunded = Signal()
order_refunded = Signal()
order_reversed = Signal()
order_denied = Signal()
order_voided = Signal()
order_expired = Signal()
order_disputed = Signal()
order_needs_attention = Signal()

# The signal of each announcement type (a type without one gets only `announcement`).
BY_TYPE: dict[str, Signal] = {
    "order.approved": order_approved,
    "order.authorized": order_authorized,
    "order.completed": order_completed,
    "order.partially_refunded": order_partially_refunded,
    "order.refunded": order_refunded,
    "order.reversed": order_reversed,
    "order.denied": order_denied,
    "order.voided": order_voided,
    "order.expired": order_expired,
    "order.disputed": order_disputed,
    "order.needs_attention": order_needs_attention,
}


def send(message: Announcement) -> None:
    """Send `announcement`, then the message's own signal; a receiver's exception propagates."""
    announcement.send(sender=Announcement, announcement=message)
    specific = BY_TYPE.get(message.type)
    if specific is not None:
        specific.send(sender=Announcement, announcement=message)
