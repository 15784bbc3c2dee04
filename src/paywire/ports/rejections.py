"""The rejection log: webhook deliveries refused for good, with why, for the operator to read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class WebhookRejection:
    """A delivery refused for good: recorded once per transmission id, with the explanation."""

    provider: str
    transmission_id: str
    received_at: datetime
    check: str
    reason: str
    likely_cause: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    cert_url: str | None = None
    body_sha256: str | None = None


class Rejections(Protocol):
    """Recording (bounded) and listing rejections."""

    async def record_rejection(self, rejection: WebhookRejection, max_rows: int) -> bool:
        """Record unless (provider, transmission_id) exists; keep at most `max_rows` (oldest
        go first). True if written."""
        ...

    async def list_rejections(self, *, limit: int = 50,
                              before: tuple[datetime, str] | None = None) -> list[WebhookRejection]:
        """Rejections newest first; `before` = (received_at, transmission_id) (keyset)."""
        ...
