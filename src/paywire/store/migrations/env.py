"""Alembic environment for paywire's SQL store.

`paywire.store.migrate.upgrade` hands over an open connection (in `config.attributes`); the
`alembic` command line instead gives a URL (sync or async driver), from which a sync engine is
made. SQLite migrations use batch mode, since SQLite's ALTER TABLE cannot change columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from paywire.store.migrate import sync_engine
from paywire.store.sql.tables import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate over the given connection, or over a new one to `sqlalchemy.url`."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection in config.attributes")
    engine = sync_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


def run_offline() -> None:
    """Print the migration SQL for `sqlalchemy.url`'s dialect instead of running it."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
