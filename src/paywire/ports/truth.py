"""The truth queue: "ask the provider" tasks for events that cannot be applied as they stand,
claimed with a lease by whoever fetches the provider's truth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TruthTask:
    """A queued "ask the provider": GET `kind`/`resource_id` and apply the answer.

    `id` is `<provider>:<kind>:<resource_id>`, so one resource is queued once however many
    ambiguous events point at it.
    """

    id: str
    provider: str
    kind: str  # order | capture | refund | authorization | dispute
    resource_id: str
    reason: str
    created_at: datetime
    next_attempt_at: datetime
    status: str = "pending"  # pending | done | failed
    attempts: int = 0
    order_id: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None


class TruthQueue(Protocol):
    """Queueing, leased claims, outcomes and listing of truth tasks."""

    async def enqueue_truth(self, task: TruthTask) -> bool:
        """Queue the task unless a pending one with its id exists (a done or failed one is
        re-opened with this task's reason and due time). True if queued or re-opened.

        The task is pending, and either not leased or leased already (`lease_owner` and
        `lease_until` both set): queued or re-opened leased, it is that owner's until the lease
        lapses, as if claimed at once, and then anyone's (the process that will run it at once,
        saving the claim, and whose crash the queue recovers from). When a pending task with its
        id exists, False and nothing changes, whoever holds it: the caller holds no lease and
        must not run the task without claiming it."""
        ...

    async def claim_truth_tasks(self, owner: str, now: datetime, lease_until: datetime,
                                limit: int) -> list[TruthTask]:
        """Claim up to `limit` pending tasks due by `now` whose lease is free or lapsed
        (conditional update per task: concurrent claimers never get the same task)."""
        ...

    async def claim_truth_task(self, task_id: str, owner: str, now: datetime,
                               lease_until: datetime) -> TruthTask | None:
        """Claim one pending task by id if it is due and its lease is free or lapsed (the
        in-process fast path of a task just queued); the task as leased, or None if taken,
        backing off, closed or absent."""
        ...

    async def finish_truth_task(self, task_id: str, owner: str, *, status: str, attempts: int,
                                next_attempt_at: datetime, last_error: str | None,
                                now: datetime) -> bool:
        """Record an attempt's outcome if `owner` still holds the lease; releases it."""
        ...

    async def list_truth_tasks(self, *, status: str | None = None,
                               limit: int = 50) -> list[TruthTask]:
        """Tasks by due time."""
        ...
