"""`paywire migrate` on a `dynamodb://` URL, as a real process against the moto server."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from paywire.store.dynamo import TTL_ATTRIBUTE
from paywire.testing import MotoServer


def test_migrate_creates_the_table_with_ttl_and_is_idempotent(moto_server: MotoServer,
                                                             tmp_path: Path) -> None:
    """Two runs: the first creates the table and enables TTL, the second finds it ready."""
    table = f"paywire-migrate-{secrets.token_hex(4)}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYWIRE_")},
           **moto_server.env}
    argv = [sys.executable, "-c", "from paywire.cli import main; main()", "migrate",
            "--database-url", f"dynamodb://{table}"]
    for _ in range(2):
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,  # noqa: S603
                              timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"DynamoDB table {table} is ready" in done.stdout
    client = moto_server.client("dynamodb")
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", TTL_ATTRIBUTE)
