"""Schema migrations: `upgrade(url)` runs Alembic to head; `check(url)` says what differs.

The scripts live in this package (`paywire/store/migrations`), found relative to this file, so
migrating works the same from a checkout and an installed wheel. Alembic runs on the sync
drivers (pysqlite, psycopg), so `upgrade` may be called with the store's async URL and from
synchronous code; from async code, run it in a thread (`asyncio.to_thread(upgrade, url)`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from paywire.store.sql import configure_sqlite, sync_url
from paywire.store.sql.tables import metadata

MIGRATIONS = Path(__file__).with_name("migrations")


def sync_engine(url: str) -> sa.Engine:
    """A sync engine for migrations; on SQLite, DDL runs inside a real transaction."""
    parsed = sync_url(url)
    engine = sa.create_engine(parsed, poolclass=sa.NullPool)
    if engine.dialect.name == "sqlite":
        # The driver would run CREATE TABLE outside any transaction; a failed migration must
        # leave nothing half-built, so SQLAlchemy emits BEGIN itself.
        configure_sqlite(engine)
    return engine


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration (for `url`, if given) without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # configparser interpolates '%', which URL-escaped passwords contain.
        rendered = sync_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (default: the newest), in one transaction."""
    config = alembic_config(url)
    engine = sync_engine(url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def head() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(url: str) -> str | None:
    """The revision the database at `url` is at (None if never migrated)."""
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _ours(name: str | None, type_: str, parent_names: Any) -> bool:
    """Whether a reflected object is paywire's: its tables only, so a database shared with a
    host application (a Django project's) is compared on paywire's part alone."""
    return type_ != "table" or name in metadata.tables


def check(url: str) -> list[str]:
    """What differs between the database's schema and the code's tables (paywire's tables
    only: other tables in the database are someone else's); empty when in step."""
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                             "include_name": _ours})
            problems: list[str] = []
            at, newest = context.get_current_revision(), head()
            if at != newest:
                problems.append(f"database is at revision {at}, the code at {newest}")
            problems.extend(_describe(diff) for diff in compare_metadata(context, metadata))
            return problems
    finally:
        engine.dispose()


def _describe(diff: Any) -> str:
    """One line for an Alembic autogenerate diff: what to do, to what, and (types) from what."""
    if isinstance(diff, list):  # column modifications come grouped per column
        return "; ".join(_describe(item) for item in diff)
    op, *args = diff
    if op.startswith("modify_"):  # (op, schema, table, column, existing, old, new)
        return f"{op} {args[1]}.{args[2]}: database {args[-2]!r}, code {args[-1]!r}"
    names = [str(getattr(arg, "name", arg)) for arg in args
             if isinstance(arg, str) or getattr(arg, "name", None)]
    return f"{op} {' '.join(names)}"
