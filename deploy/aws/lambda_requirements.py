"""The Lambda package's requirements: paywire's and its `aws` extra's, less what Lambda never loads.

    python deploy/aws/lambda_requirements.py [pyproject.toml] > requirements.txt

`pip install paywire` stays complete (the CLI, `paywire serve`, SQLite/PostgreSQL); the Lambda
functions run on DynamoDB through Mangum and never load the CLI (typer, rich), the ASGI server
(uvicorn) or the SQL store (SQLAlchemy, aiosqlite, psycopg, Alembic). The Makefile installs the
paywire wheel with `--no-deps` and these requirements (pinned by constraints.txt), so the package
leaves them and what only they pull in (click, pygments, markdown-it, greenlet, Mako) out.

`ABSENT_MODULES` are the top-level modules that are then missing from the package:
tests/unit/test_lambda_lean.py imports every Lambda entry point (and bench/lambda_webhook.py
runs a webhook) with them refused by an import hook, as the lean package would refuse them.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# Distributions (of paywire's core requirements) the Lambda package leaves out.
LEAVE_OUT = frozenset({"typer", "rich", "uvicorn", "sqlalchemy", "aiosqlite", "psycopg",
                       "alembic", "prometheus-client"})
# Their top-level modules and those of what only they pull in.
ABSENT_MODULES = frozenset({"typer", "rich", "uvicorn", "sqlalchemy", "aiosqlite", "psycopg",
                            "psycopg_binary", "alembic", "click", "pygments", "markdown_it",
                            "mdurl", "shellingham", "greenlet", "mako", "prometheus_client"})
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def distribution(requirement: str) -> str:
    """The normalised distribution name of a requirement (`SQLAlchemy[asyncio]>=2` → sqlalchemy)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """paywire's core requirements and its `aws` extra's, without LEAVE_OUT's."""
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["aws"]]
    return [r for r in wanted if distribution(r) not in LEAVE_OUT]


if __name__ == "__main__":
    print("\n".join(requirements(Path(sys.argv[1]) if len(sys.argv) > 1 else PYPROJECT)))
