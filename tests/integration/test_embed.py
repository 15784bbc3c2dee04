"""paywire mounted inside a host FastAPI app (`paywire.mount` / `paywire.embed`): the host's
lifespan runs paywire's container and background jobs once, its routes and webhooks answer
under the mount prefix, and the shop's own function is fulfilled from the outbox.

Everything over real HTTP: the host app served by uvicorn on loopback, the PayPal emulator,
an SQLite file.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

import paywire
from apikit import API_KEY, approve, settings_for, sqlite_url
from paywire.bootstrap.embed import AlreadyRunning, Embedded
from paywire.testing import EmulatorServer, ServerThread, free_port
from webhookkit import eventually

PREFIX = "/pay"


class Fulfilled:
    """The host shop's fulfilment function: each message once, by its id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.seen: set[str] = set()

    def __call__(self, message_id: str, type_: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append((message_id, type_, payload))
            self.seen.add(message_id)


async def subscribe(emulator: EmulatorServer, url: str) -> str:
    """Register `url` at the emulator for every event type; the webhook id."""
    async with httpx.AsyncClient(base_url=emulator.url) as client:
        token = await client.post("/v1/oauth2/token", data={"grant_type": "client_credentials"},
                                  auth=(emulator.app.emu.config.apps[0].client_id,
                                        emulator.app.emu.config.apps[0].client_secret))
        created = await client.post(
            "/v1/notifications/webhooks", json={"url": url, "event_types": [{"name": "*"}]},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"})
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


async def test_a_mounted_paywire_takes_a_checkout_to_fulfilment(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    port = free_port()
    host_url = f"http://127.0.0.1:{port}"
    webhook_id = await subscribe(emulator, f"{host_url}{PREFIX}/webhooks/paypal")
    settings = settings_for(emulator, sqlite_url(tmp_path), tmp_path,
                            paypal_webhook_id=webhook_id, outbox_interval_seconds=0.05)
    started: list[str] = []

    @asynccontextmanager
    async def host_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        started.append("host")
        yield {"shop_name": "mugs"}

    app = FastAPI(lifespan=host_lifespan)

    @app.get("/hello")
    async def hello(request: Request) -> dict[str, Any]:
        return {"shop": request.state.shop_name, "paywire": pw.is_running}

    fulfilled = Fulfilled()
    pw = paywire.mount(app, PREFIX, settings, fulfil=fulfilled)
    assert not pw.is_running
    assert pw.path("webhooks/paypal") == "/pay/webhooks/paypal"
    # No fulfilment setting: embedded with a function, the outbox worker runs in the host.
    assert pw.settings.outbox_worker_enabled

    server = ServerThread(app, port=port)
    server.start(timeout=30)
    try:
        async with httpx.AsyncClient(base_url=host_url, timeout=10) as client:
            hello_answer = (await client.get("/hello")).json()
            assert hello_answer == {"shop": "mugs", "paywire": True}
            assert started == ["host"]
            created = await client.post(f"{PREFIX}/v1/checkout/orders",
                                        json={"items": [{"sku": "mug", "quantity": 2}]})
            assert created.status_code == 201, created.text
            order = created.json()
            await approve(emulator, order["provider_order_id"])
            captured = await client.post(f"{PREFIX}/v1/checkout/orders/{order['id']}/capture")
            assert captured.status_code == 200, captured.text
            assert captured.json()["status"] == "COMPLETED"

            def completed() -> list[tuple[str, str, dict[str, Any]]]:
                return [c for c in fulfilled.calls if c[1] == "order.completed"]

            async def fulfilled_once() -> bool:
                return bool(completed())

            await eventually(fulfilled_once, "order.completed delivered to the function")
            message_id, _, payload = completed()[0]
            assert payload["order_id"] == order["id"]

            # PayPal's webhooks reach the mounted endpoint, verified (200), and are applied once:
            # the capture's event finds the order already completed, no second announcement.
            def delivered() -> list[int | None]:
                return [a.status for a in emulator.emu.deliverer.log
                        if a.url.endswith(f"{PREFIX}/webhooks/paypal")]

            async def capture_event_answered() -> bool:
                return any(e["event_type"] == "PAYMENT.CAPTURE.COMPLETED"
                           for e in emulator.emu.events.values()) and bool(delivered())

            await eventually(capture_event_answered, "webhooks delivered to the mount")
            assert set(delivered()) == {200}
            admin = await client.get(f"{PREFIX}/v1/orders/{order['id']}",
                                     headers={"Authorization": f"Bearer {API_KEY}"})
            assert admin.status_code == 200 and admin.json()["status"] == "COMPLETED"
            await asyncio.sleep(0.3)  # a few more outbox rounds: nothing is delivered twice
            assert [c[0] for c in completed()] == [message_id]
            # The host's own paths are the host's; paywire's answer only under the prefix.
            assert (await client.get("/v1/checkout/orders/x")).status_code == 404
    finally:
        server.stop()
    assert not pw.is_running


async def test_the_jobs_start_once_and_a_second_start_is_refused(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    settings = settings_for(emulator, sqlite_url(tmp_path), tmp_path)
    pw = paywire.embed(settings, prefix="pay/")
    assert isinstance(pw, Embedded) and pw.prefix == "/pay"
    with pytest.raises(RuntimeError, match="not running"):
        _ = pw.container
    async with pw.running() as container:
        assert pw.container is container
        with pytest.raises(AlreadyRunning):
            async with pw.running():
                pass
        # Served on its own, the mounted app's lifespan takes the same guard.
        with pytest.raises(AlreadyRunning):
            async with pw.asgi.router.lifespan_context(pw.asgi):
                pass
        assert pw.is_running
    assert not pw.is_running
    async with pw.running():  # stopped, it may start again (a test client per test)
        assert pw.is_running


async def test_settings_may_be_a_mapping_and_an_explicit_worker_switch_is_kept(
        emulator: EmulatorServer, tmp_path: Path) -> None:
    base = settings_for(emulator, sqlite_url(tmp_path), tmp_path)
    values = {"paypal_env": "emulator", "paypal_base_url": emulator.url,
              "paypal_client_id": base.paypal.client_id,
              "paypal_client_secret": base.paypal.client_secret.get_secret_value()
              if base.paypal.client_secret else None,
              "database_url": base.database_url, "data_dir": tmp_path,
              "outbox_worker_enabled": False, "_env_file": None}
    pw = paywire.embed(values, fulfil=Fulfilled())
    assert pw.settings.database_url == base.database_url
    assert not pw.settings.outbox_worker_enabled  # said explicitly: kept
    with pytest.raises(ValueError, match="prefix"):
        paywire.mount(FastAPI(), "/", base)


def test_paths_are_matched_inside_the_mount() -> None:
    from paywire.api.middleware import route_path

    assert route_path({"path": "/pay/webhooks/paypal", "root_path": "/pay"}) == (
        "/webhooks/paypal")
    assert route_path({"path": "/webhooks/paypal", "root_path": ""}) == "/webhooks/paypal"
    assert route_path({"path": "/pay", "root_path": "/pay"}) == "/"
    assert route_path({"path": "/payments/x", "root_path": "/pay"}) == "/payments/x"
