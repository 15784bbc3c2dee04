"""Provider webhook events, normalized: what happened, and how to find our order."""

from __future__ import annotations

from dataclasses import dataclass, field

from paywire.domain.facts import Fact


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One provider event, stripped of wire format.

    `fact` is None for event types paywire stores and acknowledges without acting on. The
    locators are whatever the event carries that can lead to our order: our own id (PayPal's
    `custom_id`), the provider's order id, a capture id (a refund's `up` link, a dispute's
    transaction). `resource_kind`/`resource_id` name what a truth fetch would GET.
    """

    provider: str
    event_id: str
    event_type: str
    resource_kind: str  # order | capture | refund | authorization | dispute | other
    resource_id: str | None
    fact: Fact | None = None
    order_id: str | None = None
    provider_order_id: str | None = None
    capture_id: str | None = None
    dispute_id: str | None = None
    # For a dispute event: whether it reports the dispute open (created or updated) rather than
    # resolved; the parser knows how its provider names that.
    dispute_open: bool = False
    # Set when no rule covers what the event reports (a response code the provider should not
    # answer): the order is flagged for a person, nothing is guessed.
    attention: str | None = None
    # A payment token the buyer's tokenization produced (APS's tokenization result on the
    # return page): the server pays with it; never stored.
    payment_token: str | None = field(default=None, repr=False)
    # The payment attempt the event is about (providers with a reference per attempt).
    attempt: int | None = None
