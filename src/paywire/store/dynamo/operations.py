"""Provider operations on DynamoDB: put-if-absent on the key, a leased claim, the outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from paywire.domain.errors import NotFoundError
from paywire.ports import (
    ProviderOperation,
)
from paywire.store.dynamo import expr as dx
from paywire.store.dynamo import items as di
from paywire.store.dynamo import records as dr
from paywire.store.dynamo.base import DynamoUnit

OPERATION_STATUSES = frozenset({"pending", "succeeded", "failed"})


class DynamoOperations(DynamoUnit):
    """Put-if-absent, leased claim and outcome of provider operations."""

    async def put_operation(self, op: ProviderOperation) -> bool:
        """Insert unless the key exists; True if written. As a unit's first write it is made
        at once (OperationRunner acts on the answer); see `dynamo` on immediate writes."""
        item = dr.operation_item(op)
        if await self._read(di.operation_key(op.key)) is not None:
            return False
        return await self._put_now_if_first(item, dx.absent, f"provider operation {op.key}")

    async def get_operation(self, key: str) -> ProviderOperation | None:
        """The operation, or None."""
        item = await self._read(di.operation_key(key))
        return dr.operation_from(item) if item is not None else None

    async def claim_operation(self, key: str, now: datetime, lease_until: datetime) -> bool:
        """Take a pending operation whose lease has lapsed (or never was); True if taken."""
        self._check_open()
        await self._flush()
        claimed = await self._table.update_if(
            di.operation_key(key),
            dx.all_of(dx.exists, dx.compare("status", "=", "pending"), dx.lease_free(now)),
            set_={"lease_until": di.ts(lease_until), "updated_at": di.ts(now)})
        return claimed is not None

    async def finish_operation(self, key: str, status: str, result: dict[str, Any] | None,
                               error: dict[str, Any] | None, now: datetime) -> None:
        """Record the outcome and release the lease (status "pending" just releases it)."""
        if status not in OPERATION_STATUSES:
            raise ValueError(f"operation status must be one of {sorted(OPERATION_STATUSES)}")
        stored = await self._read(di.operation_key(key))
        if stored is None:
            raise NotFoundError(f"no provider operation {key!r}")
        op = dr.operation_from(stored)
        done = ProviderOperation(key=op.key, order_id=op.order_id, kind=op.kind, status=status,
                                 created_at=op.created_at, updated_at=now, lease_until=None,
                                 result=result, error=error, trace_id=op.trace_id)
        self._write(di.operation_key(key), dr.operation_item(done), base=stored, cond=dx.exists,
                    what=f"provider operation {key}")
