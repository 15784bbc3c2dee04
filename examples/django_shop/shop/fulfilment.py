"""What the shop does with paywire's announcements (PAYWIRE["FULFILMENT_CALLABLE"]).

paywire calls `on_paywire` inside the shop's `transaction.atomic()`, after recording the
message id, so the shipment below is made exactly once per paid order even though paywire
delivers at least once; an exception rolls both back and paywire delivers again later.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from shop.models import Shipment


def on_paywire(message_id: str, type: str, payload: dict[str, Any]) -> None:
    """Ship a paid order."""
    if type == "order.completed":
        Shipment.objects.create(paywire_order_id=payload["order_id"],
                                amount=Decimal(str(payload["amount"])),
                                currency=payload["currency"])
