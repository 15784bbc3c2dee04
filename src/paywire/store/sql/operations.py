"""Provider operations on SQL: put-if-absent on the key, a leased claim, the outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paywire.domain.errors import NotFoundError
from paywire.ports import ProviderOperation
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase
from paywire.store.sql.tables import provider_operations

OPERATION_STATUSES = frozenset({"pending", "succeeded", "failed"})


class SqlOperations(SqlBase):
    """Put-if-absent, leased claim and outcome of provider operations."""

    async def put_operation(self, op: ProviderOperation) -> bool:
        """Insert unless the key exists; True if written."""
        stmt = (self._insert(provider_operations).values(rows.operation_values(op))
                .on_conflict_do_nothing(index_elements=[provider_operations.c.key]))
        return (await self._run(stmt)).rowcount == 1

    async def get_operation(self, key: str) -> ProviderOperation | None:
        """The operation, or None."""
        result = await self._run(sa.select(provider_operations)
                                 .where(provider_operations.c.key == key))
        row = result.mappings().first()
        return rows.operation_from(row) if row is not None else None

    async def claim_operation(self, key: str, now: datetime, lease_until: datetime) -> bool:
        """Take a pending operation whose lease has lapsed (or never was); True if taken."""
        t = provider_operations
        stmt = (sa.update(t)
                .where(t.c.key == key, t.c.status == "pending",
                       sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now))
                .values(lease_until=lease_until, updated_at=now))
        return (await self._run(stmt)).rowcount == 1

    async def finish_operation(self, key: str, status: str, result: dict[str, Any] | None,
                               error: dict[str, Any] | None, now: datetime) -> None:
        """Record the outcome and release the lease (status "pending" just releases it)."""
        if status not in OPERATION_STATUSES:
            raise ValueError(f"operation status must be one of {sorted(OPERATION_STATUSES)}")
        t = provider_operations
        stmt = (sa.update(t).where(t.c.key == key)
                .values(status=status, result=result, error=error, updated_at=now,
                        lease_until=None))
        if (await self._run(stmt)).rowcount != 1:
            raise NotFoundError(f"no provider operation {key!r}")
