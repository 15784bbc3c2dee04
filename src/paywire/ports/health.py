"""The health readings: the few counts an operator's health strip and the metrics' gauges show,
each read from an index so they stay fast at a million orders.

Every method is a count or an extreme over one index range (no table scan, no read of every
row): how many outbox messages wait past their due time and since when, how many are dead, how
deep the truth queue is, how many orders need attention or sit in a status longer than allowed,
and how many webhook deliveries were stored or refused lately. A reading, not a promise: each
one sees what was committed when it ran (read them through `snapshot()`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class HealthReadings(Protocol):
    """Counts for the health read model (`paywire.services.health`)."""

    async def outbox_due(self, now: datetime) -> tuple[int, datetime | None]:
        """Pending messages due by `now` and not held by a live lease (what the outbox worker
        should be delivering), and the earliest due time among them (None: none due)."""
        ...

    async def outbox_dead_count(self) -> int:
        """Messages given up on (`dead`), kept for `paywire outbox retry`."""
        ...

    async def truth_queue_depth(self) -> int:
        """Truth tasks still pending (due or waiting for their retry time)."""
        ...

    async def needs_attention_count(self) -> int:
        """Orders flagged needs-attention and not yet resolved."""
        ...

    async def orders_in_status_since(self, status: str, updated_before: datetime) -> int:
        """Orders in `status` last updated before `updated_before` (stuck ones, when the cut-off
        is now minus the status's maximum age)."""
        ...

    async def webhooks_received_since(self, since: datetime) -> int:
        """Webhook events first stored in the inbox at or after `since` (duplicates of a stored
        event are not stored again, so not counted)."""
        ...

    async def webhook_rejections_since(self, since: datetime) -> dict[str, int]:
        """Deliveries refused for good at or after `since`, by the check that failed (the
        rejection log keeps one row per transmission, trimmed to its newest rows)."""
        ...
