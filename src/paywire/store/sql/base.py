"""What every SQL aggregate module shares: one connection, statements run through `translated`,
dialect-specific INSERTs, and the leased claim the outbox and the truth queue both use.

Statements on the hot paths (webhook ingest, its confirmation, the order reads) are built once,
with bind parameters (`sa.bindparam("b_...")`, the values passed at execution), as module
constants or cached per dialect (`prebuilt`): building a SQLAlchemy statement and computing its
cache key costs several times what running it on SQLite does (about 300 against 70
microseconds, issue 18's measurements), and a built statement's cache key is computed once.

On SQLite, whose statements run on the event loop's thread through the plain driver
(`store.sql.sqlite`), the hot writes (`SqlBase._write`: an INSERT, UPDATE or DELETE without
RETURNING, whose caller needs only the row count) go further: compiled once per set of
parameter names, their values bound by SQLAlchemy's own bind processors, then handed straight to
the driver. SQLAlchemy's execution layer (execution context, result, cursor wrapper) cost about
three times the driver's own call there (issue 18's measurements: ~41 against ~13 microseconds
for a history row), and a checkout order makes twelve such writes. An order's read by id or
by the provider's ids (`SqlBase._select`, the webhook path's two or three a delivery, the
capture's one) goes the same way, each value through its column's result processor.

Put-if-absent is `INSERT ... ON CONFLICT DO NOTHING` and a claim is a conditional `UPDATE`; the
row count says who won, so no method reads before it writes. ON CONFLICT (rather than catching
a unique violation) also matters on PostgreSQL, where a failed statement aborts the whole
transaction: a lost race must leave the caller's unit of work usable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from paywire.domain.errors import ConflictError, StorageError, ValidationError
from paywire.store.sql.observe import announce

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


@dataclass(frozen=True, slots=True)
class _Plain:
    """A write compiled once for the driver: its SQL, the names of its parameters in order,
    and the bind processor of each name that has one (`SqlBase._write`)."""

    compiled: sa.engine.Compiled
    sql: str
    names: tuple[str, ...]
    processors: Mapping[str, Callable[[Any], Any]]

    def bind(self, params: Mapping[str, Any]) -> list[Any]:
        """The driver's positional parameters for `params`, as SQLAlchemy's execution binds
        them (values compiled into the statement included)."""
        values: Any = self.compiled.construct_params(params, escape_names=False)
        procs = self.processors
        return [procs[name](values[name]) if name in procs else values[name]
                for name in self.names]


@dataclass(frozen=True, slots=True)
class _PlainSelect:
    """A SELECT compiled once for the driver (`SqlBase._select`): `_Plain`'s parameters, and
    each result column's name and result processor (None where the value is used as is)."""

    query: _Plain
    keys: tuple[str, ...]
    results: tuple[Callable[[Any], Any] | None, ...]

    def rows(self, fetched: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Fetched rows as mappings of processed values, as SQLAlchemy's `mappings()`."""
        keys, results = self.keys, self.results
        return [dict(zip(keys, [value if proc is None or value is None else proc(value)
                                for proc, value in zip(results, row, strict=True)],
                         strict=True))
                for row in fetched]


_PLAIN: dict[tuple[Any, ...], _Plain | None] = {}
_PLAIN_SELECTS: dict[tuple[Any, ...], _PlainSelect | None] = {}
_PLAIN_MAX = 256  # compiled writes kept (the hot ones are a few dozen, built once)


def _plain(stmt: sa.Executable, dialect: sa.Dialect, keys: tuple[str, ...],
           many: bool) -> _Plain | None:
    """`stmt` compiled as SQLAlchemy would for parameters named `keys` (`many`: an
    executemany), or None when it needs more than binding (RETURNING, Python-side defaults,
    expanding or literal parameters, named paramstyles): those go through SQLAlchemy."""
    key = (stmt, keys, many, type(dialect), dialect.paramstyle)
    try:
        return _PLAIN[key]
    except KeyError:
        pass
    element: Any = stmt  # an INSERT, UPDATE or DELETE: a ClauseElement
    compiled: Any = element.compile(dialect=dialect, column_keys=list(keys),
                                    for_executemany=many)
    plain = None
    if (compiled.positional and compiled.positiontup is not None and not compiled.returning
            and not compiled.insert_prefetch and not compiled.update_prefetch
            and not compiled.literal_execute_params and not compiled.post_compile_params
            and not compiled.schema_translate_map):
        plain = _Plain(compiled, compiled.string, tuple(compiled.positiontup),
                       dict(compiled._bind_processors))
    if len(_PLAIN) >= _PLAIN_MAX:
        _PLAIN.clear()
    _PLAIN[key] = plain
    return plain


def _plain_select(stmt: sa.Select[Any], dialect: sa.Dialect,
                  keys: tuple[str, ...]) -> _PlainSelect | None:
    """`stmt` compiled for the driver, with its result columns' processors, or None when its
    columns or parameters need more than `_PlainSelect` does (SQLAlchemy runs it then)."""
    key = (stmt, keys, type(dialect), dialect.paramstyle)
    try:
        return _PLAIN_SELECTS[key]
    except KeyError:
        pass
    compiled: Any = stmt.compile(dialect=dialect, column_keys=list(keys))
    columns = compiled._result_columns
    names = tuple(column.keyname for column in columns)
    plain = None
    if (compiled.positional and compiled.positiontup is not None and columns
            and compiled._ordered_columns and not compiled._textual_ordered_columns
            and len(set(names)) == len(names) and not compiled.literal_execute_params
            and not compiled.post_compile_params and not compiled.schema_translate_map):
        query = _Plain(compiled, compiled.string, tuple(compiled.positiontup),
                       dict(compiled._bind_processors))
        results = tuple(column.type._cached_result_processor(dialect, None)
                        for column in columns)
        plain = _PlainSelect(query, names, results)
    if len(_PLAIN_SELECTS) >= _PLAIN_MAX:
        _PLAIN_SELECTS.clear()
    _PLAIN_SELECTS[key] = plain
    return plain


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

    def _check(self, stmt: sa.Executable) -> None:
        if not self._open:
            raise RuntimeError("this unit of work has ended; open a new transaction")
        if self._read_only and not isinstance(stmt, sa.Select):
            raise StorageError("a snapshot only reads: write in a transaction")

    async def _run(self, stmt: sa.Executable,
                   params: Params | None = None) -> Rows:
        self._check(stmt)
        if not isinstance(self._conn, sa.Connection):
            return await self._conn.execute(stmt, params)  # raises paywire's errors itself
        with translated():
            # Without preserve_rowcount SQLAlchemy may report -1 for INSERT, and the row count
            # of an INSERT ... ON CONFLICT DO NOTHING is how put-if-absent learns who won.
            return self._conn.execute(stmt, params, execution_options=_ROWCOUNT)

    async def _write(self, stmt: sa.Executable, params: Params) -> int:
        """An INSERT, UPDATE or DELETE without RETURNING (a module constant or `prebuilt`):
        the number of rows it wrote. On SQLite straight to the driver, compiled once (the
        module's docstring); elsewhere, and for a statement that needs more than binding,
        through `_run`. Errors are `_run`'s: ConflictError for a constraint, StorageError for
        the database, a value the column refuses raised as itself."""
        conn = self._conn
        many = not isinstance(params, Mapping)
        if isinstance(conn, sa.Connection) and conn.dialect.name == "sqlite" and params:
            first: Mapping[str, Any] = params[0] if many else params  # type: ignore[index,assignment]
            plain = _plain(stmt, conn.dialect, tuple(sorted(first)), many and len(params) > 1)
            if plain is not None:
                self._check(stmt)
                return _driver_write(conn, plain, params)
        return (await self._run(stmt, params)).rowcount

    async def _select(self, stmt: sa.Select[Any],
                      params: Mapping[str, Any]) -> Sequence[Row]:
        """A hot SELECT's rows as mappings (`_run(...).mappings().all()`). On SQLite straight
        to the driver, compiled once, each value through its column's result processor (as
        `_write` binds); elsewhere, and for a statement that needs more, through `_run`."""
        conn = self._conn
        if isinstance(conn, sa.Connection) and conn.dialect.name == "sqlite":
            plain = _plain_select(stmt, conn.dialect, tuple(sorted(params)))
            if plain is not None:
                self._check(stmt)
                return plain.rows(_driver_fetch(conn, plain.query, params))
        return (await self._run(stmt, params)).mappings().all()

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


def _driver_fetch(conn: sa.Connection, plain: _Plain,
                  params: Mapping[str, Any]) -> list[Any]:
    """`plain` (a SELECT) on `conn`'s driver connection: every row, as the driver gives it."""
    dbapi: Any = conn.connection.dbapi_connection
    driver = conn.dialect.loaded_dbapi
    bound = plain.bind(params)
    announce(plain.sql, [bound], False)
    try:
        cursor = dbapi.execute(plain.sql, bound)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()
    except driver.Error as exc:
        raise StorageError(f"database error: {type(exc).__name__}: {_first_line(exc)}") from exc


def _driver_write(conn: sa.Connection, plain: _Plain, params: Params) -> int:
    """`plain` on `conn`'s driver connection, inside the connection's transaction; the rows
    written. Driver errors become paywire's as `translated` makes them."""
    dbapi: Any = conn.connection.dbapi_connection
    driver = conn.dialect.loaded_dbapi
    several = not isinstance(params, Mapping)
    bound = [plain.bind(p) for p in params] if several else [plain.bind(params)]  # type: ignore[arg-type]
    announce(plain.sql, bound, several)
    try:
        if several:
            cursor = dbapi.executemany(plain.sql, bound)
        else:
            cursor = dbapi.execute(plain.sql, bound[0])
    except driver.IntegrityError as exc:
        raise ConflictError(f"constraint violated: {_first_line(exc)}") from exc
    except driver.Error as exc:
        raise StorageError(f"database error: {type(exc).__name__}: {_first_line(exc)}") from exc
    try:
        return int(cursor.rowcount)
    finally:
        cursor.close()
