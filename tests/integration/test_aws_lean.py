"""The lean Lambda package: its requirements leave out the CLI, the ASGI server and the SQL store,
and every function the template names imports and serves without them (a fresh interpreter whose
import hook refuses those modules as the lean package would: ModuleNotFoundError). A function's
first invocation loads only what that function uses: the webhook function no checkout route,
the SQS consumer no web framework (sys.modules afterwards, in a fresh interpreter each)."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from awskit import SHOP_SECRET
from paywire.testing import MotoServer

ROOT = Path(__file__).resolve().parents[2]
LEAN: dict[str, Any] = runpy.run_path(str(ROOT / "deploy/aws/lambda_requirements.py"))

# Run first in the probe: what the lean package lacks cannot be imported.
REFUSE = """
import sys
ABSENT = frozenset({absent!r})
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the Lambda package)",
                                      name=name)
        return None
sys.meta_path.insert(0, Absent())
for name in [n for n in sys.modules if n.split(".")[0] in ABSENT]:
    del sys.modules[name]
"""

# One cold environment: import every handler, then the HTTP function answers /readyz (its store
# is the DynamoDB table: a read through Mangum, FastAPI and the container) and the consumer
# takes a batch whose one message names no outbox row (read from the same table: the record fails,
# on to the dead-letter queue, and an ERROR says the row does not exist).
PROBE = """
import importlib, json, sys
handlers = {handlers!r}
for spec in handlers:
    module, _, name = spec.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name)), spec
from paywire.aws.events import LocalContext, http_answer, http_event
from paywire.aws.http import handler as http
from paywire.aws.sqs_consumer import handler as consumer
answer = http_answer(http(http_event("GET", "/readyz"), LocalContext(function_name="http")))
body = json.dumps({{"id": "msg_lean", "key": "k", "type": "order.completed", "order_id": "ord_lean",
                   "payload": {{}}, "created_at": "2026-01-01T00:00:00+00:00"}})
record = {{"messageId": "m-1", "receiptHandle": "r-1", "body": body,
          "attributes": {{"ApproximateReceiveCount": "1"}},
          "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:paywire-lean"}}
batch = consumer({{"Records": [record]}}, LocalContext(function_name="consumer"))
loaded = sorted({{n.split(".")[0] for n in sys.modules}} & ABSENT)
print(json.dumps({{"readyz": answer.status, "batch": batch, "loaded": loaded}}))
"""


def template_handlers() -> list[str]:
    """Every `Handler:` the SAM template names."""
    found = re.findall(r"^\s+Handler:\s*(\S+)\s*$",
                       (ROOT / "deploy/aws/template.yaml").read_text(), flags=re.MULTILINE)
    assert found, "the template names no handlers"
    return sorted(set(found))


def test_lambda_requirements_are_the_core_and_aws_extra_minus_what_lambda_never_loads() -> None:
    """Every left-out distribution is a core requirement (none stale); the rest and the `aws`
    extra are all there; `pip install paywire` keeps them all."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {LEAN["distribution"](r) for r in project["dependencies"]}
    extra = {LEAN["distribution"](r) for r in project["optional-dependencies"]["aws"]}
    lean = {LEAN["distribution"](r) for r in LEAN["requirements"]()}
    assert LEAN["LEAVE_OUT"] <= core
    assert lean == (core | extra) - LEAN["LEAVE_OUT"]
    assert {"sqlalchemy", "typer", "uvicorn", "psycopg"} <= LEAN["LEAVE_OUT"]
    assert {d.replace("-", "_") for d in LEAN["LEAVE_OUT"]} <= LEAN["ABSENT_MODULES"]


def lean_run(moto_server: MotoServer, tmp_path: Path, probe: str) -> tuple[dict[str, Any], str]:
    """`probe` run in a fresh interpreter refusing the lean package's absent modules, on a new
    DynamoDB table of the moto server (the settings point at it); its last line as JSON, and
    its whole output."""
    import asyncio

    from paywire.store.dynamo import ensure_table

    table = f"paywire-lean-{tmp_path.name[-8:]}".replace("_", "-")
    asyncio.run(ensure_table(table, client=moto_server.client("dynamodb")))
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith(("PAYWIRE_", "PYTHON"))},
           **moto_server.env, "PYTHONPATH": str(ROOT / "src"),
           "PAYWIRE_DATABASE_URL": f"dynamodb://{table}", "PAYWIRE_DATA_DIR": str(tmp_path),
           "PAYWIRE_PAYPAL_ENV": "emulator", "PAYWIRE_PAYPAL_BASE_URL": "http://127.0.0.1:9",
           "PAYWIRE_PAYPAL_CLIENT_ID": "client", "PAYWIRE_PAYPAL_CLIENT_SECRET": "secret-1",
           "PAYWIRE_STARTUP_CREDENTIALS_CHECK": "false",
           "PAYWIRE_FULFILMENT_URL": "http://127.0.0.1:9/shop",
           "PAYWIRE_FULFILMENT_SECRET": SHOP_SECRET, "POWERTOOLS_LOG_LEVEL": "WARNING",
           "POWERTOOLS_METRICS_NAMESPACE": "paywire-test"}
    code = REFUSE.format(absent=sorted(LEAN["ABSENT_MODULES"])) + probe
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: S603
                          env=env, cwd=tmp_path, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result, done.stdout + done.stderr


def test_every_lambda_function_imports_and_serves_without_the_left_out_modules(
        moto_server: MotoServer, tmp_path: Path) -> None:
    """With SQLAlchemy, psycopg, uvicorn, typer, rich, pygments and the rest refused, every
    template handler imports, the HTTP function reads its DynamoDB table (/readyz 200) and the
    consumer looks a message's row up in it; none of those modules is loaded."""
    result, output = lean_run(moto_server, tmp_path, PROBE.format(handlers=template_handlers()))
    assert result == {"readyz": 200, "batch": {"batchItemFailures": [{"itemIdentifier": "m-1"}]},
                      "loaded": []}
    assert "outbox message msg_lean, which does not exist" in output


# One cold environment of one function: its handler imported, one invocation, then what is loaded.
FIRST_INVOCATION = """
import json, sys
from paywire.aws.events import LocalContext, http_answer, http_event
from {module} import {name} as handler
answer = handler({event}, LocalContext(function_name="{name}"))
status = http_answer(answer).status if "statusCode" in answer else answer
print(json.dumps({{"answer": status, "modules": sorted(sys.modules)}}))
"""
# A PayPal delivery without PayPal's signature headers: refused (403: in emulator mode with no
# webhook id configured) once the app is built and the container wired on the table.
UNSIGNED_DELIVERY = ('http_event("POST", "/webhooks/paypal", headers=[("content-type", '
                     '"application/json")], body=b\'{"id": "WH-LEAN", "event_type": '
                     '"PAYMENT.CAPTURE.COMPLETED", "resource": {}}\')')
# Never loaded by a Lambda function: the demo shop and dashboard (and their templates), the
# emulator, the CLI and dev servers, the SQL store, the test helpers.
NEVER = ("jinja2", "paywire.web", "paywire.emulator", "paywire.cli", "paywire.dev",
         "paywire.store.sql", "paywire.testing")


def loaded(modules: list[str], watched: tuple[str, ...]) -> list[str]:
    """Which of `watched` (modules, and packages with all they hold) are among `modules`."""
    return sorted({w for w in watched for m in modules if m == w or m.startswith(w + ".")})


def test_the_webhook_functions_first_delivery_loads_no_checkout_route(
        moto_server: MotoServer, tmp_path: Path) -> None:
    """The webhook function's first delivery (its app built, its container wired on DynamoDB)
    loads none of the checkout API's, admin or APS return routes, nor anything of NEVER."""
    result, _ = lean_run(moto_server, tmp_path, FIRST_INVOCATION.format(
        module="paywire.aws.http", name="webhook_handler", event=UNSIGNED_DELIVERY))
    assert result["answer"] == 403
    assert {"paywire.api.webhooks", "paywire.services.webhooks",
            "paywire.store.dynamo.store"} <= set(result["modules"])
    assert loaded(result["modules"], ("paywire.api.routes", "paywire.api.webhook_admin",
                                      "paywire.api.aps_return", *NEVER)) == []


def test_the_sqs_consumers_first_batch_loads_no_web_framework(
        moto_server: MotoServer, tmp_path: Path) -> None:
    """The SQS consumer's first batch (its store and the shop's targets up) loads no web
    framework (FastAPI, Starlette, Mangum), no API module, nor anything of NEVER."""
    batch = ('{"Records": [{"messageId": "m-1", "receiptHandle": "r-1", "body": "{}", '
             '"attributes": {"ApproximateReceiveCount": "1"}}]}')
    result, _ = lean_run(moto_server, tmp_path, FIRST_INVOCATION.format(
        module="paywire.aws.sqs_consumer", name="handler", event=batch))
    assert result["answer"] == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert "paywire.store.dynamo.store" in result["modules"]
    assert loaded(result["modules"], ("fastapi", "starlette", "mangum", "paywire.api",
                                      *NEVER)) == []
