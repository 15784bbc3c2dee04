"""Provider operations: each mutating provider call, written with its idempotency key before the
call is made, so a retry after a crash repeats it under the same key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ProviderOperation:
    """A mutating provider call, written (with its idempotency key) before the call is made.

    `key` is what the provider sees (PayPal-Request-Id), derived from our own ids, so a retry
    after a crash repeats the call under the same key. `lease_until` marks a caller working on
    it; others wait for the outcome rather than call the provider a second time.
    """

    key: str
    order_id: str
    kind: str  # create | capture | authorize | refund | void | capture_authorization
    status: str  # pending | succeeded | failed
    created_at: datetime
    updated_at: datetime
    lease_until: datetime | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    trace_id: str | None = None  # the trace of the work that first wrote it (`domain.trace`)


class Operations(Protocol):
    """Put-if-absent, leased claim and outcome of provider operations."""

    async def put_operation(self, op: ProviderOperation) -> bool:
        """Insert unless the key exists; True if written."""
        ...

    async def get_operation(self, key: str) -> ProviderOperation | None:
        """The operation, or None."""
        ...

    async def claim_operation(self, key: str, now: datetime, lease_until: datetime) -> bool:
        """Take a pending operation whose lease has lapsed (or never was); True if taken."""
        ...

    async def finish_operation(self, key: str, status: str, result: dict[str, Any] | None,
                               error: dict[str, Any] | None, now: datetime) -> None:
        """Record the outcome (succeeded/failed) and release the lease."""
        ...
