"""Statements on PostgreSQL run straight on psycopg: SQLAlchemy compiles them (once, cached),
psycopg sends them, and this module binds the parameters and reads the rows as SQLAlchemy's
execution context would.

Why (issue 18's measurements, `PgConnection` against SQLAlchemy's asyncio engine on the same
psycopg connection, same machine): a one-row SELECT cost 270 microseconds of client CPU
through `AsyncConnection.execute` and 110 through psycopg itself; a unit of work's connect,
begin, commit and return another 350 against about 60. SQLAlchemy's asyncio layer (a greenlet
switch per driver call, a new DBAPI cursor and an execution context per statement, the
pool's events and reset per checkout) was about 40 % of paywire's CPU per webhook delivery on
PostgreSQL, which makes eleven statements in three units of work.

What SQLAlchemy still does: the statements are built with it (`store.sql.tables`), and compiled
by it through the same cached compilation its connections use (`_compile_w_cache`, keyed by
the statement's cache key, the parameter names and the dialect), so the SQL text, the bind
casts, the expanding `IN` lists and the type processors (aware UTC datetimes, JSONB) are
exactly SQLAlchemy's. The binding follows `DefaultExecutionContext._init_compiled` for the
forms paywire uses (named parameters, post-compile expansion, no Python-side column
defaults); a statement needing anything else is refused at compile time with an error, never
run differently.

Transactions are explicit: connections stay in psycopg's autocommit mode, a unit of work sends
`BEGIN ISOLATION LEVEL READ COMMITTED` before its first statement (none for a unit that runs
none; the level named, so a server whose default is another one runs paywire's compare-and-set
units as the store expects) and `COMMIT` or `ROLLBACK` at its end; a snapshot sends neither
(each read is its own statement, as it was with SQLAlchemy's AUTOCOMMIT isolation). Errors are
paywire's: `ConflictError` for a violated constraint, `StorageError` for anything the database
or the connection did, and a value the bind processors refuse raises as itself (as
`translated` does for SQLAlchemy).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from paywire.domain.errors import ConflictError, StorageError
from paywire.store.sql.observe import announce

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
_Processor = Callable[[Any], Any]
COMPILED_CACHE_SIZE = 500  # statements kept compiled per store (SQLAlchemy's engines keep 500)


@contextmanager
def pg_translated() -> Iterator[None]:
    """psycopg's exceptions as paywire's: conflicts, or transient storage failures."""
    try:
        yield
    except psycopg.IntegrityError as exc:
        raise ConflictError(f"constraint violated: {_first_line(exc)}") from exc
    except psycopg.Error as exc:
        # OperationalError (server gone, serialization failures, a query cancelled),
        # InterfaceError, a closed connection: the caller may retry the unit of work.
        raise StorageError(f"database error: {type(exc).__name__}: {_first_line(exc)}") from exc
    except OSError as exc:  # the socket itself (a reset while sending)
        raise StorageError(f"database error: {type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


class _Compiled:
    """One compiled statement as run here: its SQL, and how its rows are read (column names
    and result processors, settled at its first execution from what psycopg describes)."""

    __slots__ = ("compiled", "keys", "processors", "returns_rows_many", "string")

    def __init__(self, compiled: SQLCompiler) -> None:
        if (compiled.insert_prefetch or compiled.update_prefetch or compiled.positional
                or compiled.schema_translate_map):
            # Python-side column defaults, positional paramstyles and schema translation are
            # forms SQLAlchemy's execution context handles and this module does not.
            raise RuntimeError(f"statement not supported by the PostgreSQL runner: "
                               f"{compiled.string[:80]!r}")
        self.compiled = compiled
        self.string = compiled.string
        self.keys: list[str] | None = None
        self.processors: list[_Processor | None] = []

    def settle(self, dialect: Dialect, description: Sequence[Any]) -> None:
        """Name the result columns and pick their processors, as SQLAlchemy's cursor result
        does: by position for a compiled select whose columns are its own (the names it
        gave them), else by the names the server answered with; each processor for the
        column's type and the type the server reported."""
        compiled = self.compiled
        named = [column.name for column in description]
        columns = compiled._result_columns
        types: list[TypeEngine[Any] | None]
        positional = (compiled._ordered_columns and not compiled._textual_ordered_columns
                      and not compiled._ad_hoc_textual
                      and not compiled._loose_column_name_matching
                      and len(columns) == len(named))
        if positional:
            keys = [column.keyname for column in columns]
            types = [column.type for column in columns]
        else:
            by_name = {column.keyname: column.type for column in columns}
            keys, types = named, [by_name.get(name) for name in named]
        if len(set(keys)) != len(keys):
            raise RuntimeError(f"ambiguous result column names {keys}: label them "
                               f"({self.string[:80]!r})")
        self.processors = [
            None if type_ is None else type_._cached_result_processor(dialect, column.type_code)
            for type_, column in zip(types, description, strict=True)]
        self.keys = keys


class PgResult:
    """What a statement answered: its row count and rows (the subset of SQLAlchemy's
    `CursorResult` the store reads: `rowcount`, `mappings()`, `scalars()`, `scalar_one()`)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rowcount: int, rows: list[dict[str, Any]]) -> None:
        self.rowcount = rowcount
        self._rows = rows

    def mappings(self) -> PgMappings:
        return PgMappings(self._rows)

    def scalars(self) -> list[Any]:
        return [next(iter(row.values())) for row in self._rows]

    def scalar_one(self) -> Any:
        return next(iter(PgMappings(self._rows).one().values()))


class PgMappings:
    """Rows as mappings by column name."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._rows)

    def first(self) -> dict[str, Any] | None:
        return self._rows[0] if self._rows else None

    def one(self) -> dict[str, Any]:
        if len(self._rows) != 1:
            raise StorageError(f"expected exactly one row, got {len(self._rows)}")
        return self._rows[0]

    def all(self) -> list[dict[str, Any]]:
        return list(self._rows)


class PgCompiler:
    """SQLAlchemy's compilation for one dialect, cached (least recently used out first)."""

    def __init__(self, dialect: Dialect, size: int = COMPILED_CACHE_SIZE) -> None:
        self.dialect = dialect
        self._size = size
        self._sa_cache: OrderedDict[Any, Any] = _LruDict(size)
        self._ours: dict[int, _Compiled] = {}

    def compile(self, stmt: sa.Executable, keys: list[str],
                many: bool) -> tuple[_Compiled, Any, Any]:
        """The statement's compiled form, the bind values it carries (extracted from this
        instance of it), and the values collected while compiling it."""
        compiled, extracted, collected, _ = stmt._compile_w_cache(
            dialect=self.dialect, compiled_cache=self._sa_cache, column_keys=keys,
            for_executemany=many)
        if not isinstance(compiled, SQLCompiler):  # DDL: not something a unit of work runs
            raise TypeError(f"not a SQL statement: {type(stmt).__name__}")
        ours = self._ours.get(id(compiled))
        if ours is None or ours.compiled is not compiled:
            ours = _Compiled(compiled)
            if len(self._ours) >= self._size * 2:
                # Compiled forms the SQL cache evicted: drop every one this side still holds
                # that is no longer cached there (rare; the cache is sized for the hot set).
                live = {id(value) for value in self._sa_cache.values()}
                self._ours = {k: v for k, v in self._ours.items() if k in live}
            self._ours[id(compiled)] = ours
        return ours, extracted, collected

    def bind(self, ours: _Compiled, extracted: Any, collected: Any,
             params: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        """The SQL to send and each parameter set, bound as SQLAlchemy binds them."""
        compiled = ours.compiled
        sets = [compiled.construct_params(p or None, extracted_parameters=extracted,
                                          escape_names=False, _collected_params=collected)
                for p in (params or [{}])]
        statement = ours.string
        processors: Mapping[str, Any] = compiled._bind_processors
        if compiled.literal_execute_params or compiled.post_compile_params:
            if len(sets) > 1:
                raise RuntimeError("expanding parameters cannot be used with several rows")
            expanded = compiled._process_parameters_for_postcompile(sets[0])
            statement = expanded.statement
            processors = {**processors, **expanded.processors}
        escaped = compiled.escaped_bind_names
        bound = [{escaped.get(key, key) if escaped else key:
                  processors[key](value) if key in processors else value
                  for key, value in values.items()} for values in sets]
        return statement, bound

    @staticmethod
    def rows(ours: _Compiled, fetched: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """Rows as mappings, each value through its column's result processor."""
        keys = ours.keys or []
        pairs = list(zip(keys, ours.processors, strict=True))
        if not any(processor for _, processor in pairs):
            return [dict(zip(keys, row, strict=True)) for row in fetched]
        return [{key: processor(value) if processor is not None and value is not None
                 else value for (key, processor), value in zip(pairs, row, strict=True)}
                for row in fetched]


class _LruDict(OrderedDict[Any, Any]):
    """A dict bounded to `size` entries, the least recently read or written dropped first
    (the mapping SQLAlchemy's `_compile_w_cache` reads with `get` and writes with `[]=`)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._bound = size

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        self.move_to_end(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self._bound:
            self.popitem(last=False)


BEGIN = b"BEGIN ISOLATION LEVEL READ COMMITTED"


class PgConnection:
    """One pooled psycopg connection as a unit of work (or a snapshot) uses it: statements
    compiled by SQLAlchemy, `BEGIN` sent before the first one when `transactional`."""

    def __init__(self, raw: psycopg.AsyncConnection[Any], compiler: PgCompiler, *,
                 transactional: bool) -> None:
        self.raw = raw
        self.dialect = compiler.dialect
        self._compiler = compiler
        self._begin = transactional  # BEGIN still to send
        self.began = False
        self._cursor = raw.cursor()

    async def execute(self, stmt: sa.Executable, params: Params | None = None) -> PgResult:
        """Run one statement (several parameter sets: one statement per set, pipelined)."""
        sets: Sequence[Mapping[str, Any]]
        if params is None:
            sets = []
        elif isinstance(params, Mapping):
            sets = [params]
        else:
            sets = params
        many = len(sets) > 1
        ours, extracted, collected = self._compiler.compile(
            stmt, sorted(sets[0]) if sets else [], many)
        if many and ours.compiled.effective_returning:
            raise RuntimeError("RETURNING with several parameter sets is not supported by the "
                               "PostgreSQL runner: run one statement per row")
        statement, bound = self._compiler.bind(ours, extracted, collected, sets)
        announce(statement, bound, many)
        with pg_translated():
            if self._begin:
                await self._cursor.execute(BEGIN)
                self._begin, self.began = False, True
            cursor = self._cursor
            if many:
                await cursor.executemany(statement, bound)
                return PgResult(cursor.rowcount, [])
            await cursor.execute(statement, bound[0])
            answered = cursor.pgresult
            if answered is None or not answered.nfields:
                return PgResult(cursor.rowcount, [])
            if ours.keys is None:
                # Once per compiled statement: psycopg's `description` builds a Column object
                # per column per call, and a statement's columns do not change.
                ours.settle(self.dialect, cursor.description or ())
            fetched = await cursor.fetchall()
        return PgResult(cursor.rowcount, self._compiler.rows(ours, fetched))

    async def commit(self) -> None:
        if self.began:
            with pg_translated():
                await self._cursor.execute(b"COMMIT")
            self.began = False
            if self._cursor.statusmessage == "ROLLBACK":
                # A statement of this unit failed and the unit went on (its error caught):
                # PostgreSQL answers the COMMIT of an aborted transaction with a rollback.
                raise StorageError("database error: the transaction had failed; its COMMIT "
                                   "rolled it back and nothing was written")
        self._begin = False

    async def rollback(self) -> None:
        if self.began:
            with pg_translated():
                await self._cursor.execute(b"ROLLBACK")
            self.began = False
        self._begin = False

