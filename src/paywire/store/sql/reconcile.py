"""Reconciliation bookkeeping on SQL: candidates are stale orders with no check state that is
not yet due (one query), then the states of those chosen (one more); the state is one upsert
or delete."""

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
        # An anti-join on the states still backing off (next check after `now`), not an outer
        # join on every state: states outlive the checks that wrote them (an order settled
        # other than by the reconciler keeps its own), so on PostgreSQL the outer join hashed
        # the whole table each pass; the ones not yet due are few, and indexed by due time.
        waiting = r.alias("waiting")
        stmt = (sa.select(o)
                .select_from(o.outerjoin(waiting, sa.and_(waiting.c.order_id == o.c.id,
                                                          waiting.c.next_check_at > now)))
                .where(stale, waiting.c.order_id.is_(None))
                .order_by(o.c.updated_at, o.c.id).limit(limit))
        found = (await self._run(stmt)).mappings().all()
        if not found:
            return []
        ids = [row["id"] for row in found]
        states = {row["order_id"]: rows.reconcile_from(row) for row in (await self._run(
            sa.select(r).where(r.c.order_id.in_(ids)))).mappings()}
        return list(zip(await self._with_lines(found), [states.get(i) for i in ids],
                        strict=True))

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

