"""Client idempotency keys: a request's Idempotency-Key, in flight and then its stored answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A client's Idempotency-Key: in flight until `locked_until`, then its stored answer."""

    scope: str  # caller + endpoint
    key: str
    request_hash: str
    status: str  # in_flight | done
    created_at: datetime
    expires_at: datetime
    locked_until: datetime | None = None
    resource_id: str | None = None
    response_status: int | None = None
    response_body: dict[str, Any] | None = None


class IdempotencyKeys(Protocol):
    """Put-if-absent, take-over, answer and forget of Idempotency-Key records."""

    async def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """Insert unless (scope, key) exists and has not expired; True if written."""
        ...

    async def get_idempotency(self, scope: str, key: str,
                              now: datetime) -> IdempotencyRecord | None:
        """The record unless expired (an expired record reads as absent)."""
        ...

    async def lock_idempotency(self, scope: str, key: str, now: datetime,
                               locked_until: datetime) -> bool:
        """Take over an in-flight record whose lock lapsed (its owner crashed); True if taken."""
        ...

    async def complete_idempotency(self, scope: str, key: str, resource_id: str | None,
                                   status: int, body: dict[str, Any]) -> None:
        """Store the answer and mark the record done."""
        ...

    async def delete_idempotency(self, scope: str, key: str) -> None:
        """Forget an in-flight record (its request failed before doing anything durable)."""
        ...
