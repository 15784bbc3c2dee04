"""Importing a Lambda handler module (Lambda's init) loads only the invocation machinery: logging,
metrics, tracing. What a function's session is built from (the settings, the composition root
and its adapters, the web framework) is imported at its first invocation, each function loading
only its own (tests/integration/test_aws_lean.py checks that part). Checked by what is in
`sys.modules` after the import in a fresh interpreter, never by a timing; bench/lambda_webhook.py
measures the time."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Loaded by no handler module's import: the web framework and its server, the SQL store, the
# demo shop's templates, the CLI, the HTTP client and the crypto of the adapters, the settings
# classes, boto3; and paywire's composition root, API, adapters, demo shop, emulator, CLI.
HEAVY = ("fastapi", "starlette", "mangum", "uvicorn", "sqlalchemy", "alembic", "aiosqlite",
         "psycopg", "jinja2", "typer", "rich", "click", "httpx", "cryptography",
         "pydantic_settings", "boto3", "paywire.bootstrap", "paywire.api.app",
         "paywire.api.routes", "paywire.api.webhooks", "paywire.settings", "paywire.providers",
         "paywire.store.sql", "paywire.web", "paywire.emulator", "paywire.cli", "paywire.dev",
         "paywire.testing", "paywire.delivery.receiver", "prometheus_client",
         "paywire.prometheus", "paywire.bootstrap.metrics")
# What a handler module may load of HEAVY, and why.
ALLOWED = {
    # Its record filter reads the table's item layout, whose package loads boto3: every
    # invocation the template's filter lets through needs the store (so boto3) anyway.
    "paywire.aws.stream": {"boto3"},
    # It checks a bearer key against the stage's keys: StageSource and the minimum key length
    # come from the settings package.
    "paywire.aws.authorizer": {"pydantic_settings", "paywire.settings"},
}


def template_modules() -> list[str]:
    """The modules of every `Handler:` the SAM template names."""
    found = re.findall(r"^\s+Handler:\s*(\S+)\s*$",
                       (ROOT / "deploy/aws/template.yaml").read_text(), flags=re.MULTILINE)
    assert found, "the template names no handlers"
    return sorted({handler.rpartition(".")[0] for handler in found})


def loaded_after_import(module: str) -> set[str]:
    """Which of HEAVY (modules, or packages with all they hold) importing `module` loads, in
    a fresh interpreter."""
    probe = (f"import json, sys, {module}\n"
             f"heavy = {HEAVY!r}\n"
             "print(json.dumps(sorted({h for h in heavy for m in sys.modules "
             "if m == h or m.startswith(h + '.')})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,  # noqa: S603
                          check=True, cwd=ROOT)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_template_names_the_handler_modules_checked_here() -> None:
    """Every handler module is checked below (the HTTP API and webhook functions share one)."""
    assert template_modules() == sorted(
        ["paywire.aws.http", "paywire.aws.authorizer", "paywire.aws.sqs_consumer",
         "paywire.aws.drainer", "paywire.aws.stream", "paywire.aws.reconciler"])


@pytest.mark.parametrize("module", template_modules())
def test_a_handler_modules_import_loads_only_the_invocation_machinery(module: str) -> None:
    """The import loads nothing of HEAVY beyond what ALLOWED says the module needs."""
    extra = loaded_after_import(module) - ALLOWED.get(module, set())
    assert extra == set(), f"importing {module} loaded {sorted(extra)}"
