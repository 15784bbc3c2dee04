"""Helpers for the HTTP API suites: paywire served over loopback against the emulator.

paywire runs exactly as in production (`bootstrap.create_app`: real `SqlStore`, real
`PayPalClient`, uvicorn on a free port); only the emulator stands in for PayPal. Tests read the
outbox through the store port, with a `SqlStore` of their own on the same database.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from paywire.bootstrap import ProviderWrapper, create_app
from paywire.ports import OutboxMessage, Store
from paywire.settings import Settings
from paywire.store import migrate
from paywire.store.sql import SqlStore
from paywire.testing import EmulatorServer, MotoServer, ServerThread
from testkit import CLIENT_ID, CLIENT_SECRET

API_KEY = "test-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {API_KEY}"}
POSTGRES_URL = os.environ.get("PAYWIRE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def open_store(database_url: str) -> Store:
    """A store of our own on `database_url` (a DynamoDB one for dynamodb://<table>)."""
    if database_url.startswith("dynamodb://"):
        from paywire.store.dynamo import DynamoStore

        return DynamoStore.from_url(database_url)
    return SqlStore(database_url)


def sqlite_url(tmp_path: Path) -> str:
    """An embedded SQLite database in the test's directory (migrated by paywire on start)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'paywire.db'}"


@contextmanager
def dynamodb_table(moto: MotoServer, prefix: str = "paywire") -> Iterator[str]:
    """A fresh paywire table on the moto server, its dynamodb:// URL, with the AWS environment
    (region, endpoint, dummy credentials) set for the block; the table is deleted after."""
    import asyncio

    import boto3

    from paywire.store.dynamo import ensure_table

    name = f"{prefix}-{secrets.token_hex(4)}"
    with pytest.MonkeyPatch.context() as env:
        for key, value in moto.env.items():
            env.setenv(key, value)
        client = boto3.client("dynamodb")
        try:
            asyncio.run(ensure_table(name, client=client))
            yield f"dynamodb://{name}"
        finally:
            client.delete_table(TableName=name)
            client.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards (one per test module)."""
    server = sa.make_url(POSTGRES_URL)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool,
                             connect_args={"connect_timeout": 3})
    name = f"paywire_api_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is unreachable ({exc.orig}); start it (`make postgres`)",
                    pytrace=False)
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)  # PostgreSQL is never migrated by paywire on start
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def settings_for(emulator: EmulatorServer, database_url: str, data_dir: Path,
                 **overrides: Any) -> Settings:
    """Settings pointing paywire at the emulator and `database_url` (no .env file read)."""
    values: dict[str, Any] = {
        "paypal_env": "emulator", "paypal_base_url": emulator.url,
        "paypal_client_id": CLIENT_ID, "paypal_client_secret": CLIENT_SECRET,
        "database_url": database_url, "data_dir": data_dir, "api_keys": [API_KEY],
        "paypal_retry_backoff_seconds": 0.01, "paypal_timeout_seconds": 5,
        "return_url": "https://shop.example/return", "cancel_url": "https://shop.example/cancel",
        "cors_origins": ["https://shop.example"], "max_body_bytes": 16 * 1024,
    }
    values.update(overrides)
    return Settings.load(_env_file=None, **values)


@dataclass
class Paywire:
    """A running paywire and where its data lives."""

    url: str
    database_url: str
    emulator: EmulatorServer

    @property
    def webhook_url(self) -> str:
        """Where PayPal delivers webhooks to this paywire."""
        return f"{self.url}/webhooks/paypal"

    async def outbox(self, order_id: str) -> list[OutboxMessage]:
        """The order's announcements, read through the store port."""
        store = open_store(self.database_url)
        try:
            async with store.transaction() as uow:
                return await uow.outbox_for_order(order_id)
        finally:
            await store.close()

    def provider_calls(self, method: str, path: str) -> list[Any]:
        """Requests the emulator received whose path matches the regex `path`."""
        pattern = re.compile(path)
        return [e for e in self.emulator.emu.request_log
                if e.method == method and pattern.fullmatch(e.path)]


@contextmanager
def serve(emulator: EmulatorServer, database_url: str, data_dir: Path, *,
          wrap_provider: ProviderWrapper | None = None, listen_port: int | None = None,
          **overrides: Any) -> Iterator[Paywire]:
    """paywire on a loopback port (free, or `listen_port`: a webhook registered for it before
    it starts) until the block ends (lifespan run both ways)."""
    settings = settings_for(emulator, database_url, data_dir, **overrides)
    server = ServerThread(create_app(settings, wrap_provider=wrap_provider), port=listen_port)
    server.start(timeout=30)
    try:
        yield Paywire(server.url, database_url, emulator)
    finally:
        server.stop()


async def buy(client: httpx.AsyncClient, emulator: EmulatorServer, *, scenario: str = "approve",
              items: list[dict[str, Any]] | None = None, intent: str = "CAPTURE",
              ) -> dict[str, Any]:
    """Create an order through paywire and approve it at the emulator as the buyer."""
    created = await client.post("/v1/checkout/orders", json={
        "items": items or [{"sku": "mug", "quantity": 2}], "intent": intent})
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    await approve(emulator, order["provider_order_id"], scenario)
    return order


async def approve(emulator: EmulatorServer, paypal_id: str, scenario: str = "approve") -> None:
    """The buyer approves at the emulator (its control API)."""
    async with httpx.AsyncClient(base_url=emulator.url) as emu:
        r = await emu.post(f"/_emulator/orders/{paypal_id}/approve", json={"scenario": scenario})
        assert r.status_code == 200, r.text


async def control(emulator: EmulatorServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST to the emulator's control API."""
    async with httpx.AsyncClient(base_url=emulator.url) as emu:
        r = await emu.post(f"/_emulator/{path}", json=body)
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out


def assert_error(response: httpx.Response, status: int, code: str,
                 what: str = "") -> dict[str, Any]:
    """The response is our error shape with this status and code; its `error` object."""
    assert response.status_code == status, f"{what}: {response.text}"
    body = response.json()
    assert set(body) == {"error"}, f"{what}: {body}"
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}, f"{what}: {error}"
    assert error["code"] == code, f"{what}: {error}"
    assert error["request_id"] == response.headers["x-request-id"], what
    return error
