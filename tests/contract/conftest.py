"""Store backends for the store contract suite: each test gets an empty, migrated store.

SQLite: the migrations run once into a template file, copied per test. PostgreSQL: one database
per session (`paywire_test_<random>` on the local server, dropped at the end) with every table
truncated before each test, since DDL per test would cost more than the tests. Set
PAYWIRE_TEST_POSTGRES_URL to use another server; an unreachable one skips the postgres tests
locally and fails them under CI=true. DynamoDB: a fresh table per test
(`paywire-test-<random>`, made by the store's own setup) on the session's moto server.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest
import sqlalchemy as sa

from paywire.ports import Store
from paywire.store import migrate
from paywire.store.dynamo import DynamoStore
from paywire.store.sql import SqlStore
from paywire.store.sql.tables import ALL_TABLES
from paywire.testing import MotoServer
from testkit import StoppedClock

POSTGRES_URL = os.environ.get("PAYWIRE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]
STORE_BACKENDS = [*BACKENDS, "dynamodb"]
# The contract suites date their records 2025-03-04 (their T0); the DynamoDB store reads the
# time (to expire rejections) from a clock stopped that day, as the records' own world.
CONTRACT_DAY = datetime(2025, 3, 4, 12, tzinfo=UTC)


@dataclass
class PostgresDatabase:
    """A throwaway database on the test server, migrated to head."""

    url: str
    engine: sa.Engine

    def truncate(self) -> None:
        """Empty every table the store writes (the schema and alembic_version stay)."""
        names = ", ".join(table.name for table in ALL_TABLES)
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file to copy for each test."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def _unreachable(reason: str) -> NoReturn:
    message = (f"PostgreSQL for the store contract suite is unreachable at "
               f"{sa.make_url(POSTGRES_URL).render_as_string(hide_password=True)}: {reason}. "
               f"Start it (`make postgres`) or set PAYWIRE_TEST_POSTGRES_URL.")
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    """A fresh database for this session, created through the server's maintenance URL."""
    server = sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool,
                             connect_args={"connect_timeout": 3})
    name = f"paywire_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _unreachable(str(exc.orig).strip().splitlines()[0])
    url = server.set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        migrate.upgrade(url)
        yield PostgresDatabase(url, engine)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def sql_store_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """The URL of an empty, migrated SQL database (sqlite or postgres)."""
    if backend == "sqlite":
        path = tmp_path / "paywire.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    database.truncate()
    return database.url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database on each SQL backend."""
    return sql_store_url(request, request.param, tmp_path)


def dynamodb_client(moto_server: MotoServer) -> Any:
    """A DynamoDB client for the moto server."""
    return moto_server.client("dynamodb")


@pytest.fixture(scope="session")
def dynamodb(moto_server: MotoServer) -> Iterator[Any]:
    """One DynamoDB client on the session's moto server, shared by the tests' stores."""
    client = dynamodb_client(moto_server)
    yield client
    client.close()


async def fresh_dynamo_store(client: Any, **options: Any) -> DynamoStore:
    """A `DynamoStore` on a new table, created by the store's own setup."""
    store = DynamoStore(f"paywire-test-{secrets.token_hex(6)}", client=client, **options)
    await store.setup()
    return store


@pytest.fixture(params=STORE_BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store on each backend, closed afterwards."""
    if request.param != "dynamodb":
        sql_store = SqlStore(sql_store_url(request, request.param, tmp_path))
        try:
            yield sql_store
        finally:
            await sql_store.close()
        return
    client = request.getfixturevalue("dynamodb")
    dynamo_store = await fresh_dynamo_store(client, clock=StoppedClock(CONTRACT_DAY))
    try:
        yield dynamo_store
    finally:
        await dynamo_store.close()
        await asyncio.to_thread(client.delete_table, TableName=dynamo_store.table_name)
