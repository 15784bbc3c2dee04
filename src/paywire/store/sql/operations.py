"""Provider operations on SQL: put-if-absent on the key, a leased claim, the outcome.

Every checkout call claims a key and finishes it, so these statements are built once, with
bind parameters (`base.py`'s hot-path rule)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paywire.domain.errors import NotFoundError
from paywire.ports import ProviderOperation
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase, insert_of, prebuilt
from paywire.store.sql.tables import provider_operations

OPERATION_STATUSES = frozenset({"pending", "succeeded", "failed"})

_t = provider_operations


@prebuilt
def _put(postgres: bool) -> sa.Executable:
    return insert_of(_t, postgres).on_conflict_do_nothing(index_elements=[_t.c.key])


_GET = sa.select(_t).where(_t.c.key == sa.bindparam("b_key"))
# The SET clauses are the columns the parameters name (`lease_until`, `updated_at`...); the
# WHERE clauses' own parameters are `b_`-prefixed.
_CLAIM = sa.update(_t).where(_t.c.key == sa.bindparam("b_key"), _t.c.status == "pending",
                             sa.or_(_t.c.lease_until.is_(None),
                                    _t.c.lease_until < sa.bindparam("b_now")))
_FINISH = sa.update(_t).where(_t.c.key == sa.bindparam("b_key"))


class SqlOperations(SqlBase):
    """Put-if-absent, leased claim and outcome of provider operations."""

    async def put_operation(self, op: ProviderOperation) -> bool:
        """Insert unless the key exists; True if written."""
        values = rows.operation_values(op)
        return await self._write(_put(self._postgres), values) == 1

    async def get_operation(self, key: str) -> ProviderOperation | None:
        """The operation, or None."""
        result = await self._run(_GET, {"b_key": key})
        row = result.mappings().first()
        return rows.operation_from(row) if row is not None else None

    async def claim_operation(self, key: str, now: datetime, lease_until: datetime) -> bool:
        """Take a pending operation whose lease has lapsed (or never was); True if taken."""
        params = {"lease_until": lease_until, "updated_at": now, "b_key": key, "b_now": now}
        return await self._write(_CLAIM, params) == 1

    async def finish_operation(self, key: str, status: str, result: dict[str, Any] | None,
                               error: dict[str, Any] | None, now: datetime) -> None:
        """Record the outcome and release the lease (status "pending" just releases it)."""
        if status not in OPERATION_STATUSES:
            raise ValueError(f"operation status must be one of {sorted(OPERATION_STATUSES)}")
        params = {"status": status, "result": result, "error": error, "updated_at": now,
                  "lease_until": None, "b_key": key}
        if await self._write(_FINISH, params) != 1:
            raise NotFoundError(f"no provider operation {key!r}")
