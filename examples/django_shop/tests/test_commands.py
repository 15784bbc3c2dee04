"""`manage.py paywire ...`: paywire's own commands, reading settings.PAYWIRE and the project's
database (no PAYWIRE_* variable is set here)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import threading
import time
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from shop.models import Shipment

from paywire.contrib.django import conf, runtime
from paywire.contrib.django.models import ProcessedMessage
from paywire.domain.facts import Announcement
from paywire.store import migrate
from paywire.store.sql import SqlStore

pytestmark = pytest.mark.usefixtures("products")  # the site: emulator, catalog, database


def test_migrate_reconcile_and_orders(capsys: pytest.CaptureFixture[str]) -> None:
    """paywire_migrate reports the schema's revision in the project's database; reconcile and
    `paywire orders list` run against it."""
    call_command("paywire_migrate")
    said = " ".join(capsys.readouterr().out.split())  # rich wraps to the terminal
    assert f"{conf.paywire_settings().database_url} is at revision {migrate.head()}" in said
    assert migrate.current(conf.paywire_settings().database_url) == migrate.head()
    call_command("paywire_reconcile", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 0
    call_command("paywire", "orders", "list", "--json")
    assert isinstance(json.loads(capsys.readouterr().out)["data"], list)


def test_doctor_checks_the_projects_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """paywire_doctor's settings and database checks pass on the project's settings."""
    try:
        call_command("paywire_doctor", "--json")
    except CommandError as exc:  # a check beyond these may fail (no public webhook URL here)
        assert exc.returncode == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["settings"]["status"] == "ok"
    assert checks["database"]["status"] == "ok", checks["database"]


def test_a_bad_setting_is_a_usage_error_naming_its_key(settings: object) -> None:
    """A command refuses settings that cannot work: exit 2, the key named."""
    settings.PAYWIRE = {**settings.PAYWIRE, "OUTBOX_BATCH": 0}  # type: ignore[attr-defined]
    with pytest.raises(CommandError) as caught:
        call_command("paywire_reconcile", "--json", skip_checks=True)
    assert caught.value.returncode == 2


def test_worker_delivers_into_the_shops_transaction() -> None:
    """paywire_worker delivers a waiting announcement through the shop's fulfilment (one
    shipment) until SIGTERM, then exits 0."""
    runtime.stop()  # no other deliverer in this process (the next request starts it again)
    order_id, message_id = f"ord_w{secrets.token_hex(4)}", f"msg_{secrets.token_hex(16)}"

    async def announce() -> None:
        store = SqlStore(conf.paywire_settings().database_url)
        try:
            async with store.transaction() as uow:
                await uow.add_announcement(Announcement(
                    key=f"order.completed:{order_id}", type="order.completed",
                    order_id=order_id, payload={"type": "order.completed", "order_id": order_id,
                                                "amount": "3.99", "currency": "USD"}),
                    message_id, datetime.now(UTC))
        finally:
            await store.close()

    asyncio.run(announce())

    def stop_once_delivered() -> None:
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                if ProcessedMessage.objects.filter(message_id=message_id).exists():
                    break
                time.sleep(0.05)
        finally:
            connections.close_all()  # this thread's own connection
            os.kill(os.getpid(), signal.SIGTERM)  # the worker's own stop signal

    # Until the worker installs its own handler (and should it fail first), SIGTERM is ignored
    # here rather than ending the test run.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    stopper = threading.Thread(target=stop_once_delivered)
    stopper.start()
    try:
        call_command("paywire_worker", "--interval", "0.05")
    finally:
        stopper.join()
        signal.signal(signal.SIGTERM, previous)
    assert Shipment.objects.filter(paywire_order_id=order_id).count() == 1
    assert ProcessedMessage.objects.get(message_id=message_id).type == "order.completed"
