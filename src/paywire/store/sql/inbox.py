"""The webhook inbox on SQL: put-if-absent on (provider, event id), and a keyset listing."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from paywire.ports import InboxEvent
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase, check_limit, insert_of, prebuilt
from paywire.store.sql.tables import inbox_events


@prebuilt
def _put(postgres: bool) -> sa.Executable:
    t = inbox_events
    return insert_of(t, postgres).on_conflict_do_nothing(index_elements=[t.c.provider,
                                                                          t.c.event_id])


_GET = sa.select(inbox_events).where(inbox_events.c.provider == sa.bindparam("b_provider"),
                                     inbox_events.c.event_id == sa.bindparam("b_event_id"))


class SqlInbox(SqlBase):
    """Storing, reading and listing inbox events."""

    async def put_inbox_event(self, event: InboxEvent) -> bool:
        """Store the event unless (provider, event_id) exists; True if written."""
        return await self._write(_put(self._postgres), rows.inbox_values(event)) == 1

    async def get_inbox_event(self, provider: str, event_id: str) -> InboxEvent | None:
        """The stored event, or None."""
        found = await self._select(_GET, {"b_provider": provider, "b_event_id": event_id})
        return rows.inbox_from(found[0]) if found else None

    async def list_inbox(self, *, limit: int = 50,
                         before: tuple[datetime, str] | None = None) -> list[InboxEvent]:
        """Stored events newest first (ties by event id); `before` = (received_at, event_id)
        of the last one seen (keyset)."""
        check_limit(limit)
        t = inbox_events
        stmt = sa.select(t)
        if before is not None:
            at = sa.bindparam(None, before[0], type_=t.c.received_at.type)
            stmt = stmt.where(sa.tuple_(t.c.received_at, t.c.event_id)
                              < sa.tuple_(at, sa.bindparam(None, before[1], type_=sa.String)))
        stmt = stmt.order_by(t.c.received_at.desc(), t.c.event_id.desc()).limit(limit)
        return [rows.inbox_from(row) for row in (await self._run(stmt)).mappings()]
