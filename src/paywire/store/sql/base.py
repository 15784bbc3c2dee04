"""What every SQL aggregate module shares: one connection, statements run through `translated`,
dialect-specific INSERTs, and the leased claim the outbox and the truth queue both use.

Statements on the hot paths (webhook ingest, its confirmation, the order reads) are built once,
with bind parameters (`sa.bindparam("b_...")`, the values passed at execution), as module
constants or cached per dialect (`prebuilt`): building a SQLAlchemy statement and computing its
cache key costs several times what running it on SQLite does (about 300 against 70
microseconds, issue 18's measurements), and a built statement's cache key is computed once.

Put-if-absent is `INSERT ... ON CONFLICT DO NOTHING` and a claim is a conditional `UPDATE`; the
row count says who won, so no method reads before it writes. ON CONFLICT (rather than catching
a unique violation) also matters on PostgreSQL, where a failed statement aborts the whole
transaction: a lost race must leave the caller's unit of work usable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from paywire.domain.errors import ConflictError, StorageError, ValidationError

if TYPE_CHECKING:
    from paywire.store.sql.pgrun import PgConnection

_ROWCOUNT = {"preserve_rowcount": True}
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
T = TypeVar("T")
Row = Mapping[Any, Any]  # by column name (SQLAlchemy's RowMapping also takes columns)


class MappingRows(Protocol):
    """Rows as mappings by column name."""

    def __iter__(self) -> Iterator[Row]: ...
    def first(self) -> Row | None: ...
    def one(self) -> Row: ...
    def all(self) -> Sequence[Row]: ...


class Rows(Protocol):
    """What a statement answered, as the aggregates read it: SQLAlchemy's `CursorResult` on
    SQLite, `pgrun.PgResult` on PostgreSQL."""

    @property
    def rowcount(self) -> int: ...
    def mappings(self) -> MappingRows: ...
    def scalars(self) -> Iterable[Any]: ...
    def scalar_one(self) -> Any: ...


def prebuilt(build: Callable[[bool], T]) -> Callable[[bool], T]:
    """`build(postgres)`, built once per dialect (for statements whose spelling differs, such
    as ON CONFLICT through each dialect's own Insert)."""
    return functools.cache(build)


def insert_of(table: sa.Table, postgres: bool) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` in the dialect's own class: both spell ON CONFLICT the same way,
    through different classes."""
    return postgresql.insert(table) if postgres else sqlite.insert(table)


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


def check_limit(limit: int) -> None:
    """Refuse a page size below one."""
    if limit < 1:
        raise ValidationError("limit must be at least 1", field="limit")


class SqlBase:
    """One transaction on one connection; `SqlStore.transaction` commits or rolls it back.

    The connection is psycopg's, statements compiled by SQLAlchemy (PostgreSQL:
    `store.sql.pgrun`), or SQLAlchemy's plain one (SQLite, whose statements run on the event
    loop's thread: `store.sql.sqlite`). `read_only`: a snapshot,
    which refuses anything but a SELECT before it reaches the database.

    The aggregate classes (`SqlOrders`, `SqlOutbox`, ...) derive from this and from nothing
    else of each other's (reconciliation reads orders, so `SqlReconciliation` is also a
    `SqlOrders`); `SqlUnitOfWork` is all of them at once.
    """

    def __init__(self, conn: PgConnection | sa.Connection, *, read_only: bool = False) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"
        self._read_only = read_only
        self._open = True

    def end(self) -> None:
        """Refuse further use: the transaction is over."""
        self._open = False

    async def _run(self, stmt: sa.Executable,
                   params: Params | None = None) -> Rows:
        if not self._open:
            raise RuntimeError("this unit of work has ended; open a new transaction")
        if self._read_only and not isinstance(stmt, sa.Select):
            raise StorageError("a snapshot only reads: write in a transaction")
        if not isinstance(self._conn, sa.Connection):
            return await self._conn.execute(stmt, params)  # raises paywire's errors itself
        with translated():
            # Without preserve_rowcount SQLAlchemy may report -1 for INSERT, and the row count
            # of an INSERT ... ON CONFLICT DO NOTHING is how put-if-absent learns who won.
            return self._conn.execute(stmt, params, execution_options=_ROWCOUNT)

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        return insert_of(table, self._postgres)

    async def _claim_leased(self, t: sa.Table, owner: str, now: datetime,
                            lease_until: datetime, limit: int,
                            first: sa.Column[Any]) -> list[Row]:
        """Lease up to `limit` pending, due rows of `t` whose lease is free or lapsed (oldest
        `first`); the rows this call won. Shared by the truth queue and the outbox."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        claimable = (t.c.status == "pending", t.c.next_attempt_at <= now,
                     sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now))
        candidates = (sa.select(t.c.id).where(*claimable).order_by(first, t.c.id).limit(limit))
        if self._postgres:
            # Concurrent claimers pick disjoint candidates instead of queueing on the same rows
            # (the locks last only until this claim commits, never across the provider call).
            candidates = candidates.with_for_update(skip_locked=True)
        ids = list((await self._run(candidates)).scalars())
        if not ids:
            return []
        # The claim itself re-checks every condition per row, as a DynamoDB backend's
        # conditional update per item would: a row another claimer took since the select (a
        # committed lease on SQLite; on PostgreSQL, a concurrent UPDATE re-evaluated after it
        # commits) is not updated and not returned.
        stmt = (sa.update(t).where(t.c.id.in_(ids), *claimable)
                .values(lease_owner=owner, lease_until=lease_until)
                .returning(*t.c))
        return list((await self._run(stmt)).mappings())
