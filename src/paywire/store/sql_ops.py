"""The SQL unit of work's operations half: outbox delivery (claim with a lease, finish, revive,
list, count), reconciliation bookkeeping (candidates, per-order check state, pending refunds)
and the inbox listing.

The same rules as `sql_uow` and `sql_webhooks`: a claim is a conditional `UPDATE ... RETURNING`
that re-checks every condition per row, as a DynamoDB backend's conditional update per item
would, and the rows returned say who won. On PostgreSQL the candidates are picked with
`FOR UPDATE SKIP LOCKED`, so concurrent claimers take disjoint rows rather than queue on the same
ones; those locks last only until the claim's unit of work commits, never across a delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa

from paywire.domain.order import Order, OrderStatus
from paywire.ports import InboxEvent, OutboxMessage, ReconcileState, Refund
from paywire.store import sql_rows as rows
from paywire.store.sql_tables import inbox_events, orders, outbox, reconcile_states, refunds
from paywire.store.sql_webhooks import SqlWebhookUnitOfWork, _check_limit

OUTBOX_STATUSES = ("pending", "queued", "delivered", "dead")
SETTLED_STATUSES = ("delivered", "dead")
REVIVABLE_STATUSES = ("dead", "queued")  # what `paywire outbox retry` sends again
_STATE = "rs_"  # prefix of the reconcile_states columns in the candidates query


class SqlOpsUnitOfWork(SqlWebhookUnitOfWork):
    """`SqlWebhookUnitOfWork` plus outbox delivery and reconciliation bookkeeping."""

    # --- outbox delivery -----------------------------------------------------------------------

    async def claim_outbox(self, owner: str, now: datetime, lease_until: datetime,
                           limit: int) -> list[OutboxMessage]:
        """Claim up to `limit` pending messages due by `now` whose lease is free or lapsed,
        oldest created first; returns only the messages this call won."""
        won = await self._claim_leased(outbox, owner, now, lease_until, limit,
                                       outbox.c.created_at)
        messages = [rows.outbox_from(row) for row in won]
        return sorted(messages, key=lambda message: (message.created_at, message.id))

    async def finish_outbox(self, message_id: str, owner: str, *, status: str, attempts: int,
                            next_attempt_at: datetime | None, last_error: str | None,
                            now: datetime) -> bool:
        """Record a delivery attempt and release the lease if `owner` still holds it.

        `delivered` stamps `delivered_at` with `now`; `pending` needs the retry time in
        `next_attempt_at`. Ownership alone decides, as for truth tasks: an owner whose lease
        lapsed may still report while nobody has re-claimed the message, and not after.
        """
        if status not in OUTBOX_STATUSES:
            raise ValueError(f"outbox status must be one of {list(OUTBOX_STATUSES)}")
        if status == "pending" and next_attempt_at is None:
            raise ValueError("a pending (retried) message needs next_attempt_at")
        t = outbox
        stmt = (sa.update(t).where(t.c.id == message_id, t.c.lease_owner == owner)
                .values(status=status, attempts=attempts, next_attempt_at=next_attempt_at,
                        last_error=last_error,
                        delivered_at=now if status == "delivered" else None,
                        lease_owner=None, lease_until=None))
        return (await self._run(stmt)).rowcount == 1

    async def settle_outbox(self, message_id: str, *, status: str, last_error: str | None,
                            now: datetime) -> bool:
        """Record a queue consumer's outcome (delivered or dead) unless already delivered."""
        if status not in SETTLED_STATUSES:
            raise ValueError(f"a settled outbox status must be one of {list(SETTLED_STATUSES)}")
        t = outbox
        stmt = (sa.update(t).where(t.c.id == message_id, t.c.status != "delivered")
                .values(status=status, attempts=t.c.attempts + 1, last_error=last_error,
                        next_attempt_at=None, lease_owner=None, lease_until=None,
                        delivered_at=now if status == "delivered" else None))
        return (await self._run(stmt)).rowcount == 1

    async def get_outbox(self, message_id: str) -> OutboxMessage | None:
        """One message, or None."""
        row = (await self._run(sa.select(outbox).where(outbox.c.id == message_id))
               ).mappings().first()
        return rows.outbox_from(row) if row is not None else None

    async def list_outbox(self, *, status: str | None = None, limit: int = 50,
                          before: tuple[datetime, str] | None = None) -> list[OutboxMessage]:
        """Messages newest first (ties by id), optionally of one status; `before` =
        (created_at, id) of the last one seen (keyset)."""
        _check_limit(limit)
        t = outbox
        stmt = sa.select(t)
        if status is not None:
            stmt = stmt.where(t.c.status == status)
        if before is not None:
            at = sa.bindparam(None, before[0], type_=t.c.created_at.type)
            stmt = stmt.where(sa.tuple_(t.c.created_at, t.c.id)
                              < sa.tuple_(at, sa.bindparam(None, before[1], type_=sa.String)))
        stmt = stmt.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        return [rows.outbox_from(row) for row in (await self._run(stmt)).mappings()]

    async def revive_outbox(self, message_id: str, now: datetime) -> bool:
        """Make a dead or queued message pending again (no attempts, due `now`, no lease); its
        last error stays for the operator to read. True if revived (False if absent or
        neither dead nor queued)."""
        t = outbox
        stmt = (sa.update(t).where(t.c.id == message_id, t.c.status.in_(REVIVABLE_STATUSES))
                .values(status="pending", attempts=0, next_attempt_at=now, lease_owner=None,
                        lease_until=None))
        return (await self._run(stmt)).rowcount == 1

    async def outbox_counts(self) -> dict[str, int]:
        """How many messages are in each status (every known status present, zero or not)."""
        t = outbox
        result = await self._run(sa.select(t.c.status, sa.func.count().label("n"))
                                 .group_by(t.c.status))
        counts = dict.fromkeys(OUTBOX_STATUSES, 0)
        counts.update({row["status"]: int(row["n"]) for row in result.mappings()})
        return counts

    # --- reconciliation ------------------------------------------------------------------------

    async def reconcile_candidates(self, updated_before: Mapping[OrderStatus, datetime],
                                   now: datetime, limit: int
                                   ) -> list[tuple[Order, ReconcileState | None]]:
        """Orders in the given statuses last updated before that status's cut-off whose next
        check is due by `now` (or that were never checked), least recently updated first
        (ties by id), each with its state (None if never checked)."""
        _check_limit(limit)
        if not updated_before:
            return []
        o, r = orders, reconcile_states
        stale = sa.or_(*(sa.and_(o.c.status == str(status), o.c.updated_at < cutoff)
                         for status, cutoff in updated_before.items()))
        stmt = (sa.select(o, *(c.label(_STATE + c.name) for c in r.c))
                .select_from(o.outerjoin(r, r.c.order_id == o.c.id))
                .where(stale, sa.or_(r.c.next_check_at.is_(None), r.c.next_check_at <= now))
                .order_by(o.c.updated_at, o.c.id).limit(limit))
        found = (await self._run(stmt)).mappings().all()
        states = [_state(row) for row in found]
        return list(zip(await self._with_lines(found), states, strict=True))

    async def save_reconcile_state(self, state: ReconcileState) -> None:
        """Insert or replace the order's reconciliation state (one upsert)."""
        t = reconcile_states
        insert = self._insert(t).values(rows.reconcile_values(state))
        replace = {c.name: insert.excluded[c.name] for c in t.columns if not c.primary_key}
        await self._run(insert.on_conflict_do_update(index_elements=[t.c.order_id],
                                                     set_=replace))

    async def clear_reconcile_state(self, order_id: str) -> None:
        """Forget the order's reconciliation state (nothing to do if there is none)."""
        t = reconcile_states
        await self._run(sa.delete(t).where(t.c.order_id == order_id))

    async def pending_refunds(self, updated_before: datetime, limit: int) -> list[Refund]:
        """Refunds still pending last updated before the cut-off, oldest update first."""
        _check_limit(limit)
        t = refunds
        stmt = (sa.select(t).where(t.c.status == "pending", t.c.updated_at < updated_before)
                .order_by(t.c.updated_at, t.c.id).limit(limit))
        return [rows.refund_from(row) for row in (await self._run(stmt)).mappings()]

    # --- inbox listing -------------------------------------------------------------------------

    async def list_inbox(self, *, limit: int = 50,
                         before: tuple[datetime, str] | None = None) -> list[InboxEvent]:
        """Stored events newest first (ties by event id); `before` = (received_at, event_id)
        of the last one seen (keyset)."""
        _check_limit(limit)
        t = inbox_events
        stmt = sa.select(t)
        if before is not None:
            at = sa.bindparam(None, before[0], type_=t.c.received_at.type)
            stmt = stmt.where(sa.tuple_(t.c.received_at, t.c.event_id)
                              < sa.tuple_(at, sa.bindparam(None, before[1], type_=sa.String)))
        stmt = stmt.order_by(t.c.received_at.desc(), t.c.event_id.desc()).limit(limit)
        return [rows.inbox_from(row) for row in (await self._run(stmt)).mappings()]


def _state(row: sa.RowMapping) -> ReconcileState | None:
    """The reconcile_states half of a candidates row, or None where the join found none."""
    if row[_STATE + "order_id"] is None:
        return None
    return ReconcileState(order_id=row[_STATE + "order_id"], attempts=row[_STATE + "attempts"],
                          next_check_at=row[_STATE + "next_check_at"],
                          first_checked_at=row[_STATE + "first_checked_at"],
                          last_checked_at=row[_STATE + "last_checked_at"])
