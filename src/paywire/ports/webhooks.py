"""The webhook ports: checking a delivery's signature, and parsing its body into an event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from paywire.domain.events import ProviderEvent


@dataclass(frozen=True, slots=True)
class VerifiedDelivery:
    """A webhook delivery whose signature checked out, and what identifies it."""

    transmission_id: str
    transmission_time: datetime
    webhook_id: str


class WebhookVerifier(Protocol):
    """Checks a delivery against the raw bytes received, before anything is parsed.

    Raises `SignatureError` for a delivery that fails for good (forged, wrong webhook id,
    disallowed cert URL, expired chain, too old, malformed) and `ProviderError(kind="transient")`
    when the check could not be made (certificate host or postback unreachable).
    """

    async def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedDelivery:
        """Verify one delivery."""
        ...


@dataclass(frozen=True, slots=True)
class DeliveryMarks:
    """What a delivery says about itself before (or without) verification: untrusted labels for
    the rejection log, read the provider's way (its header names, its body's shape)."""

    transmission_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    cert_url: str | None = None


class EventParser(Protocol):
    """Turns a verified delivery body into a normalized event (pure; ValidationError if bad).

    The provider's wire knowledge stays here, so the ingest is the same for every provider:
    `event_name` names one delivery in messages ("a PayPal event"), `marks` reads the labels a
    refused delivery is recorded under.
    """

    event_name: str

    def parse(self, body: bytes) -> ProviderEvent:
        """Parse one event."""
        ...

    def marks(self, headers: Mapping[str, str], body: bytes) -> DeliveryMarks:
        """The labels a delivery carries (best effort, never trusted, never raises)."""
        ...
