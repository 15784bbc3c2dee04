"""Refunds on SQL: one row each, found by id, order, provider id or pending age."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from paywire.domain.errors import ConflictError, NotFoundError
from paywire.ports import Refund
from paywire.store.sql import rows
from paywire.store.sql.base import SqlBase, check_limit
from paywire.store.sql.tables import refunds

_BY_PROVIDER_ID = (sa.select(refunds)
                   .where(refunds.c.provider_refund_id == sa.bindparam("b_provider_refund_id"))
                   .order_by(refunds.c.created_at, refunds.c.id).limit(1))


class SqlRefunds(SqlBase):
    """Refunds by id, by order, by the provider's refund id, and pending."""

    async def insert_refund(self, refund: Refund) -> None:
        """Insert a refund (ConflictError if the id exists)."""
        stmt = self._insert(refunds).values(rows.refund_values(refund)).on_conflict_do_nothing()
        if (await self._run(stmt)).rowcount != 1:
            raise ConflictError(f"refund {refund.id} already exists")

    async def update_refund(self, refund: Refund) -> None:
        """Write a refund's status, provider id, reason and amount (NotFoundError if absent)."""
        values = rows.refund_values(refund)
        for fixed in ("id", "order_id", "operation_key", "created_at"):
            del values[fixed]
        stmt = sa.update(refunds).where(refunds.c.id == refund.id).values(values)
        if (await self._run(stmt)).rowcount != 1:
            raise NotFoundError(f"no refund {refund.id!r}")

    async def get_refund(self, refund_id: str) -> Refund | None:
        """The refund, or None."""
        result = await self._run(sa.select(refunds).where(refunds.c.id == refund_id))
        row = result.mappings().first()
        return rows.refund_from(row) if row is not None else None

    async def refunds_for_order(self, order_id: str) -> list[Refund]:
        """The order's refunds, oldest first."""
        result = await self._run(sa.select(refunds).where(refunds.c.order_id == order_id)
                                 .order_by(refunds.c.created_at, refunds.c.id))
        return [rows.refund_from(row) for row in result.mappings()]

    async def find_refund_by_provider_id(self, provider_refund_id: str) -> Refund | None:
        """Our record of a provider refund, or None."""
        row = (await self._run(_BY_PROVIDER_ID, {"b_provider_refund_id": provider_refund_id})
               ).mappings().first()
        return rows.refund_from(row) if row is not None else None

    async def pending_refunds(self, updated_before: datetime, limit: int) -> list[Refund]:
        """Refunds still pending last updated before the cut-off, oldest update first."""
        check_limit(limit)
        t = refunds
        stmt = (sa.select(t).where(t.c.status == "pending", t.c.updated_at < updated_before)
                .order_by(t.c.updated_at, t.c.id).limit(limit))
        return [rows.refund_from(row) for row in (await self._run(stmt)).mappings()]
