"""Orders on SQL: a row per order, its lines in `order_lines`, updates compared-and-set on
`version`. One order is read with its lines in one query (a LEFT JOIN: the webhook path reads
two or three orders a delivery); a page of orders loads their lines in one more query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paywire.domain.errors import ConflictError, ValidationError
from paywire.domain.order import Order, OrderStatus
from paywire.store.sql import rows
from paywire.store.sql.base import Row, SqlBase, insert_of, prebuilt
from paywire.store.sql.tables import order_lines, orders

_LINE = {c.name: f"line_{c.name}" for c in order_lines.c if c.name != "order_id"}


def _joined(*where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Orders matching `where`, a row per line (one row with NULL lines for an order without
    any). No ORDER BY: lines are put in order in Python, so SQLite keeps its multi-index OR."""
    lines = [order_lines.c[name].label(label) for name, label in _LINE.items()]
    return (sa.select(orders, *lines)
            .select_from(orders.outerjoin(order_lines, order_lines.c.order_id == orders.c.id))
            .where(*where))


_BY_ID = _joined(orders.c.id == sa.bindparam("b_id"))
_BY_PROVIDER_ID = _joined(orders.c.provider == sa.bindparam("b_provider"),
                          orders.c.provider_order_id == sa.bindparam("b_provider_order_id"))
# Two disjuncts each spelled with the provider, and no ORDER BY / LIMIT: so SQLite uses its
# multi-index OR (PostgreSQL a BitmapOr) over the (provider, capture_id) and (provider,
# authorization_id) indexes; with them it would walk every provider row.
_BY_CAPTURE_ID = _joined(sa.or_(
    sa.and_(orders.c.provider == sa.bindparam("b_provider"),
            orders.c.capture_id == sa.bindparam("b_ref")),
    sa.and_(orders.c.provider == sa.bindparam("b_provider"),
            orders.c.authorization_id == sa.bindparam("b_ref"))))
_UPDATE = sa.update(orders).where(orders.c.id == sa.bindparam("b_id"),
                                  orders.c.version == sa.bindparam("b_version"))
_INSERT_LINES = sa.insert(order_lines)


@prebuilt
def _insert_order(postgres: bool) -> sa.Executable:
    """A new order's row; ON CONFLICT on any unique column (the id or the provider's id)."""
    return insert_of(orders, postgres).on_conflict_do_nothing()


class SqlOrders(SqlBase):
    """Orders by id, by the provider's ids, and newest first."""

    async def get_order(self, order_id: str) -> Order | None:
        """The order, or None."""
        found = await self._joined(_BY_ID, {"b_id": order_id})
        return found[0] if found else None

    async def find_order_by_provider_id(self, provider: str,
                                        provider_order_id: str) -> Order | None:
        """The order the provider knows by `provider_order_id`, or None."""
        found = await self._joined(_BY_PROVIDER_ID, {
            "b_provider": provider, "b_provider_order_id": provider_order_id})
        return found[0] if found else None

    async def find_order_by_capture_id(self, provider: str, capture_id: str) -> Order | None:
        """The order whose capture (or authorization) the provider knows by this id."""
        found = await self._joined(_BY_CAPTURE_ID, {"b_provider": provider, "b_ref": capture_id})
        # Provider payment ids are unique, so this is one order; should two ever claim an id,
        # the oldest answers, as it would from any backend.
        return min(found, key=lambda order: (order.created_at, order.id), default=None)

    async def insert_order(self, order: Order) -> None:
        """Insert a new order with its lines (ConflictError if the id or provider id exists)."""
        stmt = _insert_order(self._postgres)
        if await self._write(stmt, rows.order_values(order)) != 1:
            raise ConflictError(f"order {order.id} (or its provider order id) already exists")
        await self._write(_INSERT_LINES, rows.line_values(order))

    async def update_order(self, order: Order, expected_version: int) -> None:
        """Write `order` if the stored version is still `expected_version`, else ConflictError."""
        if order.version != expected_version + 1:
            raise ValueError(f"order version {order.version} must be expected_version + 1 "
                             f"({expected_version + 1})")
        values = rows.order_values(order)
        del values["id"], values["created_at"]  # identity and creation time never change
        # The SET clause is the columns `values` names; the WHERE clause's own parameters.
        params = {**values, "b_id": order.id, "b_version": expected_version}
        if await self._write(_UPDATE, params) != 1:
            raise ConflictError(f"order {order.id} is no longer at version {expected_version}",
                                details={"order_id": order.id,
                                         "expected_version": expected_version})

    async def list_orders(self, *, status: OrderStatus | None = None, limit: int = 50,
                          before: tuple[datetime, str] | None = None) -> list[Order]:
        """Orders newest first; `before` = (created_at, id) of the last one seen (keyset)."""
        if limit < 1:
            raise ValidationError("limit must be at least 1", field="limit")
        stmt = sa.select(orders)
        if status is not None:
            stmt = stmt.where(orders.c.status == str(status))
        if before is not None:
            # A row-value comparison, which both dialects answer from the (created_at, id) index.
            at = sa.bindparam(None, before[0], type_=orders.c.created_at.type)
            stmt = stmt.where(sa.tuple_(orders.c.created_at, orders.c.id)
                              < sa.tuple_(at, sa.bindparam(None, before[1], type_=sa.String)))
        stmt = stmt.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
        return await self._orders(stmt)

    async def _orders(self, stmt: sa.Select[Any]) -> list[Order]:
        """Orders selected by `stmt`, in its order, each with its lines (one query for all)."""
        return await self._with_lines((await self._run(stmt)).mappings().all())

    async def _joined(self, stmt: sa.Select[Any], params: dict[str, Any]) -> list[Order]:
        """Orders from a `_joined` statement, in first-seen order, each with its lines."""
        heads: dict[str, Row] = {}
        lines: dict[str, list[dict[str, Any]]] = {}
        for row in await self._select(stmt, params):
            order_id = row["id"]
            heads.setdefault(order_id, row)
            if row["line_position"] is not None:
                lines.setdefault(order_id, []).append(
                    {name: row[label] for name, label in _LINE.items()})
        return [rows.order_from(head, sorted(lines.get(order_id, []),
                                             key=lambda line: line["position"]))
                for order_id, head in heads.items()]

    async def _with_lines(self, found: Sequence[Row]) -> list[Order]:
        """Orders from `orders` rows (extra columns ignored), in order, with their lines."""
        if not found:
            return []
        ids = [row["id"] for row in found]
        lines = (await self._run(
            sa.select(order_lines).where(order_lines.c.order_id.in_(ids))
            .order_by(order_lines.c.order_id, order_lines.c.position))).mappings().all()
        by_order: dict[str, list[Row]] = {}
        for line in lines:
            by_order.setdefault(line["order_id"], []).append(line)
        return [rows.order_from(row, by_order.get(row["id"], [])) for row in found]
