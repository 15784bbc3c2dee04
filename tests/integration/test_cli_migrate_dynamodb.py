"""`paywire migrate` on a `dynamodb://` URL, as a real process against the moto server."""

from __future__ import annotations

import dataclasses
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine
from paywire.ports import OrderFilter, ProviderOperation
from paywire.store.dynamo import TTL_ATTRIBUTE, DynamoStore
from paywire.testing import MotoServer

T0 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def migrate(moto_server: MotoServer, table: str, cwd: Path) -> str:
    """Run `paywire migrate` on `dynamodb://<table>`; its output (it must succeed)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYWIRE_")},
           **moto_server.env}
    argv = [sys.executable, "-c", "from paywire.cli import main; main()", "migrate",
            "--database-url", f"dynamodb://{table}"]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"DynamoDB table {table} is ready" in done.stdout
    return done.stdout


def test_migrate_creates_the_table_with_ttl_and_is_idempotent(moto_server: MotoServer,
                                                             tmp_path: Path) -> None:
    """Two runs: the first creates the table and enables TTL, the second finds it ready."""
    table = f"paywire-migrate-{secrets.token_hex(4)}"
    for _ in range(2):
        migrate(moto_server, table, tmp_path)
    client = moto_server.client("dynamodb")
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", TTL_ATTRIBUTE)


async def test_migrate_backfills_keys_of_items_written_before_them(moto_server: MotoServer,
                                                                  tmp_path: Path) -> None:
    """A flagged order and its operation stored without their by_order keys: migrate adds
    them and says so, the needs-attention queue and the timeline find them; a second run
    adds nothing."""
    table = f"paywire-migrate-{secrets.token_hex(4)}"
    client = moto_server.client("dynamodb")
    store = DynamoStore(table, client=client)
    try:
        await store.setup()
        flagged = dataclasses.replace(
            Order.new("o-1", Intent.CAPTURE, [OrderLine("mug", "Mug", 1, Money(900, "USD"))],
                      T0), needs_attention="stuck:PENDING")
        async with store.transaction() as uow:
            await uow.insert_order(flagged)
            await uow.put_operation(ProviderOperation(
                key="o-1:create", order_id="o-1", kind="create", status="pending",
                created_at=T0 + timedelta(seconds=1), updated_at=T0 + timedelta(seconds=1)))
        for pk, sk in (("ORDER#o-1", "ORDER"), ("OP#o-1:create", "OP")):
            client.update_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                               UpdateExpression="REMOVE opk, osk")

        first = migrate(moto_server, table, tmp_path)
        again = migrate(moto_server, table, tmp_path)

        assert ("by_order keys added to 1 flagged orders, 1 provider operations, 0 events"
                in first), first
        assert "by_order keys added to 0 flagged orders, 0 provider operations" in again, again
        async with store.snapshot() as view:
            assert await view.needs_attention_count() == 1
            page = await view.search_orders(OrderFilter(needs_attention=True))
            assert [o.id for o in page.orders] == ["o-1"]
            assert [o.key for o in await view.operations_for_order("o-1")] == ["o-1:create"]
    finally:
        await store.close()
        client.delete_table(TableName=table)
