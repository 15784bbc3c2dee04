"""The operator CLI (`paywire orders|refund|events|rejections|outbox|webhooks|doctor`) driven with
typer's runner against a real SQLite store and the emulator, its JSON parsed, its exit codes
checked."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from apikit import approve, settings_for, sqlite_url
from paywire.bootstrap import build
from paywire.cli import app
from paywire.domain.money import Money
from paywire.domain.order import Intent, OrderLine
from paywire.services.webhooks import Disposition
from paywire.settings import DEMO_CATALOG
from paywire.store.sql import SqlStore
from paywire.testing import EmulatorServer, MotoServer, free_port
from testkit import CLIENT_ID, CLIENT_SECRET
from webhookkit import PayPal, delivery, eventually, transmissions


@dataclass
class World:
    """A captured order whose PAYMENT.CAPTURE.COMPLETED webhook paywire stored, and the CLI env."""

    env: dict[str, str]
    database_url: str
    order_id: str
    event_id: str
    webhook_id: str
    hook_url: str


@pytest.fixture
def world(emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """One paid order made through paywire's services, its capture webhook ingested."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    database_url = sqlite_url(tmp_path)
    hook_url = f"http://127.0.0.1:{free_port()}/webhooks/paypal"

    async def go() -> World:
        webhook_id = await PayPal(emulator, CLIENT_ID, CLIENT_SECRET).subscribe(hook_url)
        settings = settings_for(emulator, database_url, tmp_path, paypal_webhook_id=webhook_id,
                                truth_fetch_enabled=False)
        c = await build(settings)
        try:
            order = await c.checkout.create_order(
                [OrderLine("mug", "Mug", 2, Money.parse("12.00", "USD"))], Intent.CAPTURE)
            assert order.provider_order_id is not None
            await approve(emulator, order.provider_order_id)
            await c.checkout.capture(order.id)

            async def sent() -> Any:
                return next((t for t in transmissions(emulator, hook_url)
                             if t.event_type == "PAYMENT.CAPTURE.COMPLETED"), None)

            d = delivery(await eventually(sent, "the capture webhook"))
            outcome = await c.webhooks.receive(d.headers, d.body)
            assert outcome.disposition is Disposition.ACKNOWLEDGE and outcome.event_id, outcome
        finally:
            await c.aclose()
        env = {"PAYWIRE_PAYPAL_ENV": "emulator", "PAYWIRE_PAYPAL_BASE_URL": emulator.url,
               "PAYWIRE_PAYPAL_CLIENT_ID": CLIENT_ID,
               "PAYWIRE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
               "PAYWIRE_DATABASE_URL": database_url, "PAYWIRE_DATA_DIR": str(tmp_path),
               "PAYWIRE_PAYPAL_WEBHOOK_ID": webhook_id, "PAYWIRE_TRUTH_FETCH_ENABLED": "false",
               "PAYWIRE_PAYPAL_RETRY_BACKOFF_SECONDS": "0.01", "COLUMNS": "250"}
        return World(env, database_url, order.id, str(outcome.event_id), webhook_id, hook_url)

    return asyncio.run(go())


def run(w: World, *args: str, code: int = 0, **env: str) -> Result:
    """`paywire ARGS` with the world's environment; asserts the exit code."""
    result = CliRunner().invoke(app, list(args), env={**w.env, **env})
    assert result.exit_code == code, (args, result.exit_code, result.output, result.exception)
    return result


def parsed(result: Result) -> Any:
    """The JSON document a `--json` command printed."""
    return json.loads(result.stdout)


def outbox_ids(w: World) -> list[str]:
    """The order's outbox message ids, via the store port."""
    async def go() -> list[str]:
        store = SqlStore(w.database_url)
        try:
            async with store.transaction() as uow:
                return [m.id for m in await uow.outbox_for_order(w.order_id)]
        finally:
            await store.close()

    return asyncio.run(go())


def kill_one(w: World, status: str = "dead") -> str:
    """Mark one of the order's outbox messages dead (as the worker does after its max age), or
    `queued` (as the drainer does once SQS took it)."""
    async def go() -> str:
        store = SqlStore(w.database_url)
        now = datetime.now(UTC)
        try:
            async with store.transaction() as uow:
                claimed = await uow.claim_outbox("test", now, now + timedelta(minutes=1), 1)
                assert claimed
                assert await uow.finish_outbox(claimed[0].id, "test", status=status, attempts=9,
                                               next_attempt_at=None, last_error="HTTP 500",
                                               now=now)
                return claimed[0].id
        finally:
            await store.close()

    return asyncio.run(go())


def test_orders_list_and_show(world: World) -> None:
    """orders list filters by status and orders show gives lines, history, outbox, refunds."""
    rows = parsed(run(world, "orders", "list", "--json"))["data"]
    assert [(o["id"], o["status"]) for o in rows] == [(world.order_id, "COMPLETED")]
    assert parsed(run(world, "orders", "list", "--status", "completed", "--json"))["data"]
    assert parsed(run(world, "orders", "list", "--status", "CREATED", "--json"))["data"] == []
    run(world, "orders", "list", "--status", "NOPE", code=2)
    assert world.order_id in run(world, "orders", "list").stdout
    shown = parsed(run(world, "orders", "show", world.order_id, "--json"))
    assert set(shown) == {"order", "history", "outbox", "refunds"}
    assert shown["order"]["lines"][0]["sku"] == "mug"
    assert shown["order"]["amount"] == {"currency_code": "USD", "value": "24.00"}
    assert shown["history"] and shown["outbox"] and shown["refunds"] == []
    assert "history" in run(world, "orders", "show", world.order_id).stdout
    assert "no order" in run(world, "orders", "show", "ord_missing", code=1).output


def test_refund_partial_then_over_refund(world: World) -> None:
    """refund --amount refunds through PayPal; more than is left exits 1 with the reason."""
    made = parsed(run(world, "refund", world.order_id, "--amount", "5.00", "--reason",
                      "chipped", "--json"))
    assert made["refund"]["amount"] == {"currency_code": "USD", "value": "5.00"}
    assert made["refund"]["reason"] == "chipped"
    assert made["order"]["status"] == "PARTIALLY_REFUNDED"
    over = run(world, "refund", world.order_id, "--amount", "100.00", code=1)
    assert "refund" in over.output.lower()
    run(world, "refund", "ord_missing", code=1)
    assert "refund" in run(world, "orders", "show", world.order_id).stdout


def test_events_list_show_and_idempotent_replay(world: World) -> None:
    """events list/show read the stored event; replay re-applies it without new announcements."""
    rows = parsed(run(world, "events", "list", "--json"))["data"]
    assert world.event_id in [e["event_id"] for e in rows]
    assert "body" not in rows[0]
    shown = parsed(run(world, "events", "show", world.event_id, "--json"))
    assert shown["body"]["event_type"] == "PAYMENT.CAPTURE.COMPLETED"
    assert shown["order_id"] == world.order_id
    assert "PAYMENT.CAPTURE.COMPLETED" in run(world, "events", "show", world.event_id).stdout
    run(world, "events", "show", "WH-missing", code=1)
    before = outbox_ids(world)
    for _ in range(2):
        out = parsed(run(world, "events", "replay", world.event_id, "--json"))["data"]
        assert out == [{"event_id": world.event_id, "outcome": "applied",
                        "order_id": world.order_id, "note": None}]
    assert outbox_ids(world) == before
    assert len(parsed(run(world, "events", "list", "--json"))["data"]) == len(rows)
    bad = run(world, "events", "replay", world.event_id, "WH-missing", code=1)
    assert "WH-missing: error" in bad.stdout


def test_rejections_list(world: World, emulator: EmulatorServer) -> None:
    """rejections list shows what `webhooks rejections` shows, as JSON too."""
    assert parsed(run(world, "rejections", "list", "--json")) == {"data": []}

    async def forge() -> None:
        settings = settings_for(emulator, world.database_url, Path(world.env["PAYWIRE_DATA_DIR"]),
                                paypal_webhook_id=world.webhook_id, truth_fetch_enabled=False)
        c = await build(settings)
        try:
            await c.webhooks.receive({"PAYPAL-TRANSMISSION-ID": "tx-forged"}, b'{"id":"WH-1"}')
        finally:
            await c.aclose()

    asyncio.run(forge())
    rows = parsed(run(world, "rejections", "list", "--json"))["data"]
    assert [r["transmission_id"] for r in rows] == ["tx-forged"]
    assert rows[0]["check"] and rows[0]["reason"]
    assert "tx-forged" in run(world, "rejections", "list").stdout
    assert "tx-forged" in run(world, "webhooks", "rejections").stdout


def test_outbox_list_and_retry(world: World) -> None:
    """outbox list --status dead shows a dead message; retry revives it once; unknown exits 1."""
    assert parsed(run(world, "outbox", "list", "--status", "dead", "--json")) == {"data": []}
    dead = kill_one(world)
    rows = parsed(run(world, "outbox", "list", "--status", "dead", "--json"))["data"]
    assert [(m["id"], m["last_error"]) for m in rows] == [(dead, "HTTP 500")]
    assert len(parsed(run(world, "outbox", "list", "--json"))["data"]) == len(outbox_ids(world))
    assert dead in run(world, "outbox", "list").stdout
    run(world, "outbox", "list", "--status", "odd", code=2)
    assert "revived" in run(world, "outbox", "retry", dead).stdout
    assert "not dead" in run(world, "outbox", "retry", dead, code=1).output
    run(world, "outbox", "retry", "msg_missing", code=1)
    assert parsed(run(world, "outbox", "list", "--status", "dead", "--json")) == {"data": []}


def test_outbox_list_and_retry_a_queued_message(world: World) -> None:
    """outbox list --status queued shows a message handed to SQS; retry sends it again (pending,
    due now, attempts reset), once."""
    queued = kill_one(world, status="queued")
    rows = parsed(run(world, "outbox", "list", "--status", "queued", "--json"))["data"]
    assert [m["id"] for m in rows] == [queued]
    assert "revived" in run(world, "outbox", "retry", queued).stdout
    assert parsed(run(world, "outbox", "list", "--status", "queued", "--json")) == {"data": []}
    [row] = [m for m in parsed(run(world, "outbox", "list", "--json"))["data"]
             if m["id"] == queued]
    assert row["status"] == "pending" and row["attempts"] == 0
    assert "not dead or queued" in run(world, "outbox", "retry", queued, code=1).output


def test_webhooks_register_list_trigger_delete(world: World, tmp_path: Path) -> None:
    """register writes the id to the env file; list marks ours; trigger simulates; delete."""
    env_file = tmp_path / "paywire.env"
    env_file.write_text("PAYWIRE_PAYPAL_WEBHOOK_ID=old\nOTHER=1\n")
    url = f"http://127.0.0.1:{free_port()}/webhooks/paypal"
    made = parsed(run(world, "webhooks", "register", "--url", url, "--env-file", str(env_file),
                      "--json"))
    assert made["url"] == url and made["event_types"] == ["*"]
    assert env_file.read_text().splitlines() == ["OTHER=1",
                                                 f"PAYWIRE_PAYPAL_WEBHOOK_ID={made['id']}"]
    printed = run(world, "webhooks", "register", "--url", url + "2", "--events",
                  "PAYMENT.CAPTURE.COMPLETED").stdout
    assert "PAYWIRE_PAYPAL_WEBHOOK_ID=" in printed
    run(world, "webhooks", "register", "--url", url, code=1)  # PayPal: URL already exists
    hooks = parsed(run(world, "webhooks", "list", "--json"))["data"]
    assert {h["id"]: h["configured"] for h in hooks}[world.webhook_id] is True
    assert made["id"] in {h["id"] for h in hooks}
    sent = parsed(run(world, "webhooks", "trigger", "PAYMENT.CAPTURE.COMPLETED", "--url", url,
                      "--json"))
    assert sent["event_type"] == "PAYMENT.CAPTURE.COMPLETED" and sent["event_id"]
    assert "PAYMENT.CAPTURE.REFUNDED" in run(world, "webhooks", "trigger",
                                             "PAYMENT.CAPTURE.REFUNDED").stdout
    run(world, "webhooks", "trigger", "NOT.A.TYPE", code=1)
    live = run(world, "webhooks", "trigger", "PAYMENT.CAPTURE.COMPLETED", code=1,
               PAYWIRE_PAYPAL_ENV="live", PAYWIRE_PAYPAL_BASE_URL="",
               PAYWIRE_CATALOG_PATH=str(DEMO_CATALOG))
    assert "emulator and sandbox only" in live.output
    run(world, "webhooks", "delete", made["id"])
    run(world, "webhooks", "delete", made["id"], code=1)


def doctor(w: World, code: int, **env: str) -> dict[str, dict[str, str]]:
    """`paywire doctor --json`: each check by name."""
    out = parsed(run(w, "doctor", "--json", code=code, **env))
    assert out["ok"] is (code == 0)
    return {c["name"]: c for c in out["checks"]}


def test_doctor_green_then_red_with_fixes(world: World) -> None:
    """doctor passes a healthy setup and names the fix for a bad secret, an unknown webhook id
    and a dead outbox message."""
    checks = doctor(world, 0)
    assert {n: c["status"] for n, c in checks.items()} == {
        "settings": "ok", "database": "ok", "outbox": "ok", "orders": "ok",
        "rejections": "ok", "credentials": "ok", "webhook": "ok", "certs": "ok"}
    assert "all good" in run(world, "doctor", "--url", world.hook_url).stdout

    bad = doctor(world, 1, PAYWIRE_PAYPAL_CLIENT_SECRET="wrong-secret")["credentials"]
    assert bad["status"] == "fail" and "invalid_client" in bad["detail"]
    assert "sandbox" in bad["detail"].lower() or "live" in bad["detail"]
    assert "PAYWIRE_PAYPAL_CLIENT_SECRET" in bad["detail"]

    gone = doctor(world, 1, PAYWIRE_PAYPAL_WEBHOOK_ID="WH-NOT-REGISTERED")["webhook"]
    assert gone["status"] == "fail" and "WH-NOT-REGISTERED" in gone["detail"]
    assert "paywire webhooks register --url" in gone["fix"]
    elsewhere = parsed(run(world, "doctor", "--json", "--url",
                           "https://shop.example/webhooks/paypal", code=1))
    assert "not https://shop.example/webhooks/paypal" in json.dumps(elsewhere)

    kill_one(world)
    dead = doctor(world, 1)["outbox"]
    assert dead["status"] == "fail" and "1 message(s) dead" in dead["detail"]
    assert "paywire outbox retry ID" in dead["fix"]


def test_doctor_reads_a_stage_from_its_secrets_and_explains_refusals(
        world: World, moto_server: MotoServer) -> None:
    """With PAYWIRE_STAGE, doctor reads the stage's secrets from AWS (moto): all green with the
    right credentials; a wrong client secret in the secret (the right one still in the
    environment, ignored) is explained naming the secret, never its value; a stage without
    secrets fails naming the secret id and AWS's error code."""
    stage = "doc" + uuid.uuid4().hex[:10]
    sm = moto_server.client("secretsmanager")
    paypal = {"environment": "emulator", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "webhook_id": world.webhook_id}
    sm.create_secret(Name=f"paywire/{stage}/paypal", SecretString=json.dumps(paypal))
    sm.create_secret(Name=f"paywire/{stage}/app", SecretString=json.dumps({"api_keys": []}))
    # The world's PAYWIRE_PAYPAL_CLIENT_SECRET stays set: a stage ignores it.
    env = {**moto_server.env, "PAYWIRE_STAGE": stage}

    checks = doctor(world, 0, **env)
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert f"stage {stage} (secrets paywire/{stage}/paypal" in checks["settings"]["detail"]

    wrong = "stage-secret-that-paypal-refuses"
    sm.put_secret_value(SecretId=f"paywire/{stage}/paypal",
                        SecretString=json.dumps({**paypal, "client_secret": wrong}))
    result = run(world, "doctor", "--json", code=1, **env)
    creds = {c["name"]: c for c in parsed(result)["checks"]}["credentials"]
    assert creds["status"] == "fail" and "invalid_client" in creds["detail"]
    assert f"the stage secret paywire/{stage}/paypal claims environment emulator" in (
        creds["detail"])
    assert wrong not in result.output

    missing = doctor(world, 1, **{**env, "PAYWIRE_STAGE": stage + "x"})["settings"]
    assert f"paywire/{stage}x/paypal" in missing["detail"]
    assert "ResourceNotFoundException" in missing["detail"]
    sm.close()


def test_doctor_checks_a_dynamodb_table(world: World, moto_server: MotoServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """On dynamodb://<table> (moto): a missing table fails naming the fix and skips the store
    checks; once set up (table, indexes, TTL) the database and store checks pass."""
    from paywire.store.dynamo import ensure_table

    table = "doctor-" + uuid.uuid4().hex[:10]
    env = {**moto_server.env, "PAYWIRE_DATABASE_URL": f"dynamodb://{table}"}
    checks = doctor(world, 1, **env)
    assert checks["database"]["status"] == "fail"
    assert f"DynamoDB table {table}: ResourceNotFoundException" in checks["database"]["detail"]
    assert "paywire migrate" in checks["database"]["fix"]
    assert {checks[n]["status"] for n in ("outbox", "orders", "rejections")} == {"skip"}

    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    asyncio.run(ensure_table(table))
    checks = doctor(world, 0, **env)
    assert checks["database"]["status"] == "ok" and "TTL on" in checks["database"]["detail"]
    assert {checks[n]["status"] for n in ("outbox", "orders", "rejections")} == {"ok"}
