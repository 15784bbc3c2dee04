"""The stack both webhook suites run on: one emulator with two apps, two paywires on one database.

Also what those suites do to it: forge a delivery, take the store down, write an order late.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apikit import POSTGRES_URL, Paywire, postgres_database, serve, settings_for, sqlite_url
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.emulator.paypal.signing import signed_message
from paywire.settings import Settings
from paywire.testing import EmulatorServer, free_ports
from testkit import CLIENT_ID, CLIENT_SECRET, OTHER_ID, OTHER_SECRET
from webhookkit import Delivery, PayPal, Recorder, delivery, eventually, order, read, transmissions

# --- the stack -------------------------------------------------------------------------

BODY_LIMIT = 32 * 1024  # the webhook body limit the stack's paywires run with


@dataclass
class Stack:
    """One emulator with two apps and two paywires on one database.

    `paywire` verifies locally for app 1's subscription `webhook_id` (with `other_id`, app 1's
    "other environment" subscription delivering to `recorder`, named for diagnosis);
    `postback` asks PayPal, for app 2's subscription. Neither runs the truth fetcher.
    """

    emulator: EmulatorServer
    paywire: Paywire
    postback: Paywire
    paypal: PayPal
    paypal2: PayPal
    webhook_id: str
    other_id: str
    recorder: Recorder
    data_dir: Path

    @property
    def db(self) -> str:
        """The database both paywires use."""
        return self.paywire.database_url

    @property
    def other_url(self) -> str:
        """Where the other environment's subscription delivers."""
        return f"{self.recorder.url}/other-environment"

    def settings(self, **overrides: Any) -> Settings:
        """Settings like the local paywire's (app 1, its webhook id)."""
        return settings_for(self.emulator, self.db, self.data_dir,
                            paypal_webhook_id=self.webhook_id, **overrides)

    def cli_env(self) -> dict[str, str]:
        """PAYWIRE_* for the CLI, as the local paywire is configured."""
        return {"PAYWIRE_PAYPAL_ENV": "emulator", "PAYWIRE_PAYPAL_BASE_URL": self.emulator.url,
                "PAYWIRE_PAYPAL_CLIENT_ID": CLIENT_ID,
                "PAYWIRE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
                "PAYWIRE_DATABASE_URL": self.db, "PAYWIRE_DATA_DIR": str(self.data_dir),
                "PAYWIRE_PAYPAL_WEBHOOK_ID": self.webhook_id, "COLUMNS": "250"}

    async def fault(self, rule: dict[str, Any]) -> None:
        """Add an emulator fault rule."""
        async with httpx.AsyncClient(base_url=self.emulator.url) as emu:
            r = await emu.post("/_emulator/faults", json=rule)
            assert r.status_code in (200, 201), r.text

    async def clear_faults(self) -> None:
        """Remove every fault rule."""
        async with httpx.AsyncClient(base_url=self.emulator.url) as emu:
            await emu.delete("/_emulator/faults")


@contextmanager
def backend_database(backend: str, data_dir: Path) -> Iterator[str]:
    """A fresh, empty database on `backend` (sqlite | postgresql)."""
    if backend == "sqlite":
        yield sqlite_url(data_dir)
        return
    with postgres_database() as url:
        yield url


@contextmanager
def open_stack(emulator: EmulatorServer, database_url: str, data_dir: Path) -> Iterator[Stack]:
    """Subscriptions first (their ids are paywire's settings), then the two paywires."""
    recorder = Recorder()
    recorder.server.start()
    paypal = PayPal(emulator, CLIENT_ID, CLIENT_SECRET)
    paypal2 = PayPal(emulator, OTHER_ID, OTHER_SECRET)
    port, port2 = free_ports(2)

    async def subscribe() -> tuple[str, str, str]:
        return (await paypal.subscribe(f"http://127.0.0.1:{port}/webhooks/paypal"),
                await paypal.subscribe(f"{recorder.url}/other-environment",
                                       "PAYMENT.CAPTURE.REFUNDED"),
                await paypal2.subscribe(f"http://127.0.0.1:{port2}/webhooks/paypal"))

    ours, other, theirs = asyncio.run(subscribe())
    local = serve(emulator, database_url, data_dir, listen_port=port, paypal_webhook_id=ours,
                  paypal_other_webhook_ids=[other], truth_fetch_enabled=False,
                  webhook_max_body_bytes=BODY_LIMIT)
    remote = serve(emulator, database_url, data_dir, listen_port=port2,
                   paypal_webhook_id=theirs, paypal_client_id=OTHER_ID,
                   paypal_client_secret=OTHER_SECRET, webhook_verification="postback",
                   truth_fetch_enabled=False, webhook_max_body_bytes=BODY_LIMIT)
    try:
        with local as pw, remote as pb:
            yield Stack(emulator, pw, pb, paypal, paypal2, ours, other, recorder, data_dir)
    finally:
        recorder.server.stop()


def sent_to(s: Stack, url: str, needle: str) -> dict[str, Delivery]:
    """The deliveries to `url` whose body mentions `needle`, by event type."""
    return {t.event_type: delivery(t) for t in transmissions(s.emulator, url)
            if needle in t.body.decode()}


async def status_is(database_url: str, order_id: str, status: OrderStatus) -> Order:
    """Wait until the order reaches `status`; the order."""
    async def probe() -> Order | None:
        found = await order(database_url, order_id)
        return found if found.status is status else None

    return await eventually(probe, f"{order_id} to be {status}")


async def insert_order(database_url: str, order_id: str, paypal_id: str, value: str) -> None:
    """Our record of a one-mug order PayPal knows as `paypal_id` (as if written late)."""
    now = datetime.now(UTC)
    line = OrderLine("mug", "Mug", 1, Money.parse(value, "USD"))
    new = Order.new(order_id, Intent.CAPTURE, [line], now).evolve(now, provider_order_id=paypal_id)

    async def put(uow: Any) -> None:
        await uow.insert_order(new)

    await read(database_url, put)


def forge(d: Delivery, cert_url: str, webhook_id: str) -> dict[str, str]:
    """Fresh transmission headers for `d`, signed with a key of our own (an attacker's)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tid, when = str(uuid.uuid4()), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = key.sign(signed_message(tid, when, webhook_id, d.body), padding.PKCS1v15(),
                   hashes.SHA256())
    return {"PAYPAL-TRANSMISSION-ID": tid, "PAYPAL-TRANSMISSION-TIME": when,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(sig).decode(),
            "PAYPAL-CERT-URL": cert_url}


def store_down(database_url: str) -> Callable[[], None]:
    """Take the store down for real; the function that brings it back.

    PostgreSQL: the database stops accepting connections and paywire's are terminated.
    SQLite (an embedded file has no server to stop): the inbox table is renamed away, so every
    ingest unit of work fails as on a broken store, and renamed back to restore it. DynamoDB
    (moto): the table is backed up and deleted, every call then failing, and restored from the
    backup under its name.
    """
    if database_url.startswith("dynamodb://"):
        return _dynamodb_down(database_url.removeprefix("dynamodb://"))
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = str(url.database)

        def rename(old: str, new: str) -> None:
            conn = sqlite3.connect(path, isolation_level=None, timeout=10)
            try:
                conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
            finally:
                conn.close()

        rename("inbox_events", "inbox_events_down")
        return lambda: rename("inbox_events_down", "inbox_events")
    admin = sa.create_engine(sa.make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT",
                             poolclass=sa.NullPool)
    name = url.database

    def allow(yes: bool) -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(yes).lower()}')
            if not yes:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = :name AND pid <> pg_backend_pid()"),
                             {"name": name})

    allow(False)

    def restore() -> None:
        allow(True)
        admin.dispose()

    return restore


def _dynamodb_down(table: str) -> Callable[[], None]:
    """Back the table up and delete it; the function that restores it (same name, same items,
    same indexes; TTL is enabled again as `ensure_table` would)."""
    import boto3

    from paywire.store.dynamo import TTL_ATTRIBUTE

    client = boto3.client("dynamodb")  # the module's AWS environment: the moto server
    backup = client.create_backup(TableName=table, BackupName=f"{table}-down")
    client.delete_table(TableName=table)

    def restore() -> None:
        arn = backup["BackupDetails"]["BackupArn"]
        client.restore_table_from_backup(TargetTableName=table, BackupArn=arn)
        client.update_time_to_live(TableName=table, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": TTL_ATTRIBUTE})
        client.close()

    return restore
