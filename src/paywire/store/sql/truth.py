"""The truth queue on SQL: put-if-absent (or re-open) per task id, leased claims, outcomes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from paywire.ports import TruthTask
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase, check_limit, insert_of, prebuilt
from paywire.store.sql.tables import truth_tasks

TRUTH_STATUSES = frozenset({"pending", "done", "failed"})
_CLOSED = ("done", "failed")


@prebuilt
def _enqueue(postgres: bool) -> sa.Executable:
    t = truth_tasks
    insert = insert_of(t, postgres)
    # One upsert whose update only happens on a closed row: a pending task (queued or leased by
    # a worker) is left exactly as it is, and two enqueuers cannot both "insert". A re-opened
    # task takes the new task's lease, if it comes leased (else none).
    return insert.on_conflict_do_update(
        index_elements=[t.c.id],
        set_={"status": "pending", "reason": insert.excluded.reason,
              "next_attempt_at": insert.excluded.next_attempt_at, "attempts": 0,
              "lease_owner": insert.excluded.lease_owner,
              "lease_until": insert.excluded.lease_until, "last_error": None,
              "order_id": sa.func.coalesce(insert.excluded.order_id, t.c.order_id)},
        # Spelled without IN: an expanding parameter would keep the upsert off SQLite's driver
        # path (`SqlBase._write`), which every delivery's confirmation takes.
        where=sa.or_(*(t.c.status == status for status in _CLOSED)))


_CLAIM_ONE = (sa.update(truth_tasks)
              .where(truth_tasks.c.id == sa.bindparam("b_id"), truth_tasks.c.status == "pending",
                     truth_tasks.c.next_attempt_at <= sa.bindparam("b_now"),
                     sa.or_(truth_tasks.c.lease_until.is_(None),
                            truth_tasks.c.lease_until < sa.bindparam("b_now")))
              .values(lease_owner=sa.bindparam("b_owner"),
                      lease_until=sa.bindparam("b_lease_until"))
              .returning(*truth_tasks.c))
# The SET clause is the columns named at execution (status, attempts, ...).
_FINISH = sa.update(truth_tasks).where(truth_tasks.c.id == sa.bindparam("b_id"),
                                       truth_tasks.c.lease_owner == sa.bindparam("b_owner"))


class SqlTruthQueue(SqlBase):
    """Queueing, leased claims, outcomes and listing of truth tasks."""

    async def enqueue_truth(self, task: TruthTask) -> bool:
        """Queue the task unless a pending one with its id exists; a done or failed one is
        re-opened (pending, this task's reason, due time and lease if any, no attempts, no
        error). True if queued or re-opened: then, leased, it is the task's owner's."""
        if task.status != "pending" or (task.lease_owner is None) != (task.lease_until is None):
            raise ValueError("enqueue a pending task, unleased or leased (an owner and an end)")
        return await self._write(_enqueue(self._postgres), rows.truth_values(task)) == 1

    async def claim_truth_tasks(self, owner: str, now: datetime, lease_until: datetime,
                                limit: int) -> list[TruthTask]:
        """Claim up to `limit` pending tasks due by `now` whose lease is free or lapsed, by due
        time; returns only the tasks this call won."""
        won = await self._claim_leased(truth_tasks, owner, now, lease_until, limit,
                                       truth_tasks.c.next_attempt_at)
        tasks = [rows.truth_from(row) for row in won]
        return sorted(tasks, key=lambda task: (task.next_attempt_at, task.id))

    async def claim_truth_task(self, task_id: str, owner: str, now: datetime,
                               lease_until: datetime) -> TruthTask | None:
        """Claim one pending task by id if it is due and its lease is free or lapsed; the task
        as leased, or None (taken, backing off, closed or absent)."""
        row = (await self._run(_CLAIM_ONE, {"b_id": task_id, "b_now": now, "b_owner": owner,
                                            "b_lease_until": lease_until})).mappings().first()
        return None if row is None else rows.truth_from(row)

    async def finish_truth_task(self, task_id: str, owner: str, *, status: str, attempts: int,
                                next_attempt_at: datetime, last_error: str | None,
                                now: datetime) -> bool:
        """Record an attempt's outcome and release the lease if `owner` still holds it.

        Ownership alone decides: an owner whose lease lapsed may still report while nobody has
        re-claimed the task (its answer is as good as a re-claimer's), and not after.
        """
        if status not in TRUTH_STATUSES:
            raise ValueError(f"truth task status must be one of {sorted(TRUTH_STATUSES)}")
        params = {"b_id": task_id, "b_owner": owner, "status": status, "attempts": attempts,
                  "next_attempt_at": next_attempt_at, "last_error": last_error,
                  "lease_owner": None, "lease_until": None}
        return await self._write(_FINISH, params) == 1

    async def list_truth_tasks(self, *, status: str | None = None,
                               limit: int = 50) -> list[TruthTask]:
        """Tasks by due time (ties by id), optionally of one status."""
        check_limit(limit)
        t = truth_tasks
        stmt = sa.select(t)
        if status is not None:
            stmt = stmt.where(t.c.status == status)
        stmt = stmt.order_by(t.c.next_attempt_at, t.c.id).limit(limit)
        return [rows.truth_from(row) for row in (await self._run(stmt)).mappings()]
