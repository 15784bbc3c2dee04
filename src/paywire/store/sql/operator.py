"""The dashboard's reads and logs on SQL: orders searched by an index walk of bounded length,
an order's provider calls and events, the audit log and the delivery attempts.

A search walks one index newest first — the needs-attention partial index, or
(status, created_at, id), or (provider, created_at, id), or (created_at, id) — bounded by the
creation-time range and the keyset cursor. The filters that index cannot answer (a second of
those three, the amount, the currency) are applied to at most `SCAN` rows of that walk; when
the walk was cut short, the page says where it stopped, so the next call resumes there and no
call reads more than `SCAN` rows however rare a match is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paywire.domain.order import Order
from paywire.ports import (
    AuditEntry,
    DeliveryAttempt,
    InboxEvent,
    OrderFilter,
    OrderPage,
    ProviderOperation,
)
from paywire.store.sql import rows
from paywire.store.sql.base import Row, check_limit
from paywire.store.sql.orders import SqlOrders
from paywire.store.sql.tables import (
    audit_log,
    delivery_attempts,
    inbox_events,
    orders,
    provider_operations,
)

# The most index entries one search call examines when filters remain after the index's own.
SCAN = 1000

_ATTEMPT = sa.insert(delivery_attempts)


def _residual(where: OrderFilter, row: Row, leading: str) -> bool:
    """Whether `row` passes the filters the walked index did not apply."""
    if leading != "status" and where.status is not None and row["status"] != str(where.status):
        return False
    if leading != "provider" and where.provider is not None and row["provider"] != where.provider:
        return False
    if leading != "attention" and where.needs_attention and row["needs_attention"] is None:
        return False
    if where.currency is not None and row["currency"] != where.currency:
        return False
    if where.min_minor is not None and row["amount_minor"] < where.min_minor:
        return False
    return where.max_minor is None or row["amount_minor"] <= where.max_minor


class SqlOperatorReads(SqlOrders):
    """Searched orders, an order's provider calls and events, the audit and delivery logs."""

    async def search_orders(self, where: OrderFilter, *, limit: int = 50,
                            before: tuple[datetime, str] | None = None) -> OrderPage:
        """Orders `where` keeps, newest first; at most `SCAN` index entries read per call."""
        check_limit(limit)
        o = orders
        stmt = sa.select(o.c.id, o.c.created_at, o.c.status, o.c.provider, o.c.needs_attention,
                         o.c.currency, o.c.amount_minor)
        if where.needs_attention:
            leading = "attention"
            stmt = stmt.where(o.c.needs_attention.isnot(None))
        elif where.status is not None:
            leading = "status"
            stmt = stmt.where(o.c.status == str(where.status))
        elif where.provider is not None:
            leading = "provider"
            stmt = stmt.where(o.c.provider == where.provider)
        else:
            leading = "time"
        if where.created_from is not None:
            stmt = stmt.where(o.c.created_at >= where.created_from)
        if where.created_to is not None:
            stmt = stmt.where(o.c.created_at < where.created_to)
        if before is not None:
            at = sa.bindparam(None, before[0], type_=o.c.created_at.type)
            stmt = stmt.where(sa.tuple_(o.c.created_at, o.c.id)
                              < sa.tuple_(at, sa.bindparam(None, before[1], type_=sa.String)))
        residual = (where.currency is not None or where.min_minor is not None
                    or where.max_minor is not None
                    or sum((where.needs_attention, where.status is not None,
                            where.provider is not None)) > 1)
        window = SCAN if residual else limit
        stmt = stmt.order_by(o.c.created_at.desc(), o.c.id.desc()).limit(window)
        walked = (await self._run(stmt)).mappings().all()
        kept = [r for r in walked if _residual(where, r, leading)][:limit]
        if len(kept) == limit:
            last = kept[-1]
        elif len(walked) == window:
            last = walked[-1]  # cut short: resume where the walk stopped
        else:
            last = None
        found = await self._by_ids([r["id"] for r in kept])
        return OrderPage(found, None if last is None else (last["created_at"], last["id"]))

    async def _by_ids(self, ids: Sequence[str]) -> list[Order]:
        """The orders `ids` names, in that order."""
        if not ids:
            return []
        got = {order.id: order for order in await self._orders(
            sa.select(orders).where(orders.c.id.in_(list(ids))))}
        return [got[i] for i in ids if i in got]

    async def operations_for_order(self, order_id: str) -> list[ProviderOperation]:
        """The provider calls made for the order, oldest first."""
        t = provider_operations
        result = await self._run(sa.select(t).where(t.c.order_id == order_id)
                                 .order_by(t.c.created_at, t.c.key))
        return [rows.operation_from(row) for row in result.mappings()]

    async def inbox_for_order(self, order_id: str) -> list[InboxEvent]:
        """The provider events stored for the order, oldest first."""
        t = inbox_events
        result = await self._run(sa.select(t).where(t.c.order_id == order_id)
                                 .order_by(t.c.received_at, t.c.event_id))
        return [rows.inbox_from(row) for row in result.mappings()]

    # --- the audit log ---------------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> None:
        """Append an entry (ConflictError if its id exists)."""
        await self._run(sa.insert(audit_log), {
            "id": entry.id, "at": entry.at, "actor": entry.actor, "action": entry.action,
            "order_id": entry.order_id, "outcome": entry.outcome,
            "detail": json.loads(json.dumps(entry.detail, default=str)),
            "trace_id": entry.trace_id})

    async def audit_for_order(self, order_id: str) -> list[AuditEntry]:
        """The order's audit entries, oldest first."""
        t = audit_log
        result = await self._run(sa.select(t).where(t.c.order_id == order_id)
                                 .order_by(t.c.at, t.c.id))
        return [_audit_from(row) for row in result.mappings()]

    async def list_audit(self, *, limit: int = 50,
                         before: tuple[datetime, str] | None = None) -> list[AuditEntry]:
        """Entries newest first; `before` = (at, id) (keyset)."""
        check_limit(limit)
        t = audit_log
        stmt = sa.select(t)
        if before is not None:
            at = sa.bindparam(None, before[0], type_=t.c.at.type)
            stmt = stmt.where(sa.tuple_(t.c.at, t.c.id)
                              < sa.tuple_(at, sa.bindparam(None, before[1], type_=sa.String)))
        stmt = stmt.order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)
        return [_audit_from(row) for row in (await self._run(stmt)).mappings()]

    # --- delivery attempts -----------------------------------------------------------------

    async def record_delivery_attempts(self, attempts: Sequence[DeliveryAttempt]) -> None:
        """Append the attempts (one statement)."""
        if attempts:
            await self._run(_ATTEMPT, [
                {"message_id": a.message_id, "order_id": a.order_id, "at": a.at,
                 "attempt": a.attempt, "outcome": a.outcome, "error": a.error,
                 "message_type": a.message_type, "trace_id": a.trace_id} for a in attempts])

    async def delivery_attempts(self, order_id: str) -> list[DeliveryAttempt]:
        """The attempts at the order's messages, oldest first."""
        t = delivery_attempts
        result = await self._run(sa.select(t).where(t.c.order_id == order_id)
                                 .order_by(t.c.at, t.c.id))
        return [DeliveryAttempt(message_id=r["message_id"], order_id=r["order_id"], at=r["at"],
                                attempt=r["attempt"], outcome=r["outcome"], error=r["error"],
                                message_type=r["message_type"], trace_id=r["trace_id"])
                for r in result.mappings()]


def _audit_from(row: Row) -> AuditEntry:
    detail: dict[str, Any] = dict(row["detail"] or {})
    return AuditEntry(id=row["id"], at=row["at"], actor=row["actor"], action=row["action"],
                      order_id=row["order_id"], outcome=row["outcome"], detail=detail,
                      trace_id=row["trace_id"])
