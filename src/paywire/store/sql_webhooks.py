"""The SQL unit of work's webhook half: the inbox, the rejection log and the truth-fetch queue,
and the lookups webhook events need (an order by capture or authorization id, a refund by the
provider's id).

The same rules as `sql_uow`: put-if-absent is `INSERT ... ON CONFLICT`, a claim is a
conditional `UPDATE`, and the row count (or the rows returned) says who won; nothing reads a
row to decide whether to write it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paywire.domain.errors import ValidationError
from paywire.domain.order import Order
from paywire.ports import InboxEvent, Refund, TruthTask, WebhookRejection
from paywire.store import sql_rows as rows
from paywire.store.sql_tables import inbox_events, orders, refunds, truth_tasks, webhook_rejections
from paywire.store.sql_uow import SqlUnitOfWork

TRUTH_STATUSES = frozenset({"pending", "done", "failed"})
_CLOSED = ("done", "failed")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValidationError("limit must be at least 1", field="limit")


class SqlWebhookUnitOfWork(SqlUnitOfWork):
    """`SqlUnitOfWork` plus the webhook inbox, rejection log and truth-fetch queue."""

    # --- lookups by the provider's payment ids ------------------------------------------------

    async def find_order_by_capture_id(self, provider: str, capture_id: str) -> Order | None:
        """The order whose capture (or authorization) the provider knows by this id."""
        o = orders
        # Two disjuncts each spelled with the provider, and no ORDER BY / LIMIT: so SQLite uses
        # its multi-index OR (PostgreSQL a BitmapOr) over the (provider, capture_id) and
        # (provider, authorization_id) indexes; with them it would walk every provider row.
        stmt = sa.select(o).where(
            sa.or_(sa.and_(o.c.provider == provider, o.c.capture_id == capture_id),
                   sa.and_(o.c.provider == provider, o.c.authorization_id == capture_id)))
        found = await self._orders(stmt)
        # Provider payment ids are unique, so this is one order; should two ever claim an id,
        # the oldest answers, as it would from any backend.
        return min(found, key=lambda order: (order.created_at, order.id), default=None)

    async def find_refund_by_provider_id(self, provider_refund_id: str) -> Refund | None:
        """Our record of a provider refund, or None."""
        stmt = (sa.select(refunds).where(refunds.c.provider_refund_id == provider_refund_id)
                .order_by(refunds.c.created_at, refunds.c.id).limit(1))
        row = (await self._run(stmt)).mappings().first()
        return rows.refund_from(row) if row is not None else None

    # --- inbox ----------------------------------------------------------------------------------

    async def put_inbox_event(self, event: InboxEvent) -> bool:
        """Store the event unless (provider, event_id) exists; True if written."""
        t = inbox_events
        stmt = (self._insert(t).values(rows.inbox_values(event))
                .on_conflict_do_nothing(index_elements=[t.c.provider, t.c.event_id]))
        return (await self._run(stmt)).rowcount == 1

    async def get_inbox_event(self, provider: str, event_id: str) -> InboxEvent | None:
        """The stored event, or None."""
        t = inbox_events
        result = await self._run(sa.select(t).where(t.c.provider == provider,
                                                     t.c.event_id == event_id))
        row = result.mappings().first()
        return rows.inbox_from(row) if row is not None else None

    # --- rejection log ----------------------------------------------------------------------------

    async def record_rejection(self, rejection: WebhookRejection, max_rows: int) -> bool:
        """Record unless (provider, transmission_id) exists, then drop the oldest rows beyond
        `max_rows` (newest = latest `received_at`, ties by transmission id). True if written."""
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        t = webhook_rejections
        stmt = (self._insert(t).values(rows.rejection_values(rejection))
                .on_conflict_do_nothing(index_elements=[t.c.provider, t.c.transmission_id]))
        if (await self._run(stmt)).rowcount != 1:
            return False
        # One statement, walking the (received_at, transmission_id) index past the newest
        # `max_rows`. Bounded, not exact: on PostgreSQL two rejections recorded concurrently
        # each trim without seeing the other's uncommitted row, so the log may hold a row or
        # two beyond `max_rows` until the next rejection trims it. (SQLite writers are
        # serialized by BEGIN IMMEDIATE, so there it is exact.)
        beyond = (sa.select(t.c.provider, t.c.transmission_id)
                  .order_by(t.c.received_at.desc(), t.c.transmission_id.desc())
                  .offset(max_rows))
        await self._run(sa.delete(t).where(
            sa.tuple_(t.c.provider, t.c.transmission_id).in_(beyond)))
        return True

    async def list_rejections(self, *, limit: int = 50,
                              before: tuple[datetime, str] | None = None) -> list[WebhookRejection]:
        """Rejections newest first; `before` = (received_at, transmission_id) (keyset)."""
        _check_limit(limit)
        t = webhook_rejections
        stmt = sa.select(t)
        if before is not None:
            at = sa.bindparam(None, before[0], type_=t.c.received_at.type)
            stmt = stmt.where(sa.tuple_(t.c.received_at, t.c.transmission_id)
                              < sa.tuple_(at, sa.bindparam(None, before[1], type_=sa.String)))
        stmt = stmt.order_by(t.c.received_at.desc(), t.c.transmission_id.desc()).limit(limit)
        return [rows.rejection_from(row) for row in (await self._run(stmt)).mappings()]

    # --- truth-fetch queue ------------------------------------------------------------------------

    async def enqueue_truth(self, task: TruthTask) -> bool:
        """Queue the task unless a pending one with its id exists; a done or failed one is
        re-opened (pending, this task's reason and due time, no attempts, no lease, no error).
        True if queued or re-opened."""
        if task.status != "pending" or task.lease_owner is not None:
            raise ValueError("enqueue a pending task without a lease")
        t = truth_tasks
        insert = self._insert(t).values(rows.truth_values(task))
        # One upsert whose update only happens on a closed row: a pending task (queued or
        # leased by a worker) is left exactly as it is, and two enqueuers cannot both "insert".
        stmt = insert.on_conflict_do_update(
            index_elements=[t.c.id],
            set_={"status": "pending", "reason": insert.excluded.reason,
                  "next_attempt_at": insert.excluded.next_attempt_at, "attempts": 0,
                  "lease_owner": None, "lease_until": None, "last_error": None,
                  "order_id": sa.func.coalesce(insert.excluded.order_id, t.c.order_id)},
            where=t.c.status.in_(_CLOSED))
        return (await self._run(stmt)).rowcount == 1

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
        t = truth_tasks
        stmt = (sa.update(t).where(t.c.id == task_id, t.c.status == "pending",
                                   t.c.next_attempt_at <= now,
                                   sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now))
                .values(lease_owner=owner, lease_until=lease_until).returning(*t.c))
        row = (await self._run(stmt)).mappings().first()
        return None if row is None else rows.truth_from(row)

    async def _claim_leased(self, t: sa.Table, owner: str, now: datetime,
                            lease_until: datetime, limit: int,
                            first: sa.Column[Any]) -> list[sa.RowMapping]:
        """Lease up to `limit` pending, due rows of `t` whose lease is free or lapsed (oldest
        `first`); the rows this call won. Shared by the truth queue and the outbox."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        claimable = (t.c.status == "pending", t.c.next_attempt_at <= now,
                     sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now))
        candidates = (sa.select(t.c.id).where(*claimable).order_by(first, t.c.id).limit(limit))
        if self._postgres:
            # Concurrent claimers pick disjoint candidates instead of queueing on the same rows
            # (the locks last only until this claim commits, never across the provider call).
            candidates = candidates.with_for_update(skip_locked=True)
        ids = list((await self._run(candidates)).scalars())
        if not ids:
            return []
        # The claim itself re-checks every condition per row, as a DynamoDB backend's
        # conditional update per item would: a row another claimer took since the select (a
        # committed lease on SQLite; on PostgreSQL, a concurrent UPDATE re-evaluated after it
        # commits) is not updated and not returned.
        stmt = (sa.update(t).where(t.c.id.in_(ids), *claimable)
                .values(lease_owner=owner, lease_until=lease_until)
                .returning(*t.c))
        return list((await self._run(stmt)).mappings())

    async def finish_truth_task(self, task_id: str, owner: str, *, status: str, attempts: int,
                                next_attempt_at: datetime, last_error: str | None,
                                now: datetime) -> bool:
        """Record an attempt's outcome and release the lease if `owner` still holds it.

        Ownership alone decides: an owner whose lease lapsed may still report while nobody has
        re-claimed the task (its answer is as good as a re-claimer's), and not after.
        """
        if status not in TRUTH_STATUSES:
            raise ValueError(f"truth task status must be one of {sorted(TRUTH_STATUSES)}")
        t = truth_tasks
        stmt = (sa.update(t).where(t.c.id == task_id, t.c.lease_owner == owner)
                .values(status=status, attempts=attempts, next_attempt_at=next_attempt_at,
                        last_error=last_error, lease_owner=None, lease_until=None))
        return (await self._run(stmt)).rowcount == 1

    async def list_truth_tasks(self, *, status: str | None = None,
                               limit: int = 50) -> list[TruthTask]:
        """Tasks by due time (ties by id), optionally of one status."""
        _check_limit(limit)
        t = truth_tasks
        stmt = sa.select(t)
        if status is not None:
            stmt = stmt.where(t.c.status == status)
        stmt = stmt.order_by(t.c.next_attempt_at, t.c.id).limit(limit)
        return [rows.truth_from(row) for row in (await self._run(stmt)).mappings()]
