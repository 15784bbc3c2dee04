"""The lean Lambda package: its requirements leave out the CLI, the ASGI server and the SQL store,
and every function the template names imports and serves without them (a fresh interpreter whose
import hook refuses those modules as the lean package would: ModuleNotFoundError)."""

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
    assert LEAN["LEAVE_OUT"] <= LEAN["ABSENT_MODULES"]


def test_every_lambda_function_imports_and_serves_without_the_left_out_modules(
        moto_server: MotoServer, tmp_path: Path) -> None:
    """With SQLAlchemy, psycopg, uvicorn, typer, rich, pygments and the rest refused, every
    template handler imports, the HTTP function reads its DynamoDB table (/readyz 200) and the
    consumer looks a message's row up in it; none of those modules is loaded."""
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
    code = (REFUSE.format(absent=sorted(LEAN["ABSENT_MODULES"]))
            + PROBE.format(handlers=template_handlers()))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: S603
                          env=env, cwd=tmp_path, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"readyz": 200, "batch": {"batchItemFailures": [{"itemIdentifier": "m-1"}]},
                      "loaded": []}
    assert "outbox message msg_lean, which does not exist" in done.stdout + done.stderr
