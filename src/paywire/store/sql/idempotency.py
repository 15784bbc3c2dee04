"""Client Idempotency-Keys on SQL: an upsert that only replaces an expired record.

A keyed checkout puts and answers its key beside the order's own writes, so these statements
are built once, with bind parameters (`base.py`'s hot-path rule)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paywire.domain.errors import NotFoundError
from paywire.ports import IdempotencyRecord
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase, insert_of, prebuilt
from paywire.store.sql.tables import idempotency_keys

_t = idempotency_keys


@prebuilt
def _put(postgres: bool) -> sa.Executable:
    """Insert, or replace a stored record only if it has expired by the new one's creation."""
    insert = insert_of(_t, postgres)
    replace = {c.name: insert.excluded[c.name] for c in _t.columns if not c.primary_key}
    return insert.on_conflict_do_update(index_elements=[_t.c.scope, _t.c.key], set_=replace,
                                        where=_t.c.expires_at <= insert.excluded.created_at)


_THIS = (_t.c.scope == sa.bindparam("b_scope"), _t.c.key == sa.bindparam("b_key"))
_GET = sa.select(_t).where(*_THIS, _t.c.expires_at > sa.bindparam("b_now"))
# The SET clauses are the columns the parameters name; the WHERE clauses' are `b_`-prefixed.
_LOCK = sa.update(_t).where(*_THIS, _t.c.status == "in_flight",
                            _t.c.expires_at > sa.bindparam("b_now"),
                            sa.or_(_t.c.locked_until.is_(None),
                                   _t.c.locked_until < sa.bindparam("b_now")))
_COMPLETE = sa.update(_t).where(*_THIS)
_DELETE = sa.delete(_t).where(*_THIS, _t.c.status == "in_flight")


class SqlIdempotencyKeys(SqlBase):
    """Put-if-absent, take-over, answer and forget of Idempotency-Key records."""

    async def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """Insert unless (scope, key) exists unexpired at `record.created_at`; True if written.

        An expired record is replaced in the same statement (an upsert whose update only
        happens when the stored row has expired), so two callers cannot both see "absent".
        """
        values = rows.idempotency_values(record)
        return (await self._run(_put(self._postgres), values)).rowcount == 1

    async def get_idempotency(self, scope: str, key: str,
                              now: datetime) -> IdempotencyRecord | None:
        """The record unless expired (an expired record reads as absent)."""
        result = await self._run(_GET, {"b_scope": scope, "b_key": key, "b_now": now})
        row = result.mappings().first()
        return rows.idempotency_from(row) if row is not None else None

    async def lock_idempotency(self, scope: str, key: str, now: datetime,
                               locked_until: datetime) -> bool:
        """Take over an unexpired in-flight record whose lock lapsed; True if taken."""
        params = {"locked_until": locked_until, "b_scope": scope, "b_key": key, "b_now": now}
        return (await self._run(_LOCK, params)).rowcount == 1

    async def complete_idempotency(self, scope: str, key: str, resource_id: str | None,
                                   status: int, body: dict[str, Any]) -> None:
        """Store the answer and mark the record done (NotFoundError if it is gone)."""
        params = {"status": "done", "resource_id": resource_id, "response_status": status,
                  "response_body": body, "locked_until": None, "b_scope": scope, "b_key": key}
        if (await self._run(_COMPLETE, params)).rowcount != 1:
            raise NotFoundError(f"no idempotency record {scope!r}/{key!r}")

    async def delete_idempotency(self, scope: str, key: str) -> None:
        """Forget an in-flight record; a done record (a stored answer) is kept."""
        await self._run(_DELETE, {"b_scope": scope, "b_key": key})
