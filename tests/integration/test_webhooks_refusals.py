"""Webhook deliveries paywire refuses, over real HTTP, and how operators see them.

Forged and altered deliveries are built from genuine ones the emulator sent (or signed with a key
of the test's own); each is refused with the check that failed and its likely cause, recorded
once per transmission id, listed by the admin API and by `paywire webhooks rejections`. Run on
SQLite and PostgreSQL on the stack in `webhookstack`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from apikit import ADMIN, Paywire, buy
from paywire.domain.order import OrderStatus
from paywire.testing import EmulatorServer
from testkit import two_app_config
from webhookkit import Delivery, confirmed, delivery, order, post, quiet, rejections, transmissions
from webhookstack import BODY_LIMIT, Stack, backend_database, forge, open_stack, sent_to

S = OrderStatus


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A fresh database for the module, on each backend."""
    data_dir = tmp_path_factory.mktemp(f"refusals-{request.param}")
    with backend_database(request.param, data_dir) as url:
        yield url, data_dir


@pytest.fixture(scope="module")
def emulator(database: tuple[str, Path]) -> Iterator[EmulatorServer]:
    """The emulator (two apps) of one backend's run; its responses are checked against
    PayPal's specs after each test."""
    server = EmulatorServer(two_app_config())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(emulator: EmulatorServer, database: tuple[str, Path]) -> Iterator[Stack]:
    """The two paywires on the module's database."""
    with open_stack(emulator, *database) as s:
        yield s


@asynccontextmanager
async def client(pw: Paywire) -> AsyncIterator[httpx.AsyncClient]:
    """A client for one paywire's API."""
    async with httpx.AsyncClient(base_url=pw.url, timeout=30) as c:
        yield c


# --- forged, altered, misdirected -------------------------------------------------------------


def _flip_one_byte(body: bytes) -> bytes:
    i = body.index(b'"summary":"') + len(b'"summary":"')
    return body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]


async def test_forged_and_altered_deliveries_are_refused_and_explained(stack: Stack) -> None:
    """One byte changed, a re-serialised body, a forged signature, a foreign cert URL (never
    fetched), another environment's webhook id, a simulator event: each refused (4xx) with the
    check and likely cause, recorded once per transmission id, and nothing else changes."""
    s = stack
    async with client(s.paywire) as c:
        bought = await buy(c, s.emulator)
    capture_id = await s.paypal.capture(bought["provider_order_id"])
    refund_id = await s.paypal.refund(capture_id, "1.00")
    await quiet(s.emulator)
    await confirmed(s.db)
    before = await order(s.db, bought["id"])
    got = sent_to(s, s.paywire.webhook_url, bought["provider_order_id"])
    other = sent_to(s, s.other_url, refund_id)
    approved, captured = got["CHECKOUT.ORDER.APPROVED"], got["PAYMENT.CAPTURE.COMPLETED"]
    completed = got["CHECKOUT.ORDER.COMPLETED"]
    genuine_cert = completed.headers["PAYPAL-CERT-URL"]
    foreign_cert = f"{s.recorder.url}/v1/notifications/certs/CERT-360caa42-fca2a594-0badc0de"
    forged = forge(completed, genuine_cert, s.webhook_id)
    foreign = forge(completed, foreign_cert, s.webhook_id)
    cases: list[tuple[str, Delivery, bytes | None, dict[str, str], str, str]] = [
        ("one byte", approved, _flip_one_byte(approved.body), {}, "signature",
         "forged or corrupted"),
        ("re-serialised", captured, json.dumps(json.loads(captured.body)).encode(), {},
         "signature", "re-serialised"),
        ("forged", completed, None, forged, "signature", "forged"),
        ("foreign cert", completed, None, foreign, "cert_url", "not allowed"),
        ("other webhook id", other["PAYMENT.CAPTURE.REFUNDED"], None, {}, "signature",
         s.other_id),
    ]
    refused: dict[str, str] = {}
    for what, d, body, headers, check, cause in cases:
        for _ in range(2):  # the same bad delivery twice: one rejection row
            r = await post(s.paywire.webhook_url, d, body=body, headers=headers)
            assert r.status_code == 400, f"{what}: {r.text}"
            error = r.json()["error"]
            assert error["code"] == "webhook_rejected", what
            assert error["details"]["check"] == check, f"{what}: {error}"
            assert cause in error["details"]["likely_cause"], f"{what}: {error}"
        refused[headers.get("PAYPAL-TRANSMISSION-ID", d.transmission_id)] = check
    assert not [req for req in s.recorder.requests if req[0] == "GET"], "foreign cert fetched"
    await s.paypal.call("POST", "/v1/notifications/simulate-event", {
        "url": s.paywire.webhook_url, "event_type": "PAYMENT.CAPTURE.COMPLETED"}, expect=(202,))
    await quiet(s.emulator)
    simulated = next(t for t in transmissions(s.emulator, s.paywire.webhook_url) if t.simulated)
    refused[simulated.id] = "signature"
    log = [r for r in await rejections(s.db) if r.transmission_id in refused]
    assert sorted(r.transmission_id for r in log) == sorted(refused)  # once each
    assert "simulator" in next(r.likely_cause or "" for r in log
                               if r.transmission_id == simulated.id)
    after = await order(s.db, bought["id"])
    assert after.version == before.version and after.status is S.PARTIALLY_REFUNDED
    await _listed_by_admin_api(s, refused)
    await _listed_by_cli(s, refused)


async def _listed_by_admin_api(s: Stack, refused: dict[str, str]) -> None:
    """GET /v1/admin/webhook-rejections pages through every row once (API key required)."""
    async with client(s.paywire) as c:
        assert (await c.get("/v1/admin/webhook-rejections")).status_code == 401
        seen: list[str] = []
        cursor = None
        while True:
            page = await c.get("/v1/admin/webhook-rejections", headers=ADMIN,
                               params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            seen += [row["transmission_id"] for row in page.json()["data"]
                     if row["transmission_id"] in refused]
            assert all(row["check"] for row in page.json()["data"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
    assert sorted(seen) == sorted(refused)


async def _listed_by_cli(s: Stack, refused: dict[str, str]) -> None:
    """`paywire webhooks rejections` shows each refusal, against the same database."""
    from typer.testing import CliRunner

    from paywire.cli import app

    env = {"PAYWIRE_DATABASE_URL": s.db, "PAYWIRE_DATA_DIR": str(s.data_dir), "COLUMNS": "250"}
    result = await asyncio.to_thread(CliRunner().invoke, app,
                                     ["webhooks", "rejections", "--limit", "200"], env=env)
    assert result.exit_code == 0, result.output
    for tid, check in refused.items():
        assert tid in result.output and check in result.output


async def test_missing_headers_and_oversized_bodies(stack: Stack) -> None:
    """No transmission headers → 400; over the webhook body limit → 413 before verification
    (declared or chunked); the general API body limit does not apply to webhooks."""
    s = stack
    d = next(delivery(t) for t in transmissions(s.emulator, s.paywire.webhook_url))
    r = await post(s.paywire.webhook_url, d, drop=("PAYPAL-TRANSMISSION-SIG",))
    assert r.status_code == 400 and r.json()["error"]["details"]["check"] == "headers", r.text
    padded = d.body + b" " * (20 * 1024)  # over the API's 16 KiB, under the webhook's 32 KiB
    r = await post(s.paywire.webhook_url, d, body=padded)
    assert r.status_code == 400 and r.json()["error"]["details"]["check"] == "signature"
    huge = d.body + b" " * BODY_LIMIT
    r = await post(s.paywire.webhook_url, d, body=huge)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large", r.text

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * (BODY_LIMIT // 4)

    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(s.paywire.webhook_url, content=chunks(), headers=d.headers)
    assert r.status_code == 413 and "content-length" not in r.request.headers


async def test_postback_refusals_are_explained_too(stack: Stack) -> None:
    """In postback mode PayPal's FAILURE for a re-serialised body is refused (4xx) and the
    local diagnosis names the cause; the genuine bytes are then accepted."""
    s = stack
    async with client(s.postback) as c:
        bought = await buy(c, s.emulator)
    await quiet(s.emulator)
    d = sent_to(s, s.postback.webhook_url, bought["provider_order_id"])["CHECKOUT.ORDER.APPROVED"]
    rewritten = json.dumps(json.loads(d.body)).encode()  # a framework's default
    r = await post(s.postback.webhook_url, d, body=rewritten)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["check"] == "signature"
    assert "re-serialised" in r.json()["error"]["details"]["likely_cause"]
    again = await post(s.postback.webhook_url, d)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate", again.text


