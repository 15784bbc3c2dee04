"""The rejection log on SQL: put-if-absent per transmission, trimmed to a bound."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from paywire.ports import WebhookRejection
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase, check_limit
from paywire.store.sql.tables import webhook_rejections


class SqlRejections(SqlBase):
    """Recording (bounded) and listing rejections."""

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
        check_limit(limit)
        t = webhook_rejections
        stmt = sa.select(t)
        if before is not None:
            at = sa.bindparam(None, before[0], type_=t.c.received_at.type)
            stmt = stmt.where(sa.tuple_(t.c.received_at, t.c.transmission_id)
                              < sa.tuple_(at, sa.bindparam(None, before[1], type_=sa.String)))
        stmt = stmt.order_by(t.c.received_at.desc(), t.c.transmission_id.desc()).limit(limit)
        return [rows.rejection_from(row) for row in (await self._run(stmt)).mappings()]
