"""The outbox: announcements for the shop, written in the same unit of work as the change they
announce, then delivered at least once.

Two sides, two protocols: `Announcements` is what a transition writes (put-if-absent on the
announcement's key, so a fact learned twice announces once); `Outbox` is what the delivery
worker, the queue consumer and the operator use (claims with a lease, outcomes, listings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from paywire.domain.facts import Announcement


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An announcement waiting for delivery; `id` is the stable message id the shop sees."""

    id: str
    key: str
    type: str
    order_id: str
    payload: dict[str, Any]
    created_at: datetime
    status: str = "pending"  # pending | queued (handed to a queue, e.g. SQS) | delivered | dead
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    # The trace of the work that wrote it (`domain.trace`): its delivery joins that trace and
    # the shop's callback carries it (`traceparent`).
    trace_id: str | None = None


class Announcements(Protocol):
    """Writing an announcement beside the change it announces."""

    async def add_announcement(self, announcement: Announcement, message_id: str,
                               now: datetime, trace_id: str | None = None) -> bool:
        """Put the announcement in the outbox (kept with `trace_id`) unless its key exists;
        True if written."""
        ...

    async def outbox_for_order(self, order_id: str) -> list[OutboxMessage]:
        """The order's outbox messages, oldest first."""
        ...


class Outbox(Protocol):
    """Delivering the outbox: leased claims, outcomes and listings."""

    async def claim_outbox(self, owner: str, now: datetime, lease_until: datetime,
                           limit: int) -> list[OutboxMessage]:
        """Claim up to `limit` pending messages due by `now` whose lease is free or lapsed,
        oldest first; each by a conditional update, so concurrent claimers never share one."""
        ...

    async def finish_outbox(self, message_id: str, owner: str, *, status: str, attempts: int,
                            next_attempt_at: datetime | None, last_error: str | None,
                            now: datetime) -> bool:
        """Record a delivery attempt if `owner` still holds the lease (status delivered,
        queued (handed to a queue whose consumer delivers it), pending (retry at
        `next_attempt_at`) or dead); releases the lease. True if recorded."""
        ...

    async def finish_outbox_many(self, message_ids: Sequence[str], owner: str, *, status: str,
                                 attempts: int, next_attempt_at: datetime | None,
                                 last_error: str | None, now: datetime) -> set[str]:
        """`finish_outbox` for several messages with one and the same outcome (the worker's
        group of deliveries that finished together): one statement where the backend allows.
        The ids recorded: those whose lease `owner` still held."""
        ...

    async def settle_outbox(self, message_id: str, *, status: str, last_error: str | None,
                            now: datetime) -> bool:
        """Record the outcome of a delivery made outside a lease — by a queue consumer (SQS)
        for a `queued` message: `delivered` (stamps `delivered_at`, counts the attempt) or
        `dead`. A message already delivered is left alone (the consumer's duplicate check).
        True if recorded."""
        ...

    async def get_outbox(self, message_id: str) -> OutboxMessage | None:
        """One message, or None."""
        ...

    async def list_outbox(self, *, status: str | None = None, limit: int = 50,
                          before: tuple[datetime, str] | None = None) -> list[OutboxMessage]:
        """Messages newest first; `before` = (created_at, id) (keyset)."""
        ...

    async def revive_outbox(self, message_id: str, now: datetime) -> bool:
        """Make a dead or queued message pending again (attempts reset, due now); True if
        revived."""
        ...

    async def outbox_counts(self) -> dict[str, int]:
        """How many messages are in each status."""
        ...
