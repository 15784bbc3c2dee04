"""The outbox on SQL: announcements written beside the change they announce, and their delivery
(claim with a lease, finish, settle, revive, list, count).

A claim is a conditional `UPDATE ... RETURNING` that re-checks every condition per row, as a
DynamoDB backend's conditional update per item would, and the rows returned say who won. On
PostgreSQL the candidates are picked with `FOR UPDATE SKIP LOCKED`, so concurrent claimers take
disjoint rows rather than queue on the same ones; those locks last only until the claim's unit
of work commits, never across a delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paywire.domain.facts import Announcement
from paywire.ports import OutboxMessage
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase, check_limit, insert_of, prebuilt
from paywire.store.sql.tables import outbox

OUTBOX_STATUSES = ("pending", "queued", "delivered", "dead")
SETTLED_STATUSES = ("delivered", "dead")
REVIVABLE_STATUSES = ("dead", "queued")  # what `paywire outbox retry` sends again


@prebuilt
def _add(postgres: bool) -> sa.Executable:
    return insert_of(outbox, postgres).on_conflict_do_nothing(index_elements=[outbox.c.key])


_CHUNK = 500  # ids per statement (well under SQLite's bound-parameter limit)


def _finished(status: str, attempts: int, next_attempt_at: datetime | None,
              last_error: str | None, now: datetime) -> dict[str, Any]:
    """The columns a finished attempt sets (ValueError for an outcome that cannot be)."""
    if status not in OUTBOX_STATUSES:
        raise ValueError(f"outbox status must be one of {list(OUTBOX_STATUSES)}")
    if status == "pending" and next_attempt_at is None:
        raise ValueError("a pending (retried) message needs next_attempt_at")
    return {"status": status, "attempts": attempts, "next_attempt_at": next_attempt_at,
            "last_error": last_error, "delivered_at": now if status == "delivered" else None,
            "lease_owner": None, "lease_until": None}


class SqlOutbox(SqlBase):
    """Announcements written beside their change, and their delivery."""

    async def add_announcement(self, announcement: Announcement, message_id: str,
                               now: datetime, trace_id: str | None = None) -> bool:
        """Put the announcement in the outbox unless its key exists; True if written."""
        values = rows.outbox_values(announcement, message_id, now, trace_id)
        return await self._write(_add(self._postgres), values) == 1

    async def outbox_for_order(self, order_id: str) -> list[OutboxMessage]:
        """The order's outbox messages, oldest first."""
        result = await self._run(sa.select(outbox).where(outbox.c.order_id == order_id)
                                 .order_by(outbox.c.created_at, outbox.c.id))
        return [rows.outbox_from(row) for row in result.mappings()]

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
        t = outbox
        stmt = (sa.update(t).where(t.c.id == message_id, t.c.lease_owner == owner)
                .values(_finished(status, attempts, next_attempt_at, last_error, now)))
        return (await self._run(stmt)).rowcount == 1

    async def finish_outbox_many(self, message_ids: Sequence[str], owner: str, *, status: str,
                                 attempts: int, next_attempt_at: datetime | None,
                                 last_error: str | None, now: datetime) -> set[str]:
        """`finish_outbox` for several messages with one outcome: one `UPDATE ... WHERE id IN
        (...) AND lease_owner = owner RETURNING id` per `_CHUNK` ids; the ids recorded."""
        t = outbox
        values = _finished(status, attempts, next_attempt_at, last_error, now)
        recorded: set[str] = set()
        for start in range(0, len(message_ids), _CHUNK):
            chunk = list(message_ids[start:start + _CHUNK])
            stmt = (sa.update(t).where(t.c.id.in_(chunk), t.c.lease_owner == owner)
                    .values(values).returning(t.c.id))
            recorded.update((await self._run(stmt)).scalars())
        return recorded

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
        check_limit(limit)
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
