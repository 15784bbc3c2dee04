"""Providers as plug-ins: a toy provider in its own package (`tests/toyprovider`), registered as
a kit, is offered end to end by the unchanged composition root and API: an order created at it,
its signed webhook at `POST /webhooks/toy` verified, stored once and applied, an unsigned one
refused and recorded. paywire's own kits keep their paths and their 404 when not offered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from apikit import ADMIN, API_KEY, assert_error, sqlite_url
from paywire.bootstrap import build, create_app
from paywire.bootstrap.kits import (
    ENTRY_POINT_GROUP,
    kit_named,
    kit_names,
    register_kit,
    unregister_kit,
)
from paywire.domain.errors import ConfigError
from paywire.settings import Settings
from paywire.testing import ServerThread
from toyprovider import SIGNATURE, TRANSMISSION, ToyKit, ToySettings, sign

SECRET = "toy-webhook-secret"


@pytest.fixture
def toy_kit() -> Iterator[ToyKit]:
    """The toy kit registered for the test, withdrawn after it."""
    kit = ToyKit(ToySettings(secret=SecretStr(SECRET), page_url="https://toy.example"))
    register_kit(kit)
    try:
        yield kit
    finally:
        unregister_kit(kit.name)


def toy_settings(tmp_path: Path, providers: list[str]) -> Settings:
    """A shop offering `providers` on an embedded database, no background work."""
    return Settings.load(_env_file=None, providers=providers, data_dir=tmp_path,
                         database_url=sqlite_url(tmp_path), api_keys=[API_KEY],
                         return_url="https://shop.example/return",
                         cancel_url="https://shop.example/cancel", truth_fetch_enabled=False,
                         reconcile_enabled=False, outbox_worker_enabled=False)


@pytest.fixture
def toy_shop(tmp_path: Path, toy_kit: ToyKit) -> Iterator[httpx.Client]:
    """paywire on a loopback port offering only the toy provider."""
    server = ServerThread(create_app(toy_settings(tmp_path, ["toy"]), background_tasks=False))
    server.start(timeout=30)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        server.stop()


def deliver(client: httpx.Client, event: dict[str, Any], *, delivery: str,
            signed: bool = True) -> httpx.Response:
    """POST `event` to the toy's webhook path, signed as the toy service signs."""
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", TRANSMISSION: delivery}
    if signed:
        headers[SIGNATURE] = sign(SECRET, body)
    return client.post("/webhooks/toy", content=body, headers=headers)


def test_a_toy_provider_kit_takes_an_order_and_its_signed_webhook(
        toy_shop: httpx.Client, toy_kit: ToyKit) -> None:
    """An order is created at the toy provider; its signed payment webhook is verified, stored
    and applied once (the repeat is a duplicate), completing the order."""
    created = toy_shop.post("/v1/checkout/orders",
                            json={"items": [{"sku": "mug", "quantity": 2}]})
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["provider_order_id"] == f"TOY-{order['id']}"
    assert order["approve_url"] == f"https://toy.example/pay/TOY-{order['id']}"
    [toy] = toy_kit.built
    assert f"TOY-{order['id']}" in toy.created
    event = {"id": "EV-1", "event_type": "payment.completed", "order_id": order["id"],
             "capture_id": "CAP-1", "amount": {"currency": "USD", "value": "25.00"}}
    first = deliver(toy_shop, event, delivery="D-1")
    assert (first.status_code, first.json()) == (200, {"outcome": "applied", "event_id": "EV-1"})
    again = deliver(toy_shop, event, delivery="D-2")
    assert (again.status_code, again.json()) == (200, {"outcome": "duplicate",
                                                       "event_id": "EV-1"})
    seen = toy_shop.get(f"/v1/orders/{order['id']}", headers=ADMIN)
    assert seen.status_code == 200, seen.text
    assert (seen.json()["status"], seen.json()["provider"]) == ("COMPLETED", "toy")


def test_an_unsigned_toy_delivery_is_refused_and_recorded(toy_shop: httpx.Client) -> None:
    """A toy delivery without its signature, or with a wrong one, is refused 400 and each is
    recorded in the rejection log under the toy provider."""
    event = {"id": "EV-FORGED", "event_type": "payment.completed", "order_id": "ord_x",
             "capture_id": "CAP-X", "amount": {"currency": "USD", "value": "1.00"}}
    unsigned = deliver(toy_shop, event, delivery="D-UNSIGNED", signed=False)
    error = assert_error(unsigned, 400, "webhook_rejected", "unsigned")
    assert error["details"]["check"] == "headers"
    body = json.dumps(event).encode()
    forged = toy_shop.post("/webhooks/toy", content=body, headers={
        TRANSMISSION: "D-FORGED", SIGNATURE: sign("another-secret", body)})
    assert assert_error(forged, 400, "webhook_rejected", "forged")["details"]["check"] == (
        "signature")
    page = toy_shop.get("/v1/admin/webhook-rejections", headers=ADMIN).json()["data"]
    assert {(r["provider"], r["transmission_id"], r["check"], r["event_id"]) for r in page} == {
        ("toy", "D-UNSIGNED", "headers", "EV-FORGED"),
        ("toy", "D-FORGED", "signature", "EV-FORGED")}


def test_providers_the_shop_does_not_offer_answer_404(toy_shop: httpx.Client) -> None:
    """The one delivery route answers 404 with the standard error body for paywire's own
    providers when not offered and for names no kit has."""
    for name in ("paypal", "aps", "stripe"):
        answer = toy_shop.post(f"/webhooks/{name}", content=b"{}",
                               headers={"Content-Type": "application/json"})
        assert name in assert_error(answer, 404, "not_found", name)["message"]


def test_kits_are_collected_by_name(toy_kit: ToyKit) -> None:
    """paywire's own kits come first; a registered kit is found by name until withdrawn, a
    second kit under a taken name is refused, and an unknown name fails naming the setting."""
    assert kit_names()[:2] == ["paypal", "aps"]
    assert kit_named("toy") is toy_kit
    assert kit_named("paypal").confirm_claims and not kit_named("aps").confirm_claims
    with pytest.raises(ConfigError, match="already registered"):
        register_kit(ToyKit())
    with pytest.raises(ConfigError, match="PAYWIRE_PROVIDERS names 'stripe'"):
        kit_named("stripe")


def test_an_unknown_provider_fails_at_start_up(tmp_path: Path) -> None:
    """A shop naming a provider no kit provides does not start: the error names the setting."""
    with pytest.raises(ConfigError, match="PAYWIRE_PROVIDERS names 'nosuch'"):
        asyncio.run(build(toy_settings(tmp_path, ["nosuch"])))


def test_an_installed_package_offers_its_kit_through_an_entry_point(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution announcing a kit under the `paywire.providers` entry-point group is found
    by name without any registration in code."""
    info = tmp_path / "paywire_toy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: paywire-toy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntoy = toyprovider.kit:ToyKit\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "toy" not in kit_names()
    try:
        kit = kit_named("toy")
        assert isinstance(kit, ToyKit) and kit_names()[-1] == "toy"
    finally:
        unregister_kit("toy")
