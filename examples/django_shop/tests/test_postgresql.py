"""The same suite on PostgreSQL: the shop's tables, paywire's and the dedupe rows in one
PostgreSQL database (127.0.0.1:5432, a fresh `test_djshop_*` database that pytest-django makes
and drops). Django's settings are configured once per process, so this runs the example's
tests again in a process of their own (this module left out there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connections

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


@pytest.mark.timeout(600)
def test_the_example_suite_passes_on_postgresql() -> None:
    """Every test of examples/django_shop passes with PostgreSQL as the project's database."""
    assert connections["default"].vendor == "sqlite"  # this run's is SQLite; that one's not
    env = {**os.environ, "SHOP_TEST_DATABASE": "postgresql"}
    env.pop("SHOP_DATA_DIR", None)
    env.pop("SHOP_POSTGRES_NAME", None)
    run = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pytest", str(HERE.parent), "-q", "-p", "no:cacheprovider",
         "--deselect", f"{Path(__file__).relative_to(ROOT)}::"
                       "test_the_example_suite_passes_on_postgresql"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, f"{summary}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    assert " passed" in summary and "skipped" not in summary, summary
