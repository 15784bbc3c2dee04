"""Client Idempotency-Keys on SQL: an upsert that only replaces an expired record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paywire.domain.errors import NotFoundError
from paywire.ports import IdempotencyRecord
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase
from paywire.store.sql.tables import idempotency_keys


class SqlIdempotencyKeys(SqlBase):
    """Put-if-absent, take-over, answer and forget of Idempotency-Key records."""

    async def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """Insert unless (scope, key) exists unexpired at `record.created_at`; True if written.

        An expired record is replaced in the same statement (an upsert whose update only
        happens when the stored row has expired), so two callers cannot both see "absent".
        """
        t = idempotency_keys
        insert = self._insert(t).values(rows.idempotency_values(record))
        replace = {c.name: insert.excluded[c.name] for c in t.columns if not c.primary_key}
        stmt = insert.on_conflict_do_update(
            index_elements=[t.c.scope, t.c.key], set_=replace,
            where=t.c.expires_at <= insert.excluded.created_at)
        return (await self._run(stmt)).rowcount == 1

    async def get_idempotency(self, scope: str, key: str,
                              now: datetime) -> IdempotencyRecord | None:
        """The record unless expired (an expired record reads as absent)."""
        t = idempotency_keys
        result = await self._run(sa.select(t).where(t.c.scope == scope, t.c.key == key,
                                                    t.c.expires_at > now))
        row = result.mappings().first()
        return rows.idempotency_from(row) if row is not None else None

    async def lock_idempotency(self, scope: str, key: str, now: datetime,
                               locked_until: datetime) -> bool:
        """Take over an unexpired in-flight record whose lock lapsed; True if taken."""
        t = idempotency_keys
        stmt = (sa.update(t)
                .where(t.c.scope == scope, t.c.key == key, t.c.status == "in_flight",
                       t.c.expires_at > now,
                       sa.or_(t.c.locked_until.is_(None), t.c.locked_until < now))
                .values(locked_until=locked_until))
        return (await self._run(stmt)).rowcount == 1

    async def complete_idempotency(self, scope: str, key: str, resource_id: str | None,
                                   status: int, body: dict[str, Any]) -> None:
        """Store the answer and mark the record done (NotFoundError if it is gone)."""
        t = idempotency_keys
        stmt = (sa.update(t).where(t.c.scope == scope, t.c.key == key)
                .values(status="done", resource_id=resource_id, response_status=status,
                        response_body=body, locked_until=None))
        if (await self._run(stmt)).rowcount != 1:
            raise NotFoundError(f"no idempotency record {scope!r}/{key!r}")

    async def delete_idempotency(self, scope: str, key: str) -> None:
        """Forget an in-flight record; a done record (a stored answer) is kept."""
        t = idempotency_keys
        await self._run(sa.delete(t).where(t.c.scope == scope, t.c.key == key,
                                           t.c.status == "in_flight"))
