"""Reconciliation bookkeeping on SQL: candidates are stale orders outer-joined with their
per-order check state (one query), and the state is one upsert or delete."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa

from paywire.domain.order import Order, OrderStatus
from paywire.ports import ReconcileState
from paywire.store.sql import rows
from paywire.store.sql.base import check_limit
from paywire.store.sql.orders import SqlOrders
from paywire.store.sql.tables import orders, reconcile_states

_STATE = "rs_"  # prefix of the reconcile_states columns in the candidates query


class SqlReconciliation(SqlOrders):
    """Candidates for a check (orders, hence a `SqlOrders`), and each order's check state."""

    async def reconcile_candidates(self, updated_before: Mapping[OrderStatus, datetime],
                                   now: datetime, limit: int
                                   ) -> list[tuple[Order, ReconcileState | None]]:
        """Orders in the given statuses last updated before that status's cut-off whose next
        check is due by `now` (or that were never checked), least recently updated first
        (ties by id), each with its state (None if never checked)."""
        check_limit(limit)
        if not updated_before:
            return []
        o, r = orders, reconcile_states
        stale = sa.or_(*(sa.and_(o.c.status == str(status), o.c.updated_at < cutoff)
                         for status, cutoff in updated_before.items()))
        stmt = (sa.select(o, *(c.label(_STATE + c.name) for c in r.c))
                .select_from(o.outerjoin(r, r.c.order_id == o.c.id))
                .where(stale, sa.or_(r.c.next_check_at.is_(None), r.c.next_check_at <= now))
                .order_by(o.c.updated_at, o.c.id).limit(limit))
        found = (await self._run(stmt)).mappings().all()
        states = [_state(row) for row in found]
        return list(zip(await self._with_lines(found), states, strict=True))

    async def save_reconcile_state(self, state: ReconcileState) -> None:
        """Insert or replace the order's reconciliation state (one upsert)."""
        t = reconcile_states
        insert = self._insert(t).values(rows.reconcile_values(state))
        replace = {c.name: insert.excluded[c.name] for c in t.columns if not c.primary_key}
        await self._run(insert.on_conflict_do_update(index_elements=[t.c.order_id],
                                                     set_=replace))

    async def clear_reconcile_state(self, order_id: str) -> None:
        """Forget the order's reconciliation state (nothing to do if there is none)."""
        t = reconcile_states
        await self._run(sa.delete(t).where(t.c.order_id == order_id))


def _state(row: sa.RowMapping) -> ReconcileState | None:
    """The reconcile_states half of a candidates row, or None where the join found none."""
    if row[_STATE + "order_id"] is None:
        return None
    return ReconcileState(order_id=row[_STATE + "order_id"], attempts=row[_STATE + "attempts"],
                          next_check_at=row[_STATE + "next_check_at"],
                          first_checked_at=row[_STATE + "first_checked_at"],
                          last_checked_at=row[_STATE + "last_checked_at"])
