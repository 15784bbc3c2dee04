"""The SQL unit of work: every `UnitOfWork` method as one or two Core statements on one connection.

Put-if-absent is `INSERT ... ON CONFLICT DO NOTHING` and a claim is a conditional `UPDATE`; the
row count says who won, so no method reads before it writes. ON CONFLICT (rather than catching
a unique violation) also matters on PostgreSQL, where a failed statement aborts the whole
transaction: a lost race must leave the caller's unit of work usable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from paywire.domain.errors import ConflictError, NotFoundError, StorageError, ValidationError
from paywire.domain.facts import Announcement
from paywire.domain.order import Order, OrderStatus
from paywire.ports import HistoryEntry, IdempotencyRecord, OutboxMessage, ProviderOperation, Refund
from paywire.store import sql_rows as rows
from paywire.store.sql_tables import (
    history,
    idempotency_keys,
    order_lines,
    orders,
    outbox,
    provider_operations,
    refunds,
)

OPERATION_STATUSES = frozenset({"pending", "succeeded", "failed"})
_ROWCOUNT = {"preserve_rowcount": True}


@contextmanager
def translated() -> Iterator[None]:
    """Turn driver and pool exceptions into paywire's: conflicts, or transient storage failures."""
    try:
        yield
    except sa_exc.IntegrityError as exc:
        raise ConflictError(f"constraint violated: {_first_line(exc.orig)}") from exc
    except (sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.DisconnectionError) as exc:
        # OperationalError (server gone, "database is locked" after busy_timeout, serialization
        # failures), InterfaceError, pool exhaustion: the caller may retry the unit of work.
        orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        raise StorageError(f"database error: {type(orig).__name__}: {_first_line(orig)}") from exc
    except sa_exc.StatementError as exc:
        # A value refused while binding (a naive datetime, a payload json cannot encode): the
        # caller's bug, raised as itself rather than as a SQLAlchemy wrapper.
        if isinstance(exc.orig, ValueError | TypeError):
            raise exc.orig from exc
        raise


def _first_line(error: BaseException | None) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


class SqlUnitOfWork:
    """One transaction on one connection; `SqlStore.transaction` commits or rolls it back."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"
        self._open = True

    def end(self) -> None:
        """Refuse further use: the transaction is over."""
        self._open = False

    async def _run(self, stmt: sa.Executable,
                   params: Sequence[dict[str, Any]] | None = None) -> sa.CursorResult[Any]:
        if not self._open:
            raise RuntimeError("this unit of work has ended; open a new transaction")
        with translated():
            # Without preserve_rowcount SQLAlchemy may report -1 for INSERT, and the row count
            # of an INSERT ... ON CONFLICT DO NOTHING is how put-if-absent learns who won.
            return await self._conn.execute(stmt, params, execution_options=_ROWCOUNT)

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        # Both dialects spell ON CONFLICT the same way, but through their own Insert classes.
        return postgresql.insert(table) if self._postgres else sqlite.insert(table)

    # --- orders ---------------------------------------------------------------------------

    async def get_order(self, order_id: str) -> Order | None:
        """The order, or None."""
        found = await self._orders(sa.select(orders).where(orders.c.id == order_id))
        return found[0] if found else None

    async def find_order_by_provider_id(self, provider: str,
                                        provider_order_id: str) -> Order | None:
        """The order the provider knows by `provider_order_id`, or None."""
        found = await self._orders(sa.select(orders).where(
            orders.c.provider == provider, orders.c.provider_order_id == provider_order_id))
        return found[0] if found else None

    async def insert_order(self, order: Order) -> None:
        """Insert a new order with its lines (ConflictError if the id or provider id exists)."""
        stmt = self._insert(orders).values(rows.order_values(order)).on_conflict_do_nothing()
        if (await self._run(stmt)).rowcount != 1:
            raise ConflictError(f"order {order.id} (or its provider order id) already exists")
        await self._run(sa.insert(order_lines), rows.line_values(order))

    async def update_order(self, order: Order, expected_version: int) -> None:
        """Write `order` if the stored version is still `expected_version`, else ConflictError."""
        if order.version != expected_version + 1:
            raise ValueError(f"order version {order.version} must be expected_version + 1 "
                             f"({expected_version + 1})")
        values = rows.order_values(order)
        del values["id"], values["created_at"]  # identity and creation time never change
        stmt = (sa.update(orders)
                .where(orders.c.id == order.id, orders.c.version == expected_version)
                .values(values))
        if (await self._run(stmt)).rowcount != 1:
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

    async def _with_lines(self, found: Sequence[sa.RowMapping]) -> list[Order]:
        """Orders from `orders` rows (extra columns ignored), in order, with their lines."""
        if not found:
            return []
        ids = [row["id"] for row in found]
        lines = (await self._run(
            sa.select(order_lines).where(order_lines.c.order_id.in_(ids))
            .order_by(order_lines.c.order_id, order_lines.c.position))).mappings().all()
        by_order: dict[str, list[sa.RowMapping]] = {}
        for line in lines:
            by_order.setdefault(line["order_id"], []).append(line)
        return [rows.order_from(row, by_order.get(row["id"], [])) for row in found]

    # --- history and announcements --------------------------------------------------------

    async def append_history(self, entry: HistoryEntry) -> None:
        """Append to the order's history."""
        await self._run(sa.insert(history).values(rows.history_values(entry)))

    async def history(self, order_id: str) -> list[HistoryEntry]:
        """The order's history, oldest first (insertion order among equal times)."""
        result = await self._run(sa.select(history).where(history.c.order_id == order_id)
                                 .order_by(history.c.at, history.c.id))
        return [rows.history_from(row) for row in result.mappings()]

    async def add_announcement(self, announcement: Announcement, message_id: str,
                               now: datetime) -> bool:
        """Put the announcement in the outbox unless its key exists; True if written."""
        stmt = (self._insert(outbox)
                .values(rows.outbox_values(announcement, message_id, now))
                .on_conflict_do_nothing(index_elements=[outbox.c.key]))
        return (await self._run(stmt)).rowcount == 1

    async def outbox_for_order(self, order_id: str) -> list[OutboxMessage]:
        """The order's outbox messages, oldest first."""
        result = await self._run(sa.select(outbox).where(outbox.c.order_id == order_id)
                                 .order_by(outbox.c.created_at, outbox.c.id))
        return [rows.outbox_from(row) for row in result.mappings()]

    # --- provider operations --------------------------------------------------------------

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

    # --- refunds ----------------------------------------------------------------------------

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

    # --- client idempotency keys ------------------------------------------------------------

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
