"""The core install does not need boto3: `pip install paywire` serves SQLite/PostgreSQL without
the `aws` extra, so nothing on the non-AWS paths may import it."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = ["paywire.cli", "paywire.bootstrap", "paywire.api.app", "paywire.dev.stack",
                "paywire.store.sql", "paywire.settings", "paywire.emulator",
                "paywire.providers.paypal.client", "paywire.providers.aps.client"]


def test_core_modules_import_without_boto3_or_mangum() -> None:
    """Importing every core entry point leaves boto3, botocore, mangum and Powertools unloaded
    (checked in a fresh interpreter, so this suite's own imports do not count)."""
    probe = (f"import importlib, sys\nfor m in {CORE_MODULES!r}: importlib.import_module(m)\n"
             "loaded = sorted({n.split('.')[0] for n in sys.modules} & {'boto3', 'botocore', "
             "'mangum', 'aws_lambda_powertools', 'moto'})\nprint(','.join(loaded))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,  # noqa: S603
                          check=True)
    assert done.stdout.strip() == "", f"core imports loaded {done.stdout.strip()}"


def test_the_aws_http_handler_module_defers_boto3() -> None:
    """The Lambda HTTP module imports boto3 only when a DynamoDB store or a stage is used, so a
    cold start pays for it once, where it is needed (bench/lambda_webhook.py measures it)."""
    probe = ("import sys, paywire.aws.http\nprint('boto3' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,  # noqa: S603
                          check=True)
    assert done.stdout.strip() == "False"
