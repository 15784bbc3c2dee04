"""The health readings on SQL: counts and minimums over one index range each.

`outbox_due` walks `(status, next_attempt_at)` from the start to `now` (the backlog: what a
healthy worker keeps near zero); dead messages and pending truth tasks are a range of their
`status` indexes; flagged orders the partial index on `needs_attention IS NOT NULL` (0007);
stuck orders `(status, updated_at)`, the reconciler's own; webhooks the `received_at` indexes of
the inbox and the rejection log. None reads a row it does not count.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from paywire.store.sql.base import SqlBase
from paywire.store.sql.tables import inbox_events, orders, outbox, truth_tasks, webhook_rejections

_COUNT = sa.func.count().label("n")


class SqlHealth(SqlBase):
    """The health read model's counts."""

    async def outbox_due(self, now: datetime) -> tuple[int, datetime | None]:
        """Pending messages due by `now` with no live lease, and their earliest due time."""
        t = outbox
        at = sa.bindparam(None, now, type_=t.c.next_attempt_at.type)
        stmt = (sa.select(_COUNT, sa.func.min(t.c.next_attempt_at).label("first"))
                .where(t.c.status == "pending", t.c.next_attempt_at <= at,
                       sa.or_(t.c.lease_until.is_(None), t.c.lease_until < at)))
        row = (await self._run(stmt)).mappings().one()  # MIN() keeps the column's type
        return int(row["n"]), row["first"]

    async def outbox_dead_count(self) -> int:
        """Messages given up on."""
        return await self._count(sa.select(_COUNT).where(outbox.c.status == "dead"))

    async def truth_queue_depth(self) -> int:
        """Truth tasks still pending."""
        return await self._count(sa.select(_COUNT).where(truth_tasks.c.status == "pending"))

    async def needs_attention_count(self) -> int:
        """Orders flagged and not yet resolved."""
        return await self._count(sa.select(_COUNT).where(orders.c.needs_attention.is_not(None)))

    async def orders_in_status_since(self, status: str, updated_before: datetime) -> int:
        """Orders in `status` last updated before `updated_before`."""
        t = orders
        before = sa.bindparam(None, updated_before, type_=t.c.updated_at.type)
        return await self._count(sa.select(_COUNT).where(t.c.status == status,
                                                         t.c.updated_at < before))

    async def webhooks_received_since(self, since: datetime) -> int:
        """Inbox events stored at or after `since`."""
        t = inbox_events
        at = sa.bindparam(None, since, type_=t.c.received_at.type)
        return await self._count(sa.select(_COUNT).where(t.c.received_at >= at))

    async def webhook_rejections_since(self, since: datetime) -> dict[str, int]:
        """Rejections recorded at or after `since`, by check."""
        t = webhook_rejections
        at = sa.bindparam(None, since, type_=t.c.received_at.type)
        result = await self._run(sa.select(t.c.check, _COUNT).where(t.c.received_at >= at)
                                 .group_by(t.c.check))
        return {row["check"]: int(row["n"]) for row in result.mappings()}

    async def _count(self, stmt: sa.Select[int]) -> int:
        return int((await self._run(stmt)).scalar_one())
