"""The toy provider's deliveries: an HMAC-SHA256 of the body under a shared secret in
`Toy-Signature`, a delivery id in `Toy-Delivery`, and a JSON body naming the order it pays."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime

from paywire.domain.errors import SignatureError, ValidationError
from paywire.domain.events import ProviderEvent
from paywire.domain.facts import Fact
from paywire.domain.money import Money
from paywire.domain.order import OrderStatus
from paywire.ports import DeliveryMarks, VerifiedDelivery

SIGNATURE = "Toy-Signature"
TRANSMISSION = "Toy-Delivery"


def sign(secret: str, body: bytes) -> str:
    """The signature the toy service sends with `body`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


class ToyVerifier:
    """`WebhookVerifier`: the body's HMAC under the shared secret, compared in constant time."""

    def __init__(self, secret: str, now: Callable[[], datetime]) -> None:
        self.secret = secret
        self.now = now

    async def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedDelivery:
        """Refuse (400) a delivery without a delivery id or with a wrong or missing signature."""
        transmission = _header(headers, TRANSMISSION)
        signature = _header(headers, SIGNATURE)
        if not transmission or not signature:
            raise SignatureError("the toy delivery is not signed", check="headers",
                                 likely_cause=f"{SIGNATURE} and {TRANSMISSION} are required",
                                 status=400)
        if not hmac.compare_digest(signature, sign(self.secret, body)):
            raise SignatureError("the toy signature does not match the body", check="signature",
                                 likely_cause="another secret (PAYWIRE_TOY_SECRET), or a "
                                              "rewritten body", status=400)
        return VerifiedDelivery(transmission_id=transmission, transmission_time=self.now(),
                                webhook_id="toy")


class ToyParser:
    """`EventParser`: `{"id", "event_type", "order_id", "capture_id", "amount": {"currency",
    "value"}}`; `payment.completed` completes the order, anything else is stored only."""

    event_name = "a toy event"

    def parse(self, body: bytes) -> ProviderEvent:
        """The event a verified body reports (ValidationError if it is not one)."""
        try:
            data = json.loads(body)
            event_id, event_type = str(data["id"]), str(data["event_type"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError("not a toy event", field="body") from exc
        if event_type != "payment.completed":
            return ProviderEvent(provider="toy", event_id=event_id, event_type=event_type,
                                 resource_kind="other", resource_id=None)
        amount = Money.parse(data["amount"]["value"], data["amount"]["currency"])
        capture_id = str(data["capture_id"])
        fact = Fact(OrderStatus.COMPLETED, "webhook", capture_id=capture_id, amount=amount)
        return ProviderEvent(provider="toy", event_id=event_id, event_type=event_type,
                             resource_kind="capture", resource_id=capture_id, fact=fact,
                             order_id=data.get("order_id"), capture_id=capture_id)

    def marks(self, headers: Mapping[str, str], body: bytes) -> DeliveryMarks:
        """The delivery id header and the body's own id and type, untrusted."""
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        labels = data if isinstance(data, dict) else {}
        return DeliveryMarks(transmission_id=_header(headers, TRANSMISSION),
                             event_id=str(labels["id"]) if "id" in labels else None,
                             event_type=str(labels.get("event_type") or "") or None)
