"""The truth queue on DynamoDB: put-if-absent (or re-open) per task id; claims pick candidates
from the sparse due index and take each with a conditional UpdateItem."""

from __future__ import annotations

from datetime import datetime

from paywire.ports import (
    TruthTask,
)
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo import webhook_items as dw
from paywire.store.dynamo.base import DynamoUnit
from paywire.store.dynamo.items import Item

TRUTH_STATUSES = frozenset({"pending", "done", "failed"})
_CLOSED = ("done", "failed")


class DynamoTruthQueue(DynamoUnit):
    """Queueing, leased claims, outcomes and listing of truth tasks."""

    async def enqueue_truth(self, task: TruthTask) -> bool:
        """Queue the task unless a pending one with its id exists; a done or failed one is
        re-opened (pending, this task's reason, due time and lease if any, no attempts, no
        error). True if queued or re-opened: then, leased, it is the task's owner's (its due
        index key is the lease's end, as a claim writes it: `webhook_items.truth_indexes`)."""
        if task.status != "pending" or (task.lease_owner is None) != (task.lease_until is None):
            raise ValueError("enqueue a pending task, unleased or leased (an owner and an end)")
        item = dw.truth_item(task)
        key = di.truth_key(task.id)
        stored = await self._read(key)
        what = f"truth task {task.id}"
        if stored is None:
            self._create(item, what, dx.absent)
            return True
        if stored["status"] not in _CLOSED:
            return False
        old = dw.truth_from(stored)
        reopened = TruthTask(id=old.id, provider=old.provider, kind=old.kind,
                             resource_id=old.resource_id, reason=task.reason,
                             created_at=old.created_at, next_attempt_at=task.next_attempt_at,
                             order_id=task.order_id or old.order_id,
                             lease_owner=task.lease_owner, lease_until=task.lease_until)
        self._write(key, dw.truth_item(reopened), base=stored, what=what,
                    cond=dx.one_of("status", _CLOSED))
        return True

    async def claim_truth_tasks(self, owner: str, now: datetime, lease_until: datetime,
                                limit: int) -> list[TruthTask]:
        """Claim up to `limit` pending tasks due by `now` whose lease is free or lapsed, by due
        time; only the tasks this call won."""
        won = await self._claim("DUE#TRUTH", owner, now, lease_until, limit)
        tasks = [dw.truth_from(item) for item in won]
        return sorted(tasks, key=lambda task: (task.next_attempt_at, task.id))

    async def claim_truth_task(self, task_id: str, owner: str, now: datetime,
                               lease_until: datetime) -> TruthTask | None:
        """Claim one pending task by id if it is due and its lease is free or lapsed (one
        conditional update); the task as leased, or None (taken, backing off, closed or
        absent)."""
        self._check_open()
        await self._flush()
        until = di.ts(lease_until)
        key = di.truth_key(task_id)
        won = await self._table.update_if(
            key, dx.all_of(dx.exists, dx.compare("status", "=", "pending"),
                           dx.compare("next_attempt_at", "<=", di.ts(now)), dx.lease_free(now)),
            set_={"lease_owner": owner, "lease_until": until,
                  "dsk": f"{until}#{key[0].split('#', 1)[1]}"})
        return None if won is None else dw.truth_from(won)

    async def finish_truth_task(self, task_id: str, owner: str, *, status: str, attempts: int,
                                next_attempt_at: datetime, last_error: str | None,
                                now: datetime) -> bool:
        """Record an attempt's outcome and release the lease if `owner` still holds it
        (ownership alone decides, as in SQL: a lapsed owner may report until re-claimed)."""
        if status not in TRUTH_STATUSES:
            raise ValueError(f"truth task status must be one of {sorted(TRUTH_STATUSES)}")
        self._check_open()
        await self._flush()
        fields: Item = {"id": task_id, "status": status, "next_attempt_at": di.ts(next_attempt_at)}
        indexes = dw.truth_indexes(fields)
        done = await self._table.update_if(
            di.truth_key(task_id), dx.all_of(dx.exists, dx.compare("lease_owner", "=", owner)),
            set_={"status": status, "attempts": attempts, "last_error": last_error,
                  "next_attempt_at": fields["next_attempt_at"], **indexes},
            remove=["lease_owner", "lease_until", *(("dpk", "dsk") if status != "pending"
                                                    else ())])
        return done is not None

    async def list_truth_tasks(self, *, status: str | None = None,
                               limit: int = 50) -> list[TruthTask]:
        """Tasks by due time (ties by id), optionally of one status."""
        self._require_limit(limit)

        def accept(item: Item) -> bool:
            return item["kind"] == "truth" and (status is None or item["status"] == status)

        index, partition = ((di.BY_TIME, "TRUTH") if status is None
                            else (di.BY_STATUS, f"TRUTH#{status}"))
        found = await self._collect(index, partition, ascending=True, limit=limit, bound=None,
                                    kinds=("truth",), accept=accept)
        found.sort(key=lambda i: (i["next_attempt_at"], i["id"]))
        return [dw.truth_from(i) for i in found[:limit]]
