"""X-Ray tracing of the Lambda handlers, as the X-Ray daemon receives it.

A purchase runs through the HTTP, drainer and consumer handlers in an interpreter of its own
(tests/xrayprobe.py: patching botocore and httpx cannot be undone, and the other suites run the
handlers untraced in this process) with Lambda's environment: `LAMBDA_TASK_ROOT`, a sampled
`_X_AMZN_TRACE_ID` per invocation, the stage's settings from Secrets Manager on the moto server,
DynamoDB and SQS there, PayPal's side the emulator, the shop a verifying HTTP server. The SDK
sends its documents over UDP to `AWS_XRAY_DAEMON_ADDRESS`, here a socket this test binds, in
the daemon's protocol (a JSON header line, then the document). Every invocation's handler
subsegment carries its annotations; DynamoDB, Secrets Manager, SQS, PayPal and shop calls hang
under it; no secret, body or answer is in any document.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from awskit import SHOP_SECRET, client, make_queue, running_shop
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.settings import DEMO_CATALOG
from paywire.store.dynamo import ensure_table
from paywire.testing import EmulatorServer, MotoServer

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "trace-client-id"
CLIENT_SECRET = "pp-trace-secret-" + uuid.uuid4().hex  # the emulator's, and the stage's
API_KEY = "trace-admin-key-" + uuid.uuid4().hex
HEADER = '{"format":"json","version":1}'


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """An emulator whose one app has this module's client secret."""
    return EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)], record_responses=True,
                          webhook_time_scale=0.001, seed=1234)


@dataclass
class Daemon:
    """A UDP socket standing in for the X-Ray daemon: every datagram it receives."""

    sock: socket.socket
    datagrams: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """`host:port`, as `AWS_XRAY_DAEMON_ADDRESS` takes it."""
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def receive(self, stop: threading.Event) -> None:
        """Collect datagrams until `stop` is set."""
        while not stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.datagrams.append(data.decode())

    def documents(self) -> list[dict[str, Any]]:
        """Each datagram's document (after the protocol's header line, checked)."""
        found = []
        for datagram in self.datagrams:
            header, _, document = datagram.partition("\n")
            assert header == HEADER, datagram[:200]
            found.append(json.loads(document))
        return found


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """A daemon on a free loopback UDP port for the test."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    made, stop = Daemon(sock), threading.Event()
    reader = threading.Thread(target=made.receive, args=(stop,), name="xray-daemon")
    reader.start()
    try:
        yield made
    finally:
        stop.set()
        reader.join()
        sock.close()


def flatten(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every subsegment by id, nested ones given their enclosing one's id as `parent_id`."""
    found: dict[str, dict[str, Any]] = {}

    def walk(entity: dict[str, Any], parent: str | None, trace: str | None) -> None:
        entity = {**entity, "parent_id": entity.get("parent_id", parent),
                  "trace_id": entity.get("trace_id", trace)}
        found[entity["id"]] = entity
        for child in entity.get("subsegments", []):
            walk(child, entity["id"], entity["trace_id"])

    for document in documents:
        walk(document, None, None)
    return found


def under(entities: dict[str, dict[str, Any]], entity: dict[str, Any], ancestor: str) -> bool:
    """True if `ancestor` (an id) is one of `entity`'s parents."""
    parent = entity.get("parent_id")
    while parent is not None:
        if parent == ancestor:
            return True
        parent = entities[parent]["parent_id"] if parent in entities else None
    return False


async def test_a_purchase_is_traced_to_the_daemon_without_secrets_or_bodies(
        daemon: Daemon, emulator: EmulatorServer, moto_server: MotoServer,
        tmp_path: Path) -> None:
    """Create, capture and read an order through the HTTP handler, drain, deliver: each
    invocation sends its handler subsegment (annotated: function, ColdStart, Service, route,
    order id, the batch's outbox message ids) with its AWS and HTTP calls under it; a failed
    one its exception's type, not the object; no document holds the PayPal client secret, the
    API key, the fulfilment secret, a bearer token, a body or a handler's answer, and none
    needed redacting."""
    name = "t" + uuid.uuid4().hex[:12]
    table = f"paywire-trace-{name}"
    await ensure_table(table, client=moto_server.client("dynamodb"))
    sm = client(moto_server, "secretsmanager")
    sqs = client(moto_server, "sqs")
    queue = make_queue(sqs, max_receives=5)
    with running_shop() as shop:
        sm.create_secret(Name=f"paywire/{name}/paypal", SecretString=json.dumps({
            "environment": "emulator", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "webhook_id": "WH-TRACE"}))
        sm.create_secret(Name=f"paywire/{name}/app", SecretString=json.dumps({
            "api_keys": [API_KEY], "fulfilment_secret": SHOP_SECRET,
            "fulfilment_url": shop.url}))
        env = {**{k: v for k, v in os.environ.items()
                  if not k.startswith(("PAYWIRE_", "PYTHON", "POWERTOOLS_", "AWS_", "_X_AMZN"))},
               **moto_server.env,
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
               "LAMBDA_TASK_ROOT": str(tmp_path), "AWS_LAMBDA_FUNCTION_NAME": "paywire-trace",
               "AWS_XRAY_DAEMON_ADDRESS": daemon.address, "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
               "POWERTOOLS_SERVICE_NAME": "paywire", "POWERTOOLS_LOG_LEVEL": "WARNING",
               "POWERTOOLS_METRICS_NAMESPACE": "paywire-test",
               "PAYWIRE_STAGE": name, "PAYWIRE_PAYPAL_ENV": "emulator",
               "PAYWIRE_PAYPAL_BASE_URL": emulator.url,
               "PAYWIRE_DATABASE_URL": f"dynamodb://{table}", "PAYWIRE_DATA_DIR": str(tmp_path),
               "PAYWIRE_CATALOG_PATH": str(DEMO_CATALOG), "PAYWIRE_SQS_QUEUE_URL": queue.url,
               "PAYWIRE_SQS_MAX_RECEIVES": "5"}
        given = {"emulator": emulator.url, "queue_url": queue.url, "api_key": API_KEY}
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, str(ROOT / "tests/xrayprobe.py"), json.dumps(given)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=90, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert len(shop.accepted) >= 1 and shop.bad == 0
    await asyncio.sleep(0.2)  # the last datagrams reach the socket
    sm.close()
    sqs.close()

    text = "\n".join(daemon.datagrams)
    for secret in (CLIENT_SECRET, API_KEY, SHOP_SECRET, SHOP_SECRET.removeprefix("whsec_")):
        assert secret not in text
    assert "Bearer" not in text and "Basic" not in text and "***" not in text
    # No body and no answer: PayPal's order body, the API's order JSON, the consumer's answer.
    for fragment in ("purchase_units", "provider_order_id", "batchItemFailures", '"sku"'):
        assert fragment not in text, fragment

    entities = flatten(daemon.documents())
    traces, order_id = result["traces"], result["order_id"]

    def handler(invocation: str, module: str) -> dict[str, Any]:
        found = [e for e in entities.values() if e["trace_id"] == traces[invocation]
                 and e["name"] == f"## paywire.aws.{module}.handler"]
        assert len(found) == 1, (invocation, [e["name"] for e in entities.values()])
        return found[0]

    def calls(invocation: str, module: str) -> list[dict[str, Any]]:
        top = handler(invocation, module)
        return [e for e in entities.values() if under(entities, e, top["id"])]

    create = handler("create", "http")
    assert create["annotations"] == {"function": "http", "route": "POST /v1/checkout/orders",
                                     "ColdStart": True, "Service": "paywire"}
    assert "metadata" not in create and "cause" not in create
    made = calls("create", "http")
    assert {"secretsmanager", "dynamodb"} <= {e["name"] for e in made if e["namespace"] == "aws"}
    assert {e["aws"]["operation"] for e in made if e["name"] == "secretsmanager"} == {
        "GetSecretValue"}
    paypal = [e for e in made if e["namespace"] == "remote"]
    assert {e["http"]["request"]["url"] for e in paypal} >= {
        f"{emulator.url}/v1/oauth2/token", f"{emulator.url}/v2/checkout/orders"}
    assert all(e["http"]["response"]["status"] < 300 for e in paypal)

    capture = handler("capture", "http")
    assert capture["annotations"] == {
        "function": "http", "route": "POST /v1/checkout/orders/{order_id}/capture",
        "order_id": order_id, "ColdStart": False, "Service": "paywire"}
    captured = calls("capture", "http")
    assert any(e["name"] == "dynamodb" for e in captured)
    assert any(e["namespace"] == "remote" and e["http"]["request"]["url"].endswith("/capture")
               for e in captured)
    assert handler("read", "http")["annotations"]["order_id"] == order_id

    drain = handler("drain", "drainer")
    assert drain["annotations"]["function"] == "drainer"
    assert drain["annotations"]["claimed"] >= 1
    sent = [e for e in calls("drain", "drainer") if e["name"] == "sqs"]
    assert sent and {e["aws"]["queue_url"] for e in sent} == {queue.url}

    deliver = handler("deliver", "sqs_consumer")
    ids = deliver["annotations"]["outbox_message_id"].split(",")
    assert deliver["annotations"]["records"] == len(ids) == len(result["messages"]) >= 1
    assert set(ids) == set(shop.accepted) and deliver["annotations"]["failed"] == 0
    assert any(e["namespace"] == "remote" and e["http"]["request"]["url"] == shop.url
               for e in calls("deliver", "sqs_consumer"))

    # A failure is recorded by type and message (the SDK's), not as the exception object.
    broken = handler("broken", "http")
    assert broken["fault"] is True and "metadata" not in broken
    assert [e["type"] for e in broken["cause"]["exceptions"]] == [result["failed"]]


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
    ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
    ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "0"}, True),
    ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
    ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_CHALICE_CLI_MODE": "true"}, False),
])
def test_tracing_is_on_exactly_where_powertools_traces(
        env: dict[str, str], on: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """paywire's check (made before importing the X-Ray SDK) agrees with Powertools' own."""
    from aws_lambda_powertools import Tracer

    from paywire.aws import tracing

    for name in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL",
                 "AWS_CHALICE_CLI_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.enabled() is on
    assert bool(Tracer._is_tracer_disabled()) is not on


def test_outside_lambda_no_handler_loads_the_xray_sdk_or_patches_anything() -> None:
    """Without `LAMBDA_TASK_ROOT` (tests, `paywire dev --aws`) every handler imports, `traced`
    hands the handler back unchanged, and neither the X-Ray SDK nor a patched httpx is loaded."""
    code = """
import importlib, json, sys
import httpx
for module in ("http", "sqs_consumer", "drainer", "stream", "reconciler"):
    importlib.import_module(f"paywire.aws.{module}")
from paywire.aws import tracing
fn = lambda event, context: None
print(json.dumps({"same": tracing.traced(fn, "h", "k") is fn,
                  "xray": sorted(n for n in sys.modules if n.startswith("aws_xray_sdk")),
                  "client": httpx.AsyncClient.__module__}))
"""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LAMBDA_TASK_ROOT", "PYTHONPATH") and not k.startswith("PAYWIRE_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: S603
                          env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "same": True, "xray": [], "client": "httpx"}  # not the SDK's subclass
