"""The webhook inbox: each verified provider event stored once by (provider, event id), with its
exact bytes, in the same unit of work as the transition it causes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """A verified provider event, stored once by (provider, event_id) with its exact bytes."""

    provider: str
    event_id: str
    event_type: str
    received_at: datetime
    body: bytes
    transmission_id: str | None = None
    status: str = "applied"  # applied | queued (truth fetch) | ignored (type not acted on)
    order_id: str | None = None
    note: str | None = None


class Inbox(Protocol):
    """Storing, reading and listing inbox events."""

    async def put_inbox_event(self, event: InboxEvent) -> bool:
        """Store the event unless (provider, event_id) exists; True if written."""
        ...

    async def get_inbox_event(self, provider: str, event_id: str) -> InboxEvent | None:
        """The stored event, or None."""
        ...

    async def list_inbox(self, *, limit: int = 50,
                         before: tuple[datetime, str] | None = None) -> list[InboxEvent]:
        """Stored events newest first; `before` = (received_at, event_id) (keyset)."""
        ...
