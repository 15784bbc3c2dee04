"""paywire's pytest plugin for shops (`paywire.testing.plugin`), used as a shop would: its
fixtures drive a paywire mounted in a host app against the emulator, and each helper is checked
against what paywire itself makes of it (a signed delivery accepted, a forged one refused, an
expired order unapprovable, a fault rule firing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import paywire
from paywire.bootstrap.embed import Embedded
from paywire.settings import Settings
from paywire.testing import Emulated, EmulatorError, ServerThread, free_port

PREFIX = "/pay"


@contextmanager
def shop(settings_for: Callable[..., Settings], serve: Callable[..., ServerThread],
         **overrides: Any) -> Iterator[tuple[httpx.Client, Embedded]]:
    """A host app with paywire mounted, served; a client for it and the embedded paywire."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = settings_for(paywire_url=f"{base}{PREFIX}", **overrides)
    app = FastAPI()
    pw = paywire.mount(app, PREFIX, settings)
    serve(app, port=port)
    with httpx.Client(base_url=f"{base}{PREFIX}", timeout=10) as client:
        yield client, pw


def checkout(client: httpx.Client) -> dict[str, Any]:
    created = client.post("/v1/checkout/orders", json={"items": [{"sku": "mug", "quantity": 1}]})
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    return order


def test_a_redelivered_event_is_verified_and_a_forged_one_refused(
        paywire_emulator: Emulated, paywire_settings: Callable[..., Settings],
        paywire_serve: Callable[..., ServerThread], paywire_webhooks: Any) -> None:
    with shop(paywire_settings, paywire_serve) as (client, pw):
        order = checkout(client)
        paywire_emulator.approve(order)
        captured = client.post(f"/v1/checkout/orders/{order['id']}/capture")
        assert captured.json()["status"] == "COMPLETED", captured.text
        [event] = paywire_emulator.events("PAYMENT.CAPTURE.COMPLETED", order)
        url = f"http://127.0.0.1:{client.base_url.port}{pw.path('/webhooks/paypal')}"
        webhook_id = pw.settings.paypal.webhook_id
        assert webhook_id is not None

        again = paywire_webhooks.redeliver(event["id"], url, webhook_id=webhook_id).send()
        assert again.status_code == 200, again.text
        assert again.json()["event_id"] == event["id"]

        forged = paywire_webhooks.paypal(url, event, webhook_id=webhook_id)
        forged.body = forged.body.replace(b"COMPLETED", b"DECLINED", 1)
        refused = forged.send()
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["details"]["check"] == "signature"

        other = paywire_webhooks.paypal(url, event, webhook_id="WH-SOMEONE-ELSES").send()
        assert other.status_code == 400, other.text


def test_aps_feedback_is_signed_with_the_response_phrase(
        paywire_settings: Callable[..., Settings], paywire_serve: Callable[..., ServerThread],
        paywire_webhooks: Any) -> None:
    with shop(paywire_settings, paywire_serve, aps=True) as (client, pw):
        url = f"http://127.0.0.1:{client.base_url.port}{pw.path('/webhooks/aps')}"
        params = {"command": "PURCHASE", "merchant_reference": "unknown-order",
                  "response_code": "14000", "status": "14", "fort_id": "169996200000000001",
                  "amount": "1250", "currency": "USD", "response_message": "Success"}
        signed = paywire_webhooks.aps(url, params)
        assert "signature" in (signed.body.decode())
        accepted = signed.send()
        assert accepted.status_code == 200, accepted.text  # verified (an order not of ours)
        tampered = paywire_webhooks.aps(url, params)
        tampered.body = tampered.body.replace(b"1250", b"9999")
        refused = tampered.send()
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "webhook_rejected"


def test_the_clock_expires_an_order_and_a_fault_rule_fires(
        paywire_emulator: Emulated, paywire_settings: Callable[..., Settings],
        paywire_serve: Callable[..., ServerThread], paywire_clock: Any,
        paywire_faults: Any) -> None:
    with shop(paywire_settings, paywire_serve, paypal_max_retries=0) as (client, _):
        stale = checkout(client)
        before = paywire_clock.now()
        assert paywire_clock.advance(4 * 3600) >= before + 4 * 3600
        with pytest.raises(EmulatorError, match="404"):  # expired: gone
            paywire_emulator.approve(stale)

        order = checkout(client)
        paywire_emulator.approve(order)
        rule = paywire_faults.add(action="error", method="POST",
                                  path="^/v2/checkout/orders/.*/capture$", status=503)
        failed = client.post(f"/v1/checkout/orders/{order['id']}/capture")
        assert failed.status_code >= 500, failed.text  # every retry of paywire's met the rule
        [fired] = [r["fired"] for r in paywire_faults.list() if r["id"] == rule["id"]]
        assert fired >= 1
        paywire_faults.clear()
        assert paywire_faults.list() == []
        done = client.post(f"/v1/checkout/orders/{order['id']}/capture")
        assert done.status_code == 200 and done.json()["status"] == "COMPLETED", done.text


def test_a_declined_card_leaves_the_order_unpaid(
        paywire_emulator: Emulated, paywire_settings: Callable[..., Settings],
        paywire_serve: Callable[..., ServerThread]) -> None:
    with shop(paywire_settings, paywire_serve) as (client, _):
        order = checkout(client)
        paywire_emulator.decline(order)
        answer = client.post(f"/v1/checkout/orders/{order['id']}/capture")
        assert answer.status_code in (200, 402, 422), answer.text
        assert client.get(f"/v1/orders/{order['id']}").json()["status"] == "DENIED"
