"""Secret hygiene: a full flow with every logger at DEBUG leaks no secret anywhere it can be read.

paywire runs over real HTTP against the emulator: an order created, approved, captured and
refunded through the API, PayPal's webhooks delivered to it, the outbox delivering to a shop
with a `whsec_` secret, and a second paywire whose token fetch fails on a wrong client secret.
The PayPal client secrets, every access token the emulator issued, the API key, the `whsec_`
secret, the emulator's webhook signing key, and the APS access code and SHA phrases (a card
paid through APS, refunded, forged feedback and a forged return page) must appear in no log
record, no captured stdout/stderr, no error body the test received, and no repr/str of the
settings or the wired container and its parts.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from apikit import ADMIN, API_KEY, buy, serve, settings_for, sqlite_url
from apskit import aps_overrides, aps_state, pay_on_page, point_feedback
from paywire.bootstrap import build
from paywire.testing import EmulatorServer, free_port
from testkit import CLIENT_ID, CLIENT_SECRET
from webhookkit import PayPal, Recorder, eventually, quiet

WHSEC_RAW = b"paywire-hygiene-shop-secret-0123"
WHSEC = "whsec_" + base64.b64encode(WHSEC_RAW).decode()
WRONG_SECRET = "wrong-client-secret-that-must-not-leak-42"


def _secrets(emulator: EmulatorServer) -> dict[str, str]:
    """Every secret of the run, by name (the signing key as its PEM body lines)."""
    cred = aps_state(emulator).config.credentials
    found = {"client secret": CLIENT_SECRET, "wrong client secret": WRONG_SECRET,
             "api key": API_KEY, "whsec secret": WHSEC,
             "whsec key": WHSEC.removeprefix("whsec_"), "whsec raw": WHSEC_RAW.decode(),
             "aps access code": cred.access_code, "aps request phrase": cred.request_phrase,
             "aps response phrase": cred.response_phrase}
    tokens = list(emulator.emu.tokens)
    assert tokens, "the emulator issued no token"
    found.update({f"access token {i}": t for i, t in enumerate(tokens)})
    pem = emulator.emu.deliverer.pki.leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    lines = [line for line in pem.splitlines() if not line.startswith("-----")]
    found.update({f"signing key line {i}": line for i, line in enumerate(lines)})
    return found


async def test_no_secret_reaches_logs_error_bodies_or_reprs(
        emulator: EmulatorServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Create → approve → capture → refund, webhooks, an outbox delivery and a failing token
    fetch, all logged at DEBUG: no secret in any log, error body or repr."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    shop = Recorder()
    shop.server.start()
    errors: list[str] = []
    reprs: list[str] = []
    try:
        paypal = PayPal(emulator, CLIENT_ID, CLIENT_SECRET)
        port = free_port()
        webhook_id = await paypal.subscribe(f"http://127.0.0.1:{port}/webhooks/paypal")
        db = sqlite_url(tmp_path)
        shop_settings = {"fulfilment_url": f"{shop.url}/fulfil", "fulfilment_secret": WHSEC,
                         "outbox_worker_enabled": True, "outbox_interval_seconds": 0.05,
                         "paypal_webhook_id": webhook_id, **aps_overrides(emulator)}
        with serve(emulator, db, tmp_path, listen_port=port, **shop_settings) as pw:
            async with httpx.AsyncClient(base_url=pw.url, timeout=30) as c:
                order = await buy(c, emulator)
                captured = await c.post(f"/v1/checkout/orders/{order['id']}/capture")
                assert captured.status_code == 200, captured.text
                refund = await c.post(f"/v1/orders/{order['id']}/refunds", headers=ADMIN,
                                      json={"amount": "5.00", "reason": "hygiene"})
                assert refund.status_code == 201, refund.text
                point_feedback(emulator, pw.url)
                card = await c.post("/v1/checkout/orders", json={
                    "items": [{"sku": "mug", "quantity": 1}], "provider": "aps",
                    "customer_email": "b@example.com"})
                assert card.status_code == 201, card.text
                with httpx.Client(timeout=30) as browser:
                    returned = pay_on_page(browser, card.json()["checkout_form"])
                await eventually(lambda: _paid(c, card.json()["id"]), "the card payment")
                refund = await c.post(f"/v1/orders/{card.json()['id']}/refunds", headers=ADMIN,
                                      json={"amount": "1.00"})
                assert refund.status_code == 201, refund.text
                forged = {**returned, "amount": "1"}
                for bad in (await c.get("/v1/orders", headers={"Authorization": "Bearer no"}),
                            await c.get("/v1/orders/ord_missing", headers=ADMIN),
                            await c.post("/webhooks/paypal", content=b"{}"),
                            await c.post("/webhooks/aps", json=forged),
                            await c.post("/v1/aps/return", data=forged)):
                    assert bad.status_code >= 400
                    errors.append(bad.text)
            await quiet(emulator)
            await eventually(lambda: _fulfilled(shop), "the shop to hear of the order")
        wrong = {"paypal_client_secret": WRONG_SECRET, "paypal_max_retries": 0}
        with serve(emulator, sqlite_url(tmp_path / "wrong"), tmp_path / "wrong", **wrong) as pw2:
            async with httpx.AsyncClient(base_url=pw2.url, timeout=30) as c:
                failed = await c.post("/v1/checkout/orders",
                                      json={"items": [{"sku": "mug", "quantity": 1}]})
                assert failed.status_code >= 400, failed.text
                errors.append(failed.text)
        settings = settings_for(emulator, db, tmp_path, **shop_settings)
        container = await build(settings)
        try:
            await container.provider.get_order(order["provider_order_id"])  # holds a token
            reprs.extend(f(x) for x in (settings, container, container.provider,
                                        container.store, container.truth, container.outbox,
                                        container.webhooks, container.verifier,
                                        container.reconciler, container.checkout,
                                        container.aps, container.aps_webhooks)
                         for f in (repr, str))
        finally:
            await container.aclose()
    finally:
        shop.server.stop()
    out, err = capfd.readouterr()
    places = {"logs": caplog.text, "stdout": out, "stderr": err,
              "error bodies": "\n".join(errors), "reprs": "\n".join(reprs)}
    assert caplog.records, "nothing was logged"
    leaks = [f"{name} in {where}" for name, secret in _secrets(emulator).items()
             for where, text in places.items() if secret in text]
    assert not leaks, leaks


async def _paid(c: httpx.AsyncClient, order_id: str) -> bool:
    return (await c.get(f"/v1/orders/{order_id}")).json()["status"] == "COMPLETED"


async def _fulfilled(shop: Recorder) -> bool:
    return any(path == "/fulfil" for _, path, _, _ in shop.requests)
