"""The same announcements as Django signals (paywire.contrib.django.signals), for the parts
of a shop that prefer receivers: sent in the same transaction, after FULFILMENT_CALLABLE."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver
from shop.models import Shipment

from paywire.contrib.django.signals import Announcement, order_refunded


@receiver(order_refunded)
def mark_refunded(sender: type, announcement: Announcement, **kwargs: Any) -> None:
    """A fully refunded order's shipment is marked refunded."""
    Shipment.objects.filter(paywire_order_id=announcement.order_id).update(status="refunded")
