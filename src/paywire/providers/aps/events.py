"""APS feedback as webhook deliveries: `ApsWebhookVerifier` and `ApsEventParser`.

Both server-to-server channels (direct transaction feedback and notification feedback) post to
one endpoint, `POST /webhooks/aps`, and run through the same `WebhookIngest` as PayPal's events:

- The verifier reads the raw body (JSON, or form-encoded as a tolerance), checks the response
  signature over every received parameter in constant time (`FeedbackVerifier`) and names the
  delivery by the SHA-256 of its canonical signed parameters (`delivery_key`): APS sends no
  event id, and a redelivery repeats the same parameters. A body that is not feedback, or whose
  signature fails, is a `SignatureError` (recorded and answered 4xx).
- The parser turns the verified parameters into a `ProviderEvent` whose `event_id` is that
  delivery key (the inbox stores each delivery once) and whose fact is keyed as aps.md says: a
  refund's id is its fact key (fort id, command, amount, our maintenance reference) plus the
  merchant reference, so the same refund reported twice counts once and two equal partial
  refunds stay two. Uncertain, on-hold and duplicate-reference results carry no fact: the ingest
  queues a truth fetch (CHECK_STATUS) for the order. A code no rule covers flags the order for a
  person (`attention`). A declined payment is DENIED for its attempt only (`Fact.attempt`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from paywire.domain.errors import SignatureError, ValidationError
from paywire.domain.events import ProviderEvent
from paywire.domain.facts import Fact
from paywire.domain.order import OrderStatus
from paywire.ports import Clock, DeliveryMarks, VerifiedDelivery
from paywire.providers.aps.amounts import parse_merchant_reference
from paywire.providers.aps.answers import refund_id_of
from paywire.providers.aps.forms import FeedbackVerifier, parse_body
from paywire.providers.aps.mapping import (
    AUTHORIZATION,
    CAPTURE,
    PAYMENT_COMMANDS,
    PROVIDER,
    PURCHASE,
    REFUND,
    TOKENIZATION,
    VOID,
    Outcome,
)
from paywire.providers.aps.results import ApsResult, parse_result
from paywire.providers.aps.signature import delivery_key
from paywire.providers.marks import json_labels

S = OrderStatus
_NOT_FEEDBACK = ("the body is not APS feedback: the feedback URL is pointed at the wrong "
                 "sender, or a proxy rewrote the body")


def _content_type(headers: Mapping[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() == "content-type":
            return value
    return "application/json"


def _sniffed(body: bytes) -> str:
    """JSON when the body is a JSON object, form-encoded otherwise (the parser has no headers;
    it reads bytes the verifier already accepted)."""
    return ("application/json" if body.lstrip()[:1] == b"{"
            else "application/x-www-form-urlencoded")


class ApsWebhookVerifier:
    """`WebhookVerifier` for APS feedback (see the module doc)."""

    def __init__(self, verifier: FeedbackVerifier, clock: Clock) -> None:
        self.verifier = verifier
        self.clock = clock

    async def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedDelivery:
        """Parse the raw body and check its signature; `SignatureError` if refused."""
        try:
            params = parse_body(body, _content_type(headers))
        except ValidationError as exc:
            raise SignatureError(f"unreadable APS feedback: {exc.message}", check="body",
                                 likely_cause=_NOT_FEEDBACK) from None
        if "signature" not in params:
            raise SignatureError("APS feedback without a signature", check="signature",
                                 likely_cause=_NOT_FEEDBACK)
        feedback = self.verifier.verify(params)
        # The delivery key names the signed parameters; the body's hash rides along so that a
        # redelivery re-serialised differently is still one event (same key) without looking
        # like a different body under one transmission.
        digest = hashlib.sha256(body).hexdigest()[:16]
        return VerifiedDelivery(transmission_id=f"{feedback.delivery_key}:{digest}",
                                transmission_time=self.clock.now(),
                                webhook_id=f"aps:{self.verifier.merchant.merchant_identifier}")


class ApsEventParser:
    """`EventParser` for verified APS feedback (pure)."""

    event_name = "APS feedback"

    def parse(self, body: bytes) -> ProviderEvent:
        """The event a verified feedback body reports (ValidationError if unreadable)."""
        params = parse_body(body, _sniffed(body))
        return event_of(params)

    def marks(self, headers: Mapping[str, str], body: bytes) -> DeliveryMarks:
        """APS sends no transmission header and its event id is the hash of the signed
        parameters, so a refused delivery is recorded under its body's hash, and under the id
        and type a JSON body names itself by (the doctor's unsigned probe does)."""
        event_id, event_type = json_labels(body)
        return DeliveryMarks(event_id=event_id, event_type=event_type)


def event_of(params: Mapping[str, Any]) -> ProviderEvent:
    """The `ProviderEvent` verified feedback parameters report."""
    result = parse_result(params)
    key = delivery_key(params)
    event_type = f"{result.command or 'UNKNOWN'}.{result.response_code or 'none'}"
    located = parse_merchant_reference(result.merchant_reference or "")
    if located is None:
        # Not a reference paywire made: stored and acknowledged, nothing to act on.
        return ProviderEvent(provider=PROVIDER, event_id=key, event_type=event_type,
                             resource_kind="other", resource_id=None)
    order_id, attempt = located
    base: dict[str, Any] = {"provider": PROVIDER, "event_id": key, "event_type": event_type,
                            "order_id": order_id, "provider_order_id": order_id,
                            "resource_kind": "order", "resource_id": order_id,
                            "attempt": attempt}
    if result.outcome is Outcome.UNKNOWN:
        return ProviderEvent(**base, attention=f"aps_unmapped:{result.command}:"
                             f"{result.response_code}"[:120])
    if result.command == TOKENIZATION:
        # The buyer's card as a token (return page only): the server pays with it.
        token = result.token_name if result.outcome is Outcome.SUCCESS else None
        return ProviderEvent(**{**base, "resource_kind": "other"}, payment_token=token)
    fact = _fact(result, attempt)
    if fact is not None and fact.refund_id is not None:
        # A refund the order cannot take yet (its payment's feedback not in) is fetched as a
        # refund: CHECK_STATUS settles the payment, then the refund is counted.
        return ProviderEvent(**{**base, "resource_kind": "refund",
                                "resource_id": fact.refund_id}, fact=fact,
                             capture_id=fact.capture_id)
    if fact is not None:
        return ProviderEvent(**base, fact=fact, capture_id=fact.capture_id)
    if result.command in PAYMENT_COMMANDS and result.outcome in (
            Outcome.UNCERTAIN, Outcome.ON_HOLD, Outcome.DUPLICATE_REFERENCE):
        return ProviderEvent(**base)  # no fact: the ingest asks CHECK_STATUS
    # A refused maintenance call or invalid request: recorded on the order, nothing moves
    # (the call's own answer, to whoever made it, settles it).
    return ProviderEvent(**{**base, "resource_kind": "other"})


def _fact(result: ApsResult, attempt: int) -> Fact | None:
    cmd, outcome = result.command, result.outcome
    detail = {"response_code": result.response_code}
    if outcome is Outcome.SUCCESS:
        if cmd in (PURCHASE, CAPTURE):
            return Fact(S.COMPLETED, "webhook", capture_id=result.fort_id, amount=result.amount,
                        detail=detail)
        if cmd == AUTHORIZATION:
            return Fact(S.AUTHORIZED, "webhook", authorization_id=result.fort_id,
                        amount=result.amount, detail=detail)
        if cmd == VOID:
            return Fact(S.VOIDED, "webhook", authorization_id=result.fort_id, detail=detail)
        if cmd == REFUND and result.amount is not None:
            # paywire's refunds carry their refund id as the maintenance reference.
            detail["invoice_id"] = result.maintenance_reference or ""
            return Fact(S.REFUNDED, "webhook", refund_id=refund_id_of(result),
                        amount=result.amount, capture_id=result.fort_id, detail=detail)
        return None
    if cmd in PAYMENT_COMMANDS and outcome is Outcome.DECLINED:
        return Fact(S.DENIED, "webhook", reason=result.classification.reason[:200],
                    detail=detail, attempt=attempt)
    if cmd in PAYMENT_COMMANDS and outcome is Outcome.PENDING:
        return Fact(S.PENDING, "webhook", capture_id=result.fort_id
                    if cmd == PURCHASE else None, amount=result.amount, detail=detail)
    return None

