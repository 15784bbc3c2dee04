"""`DynamoStore.setup()` (what `paywire migrate` runs) backfills the by_order keys of items
written before them, against the session's moto server.

Items are written "the old way": by the store, then their `opk`/`osk` removed with a raw
UpdateItem, as an item written before those keys existed is stored. The backfill gives them
exactly what the store's writers write (the needs-attention count and search, and the order's
timeline, find them again), a second run changes nothing, and a flag cleared between the
backfill's scan and its update is not indexed again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine
from paywire.ports import InboxEvent, OrderFilter, ProviderOperation
from paywire.store.dynamo import DynamoStore
from paywire.store.dynamo import backfill as dynamo_backfill
from paywire.store.dynamo.backfill import Backfill
from paywire.store.dynamo.table import DynamoTable

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


@pytest.fixture
def table_name(dynamodb: Any) -> Iterator[str]:
    """A fresh table name, the table deleted afterwards."""
    name = f"paywire-test-{secrets.token_hex(6)}"
    yield name
    with contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.delete_table(TableName=name)


@pytest.fixture
async def store(dynamodb: Any, table_name: str) -> AsyncIterator[DynamoStore]:
    """A DynamoDB store on a fresh table (its setup's backfill finds nothing)."""
    dynamo = DynamoStore(table_name, client=dynamodb)
    assert await dynamo.setup() == Backfill()
    yield dynamo
    await dynamo.close()


def order(n: int, flag: str | None = None) -> Order:
    """Order o-<n>, created n minutes after T0, flagged with `flag`."""
    new = Order.new(f"o-{n}", Intent.CAPTURE, [OrderLine("mug", "Mug", 1, Money(1250, "USD"))],
                    T0 + timedelta(minutes=n))
    return dataclasses.replace(new, needs_attention=flag)


def operation(key: str, order_id: str, minutes: int) -> ProviderOperation:
    """A pending provider operation of `order_id`."""
    when = T0 + timedelta(minutes=minutes)
    return ProviderOperation(key=key, order_id=order_id, kind=key.split(":")[1],
                             status="pending", created_at=when, updated_at=when)


def event(event_id: str, order_id: str | None, minutes: int) -> InboxEvent:
    """A stored capture event (of `order_id`, if any)."""
    return InboxEvent(provider="paypal", event_id=event_id,
                      event_type="PAYMENT.CAPTURE.COMPLETED",
                      received_at=T0 + timedelta(minutes=minutes), body=b'{"id": "x"}',
                      order_id=order_id)


def everything(client: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of the table as DynamoDB holds it (typed JSON), by key."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.update({(i["pk"]["S"], i["sk"]["S"]): i for i in page["Items"]})
    return items


def strip_keys(client: Any, table: str, keys: list[tuple[str, str]]) -> None:
    """Remove the by_order attributes of the items at `keys`, as items written before them."""
    for pk, sk in keys:
        client.update_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                           UpdateExpression="REMOVE opk, osk",
                           ConditionExpression="attribute_exists(opk)")


async def seed(store: DynamoStore) -> None:
    """Flagged orders o-1 and o-3, o-2 not flagged; operations and events of o-1 and o-2, one
    event of no order."""
    async with store.transaction() as uow:
        for n, flag in ((1, "stuck:PENDING"), (2, None), (3, "conflict")):
            await uow.insert_order(order(n, flag))
    async with store.transaction() as uow:
        for op in (operation("o-1:create", "o-1", 1), operation("o-1:capture:1", "o-1", 5),
                   operation("o-2:create", "o-2", 2)):
            await uow.put_operation(op)
    async with store.transaction() as uow:
        for stored in (event("WH-1", "o-1", 3), event("WH-2", "o-1", 9),
                       event("WH-3", None, 4)):
            await uow.put_inbox_event(stored)


# The items `seed` writes with by_order keys the store gained later.
LATE_KEYED = [("ORDER#o-1", "ORDER"), ("ORDER#o-3", "ORDER"), ("OP#o-1:create", "OP"),
              ("OP#o-1:capture:1", "OP"), ("OP#o-2:create", "OP"),
              ("INBOX#paypal#WH-1", "INBOX"), ("INBOX#paypal#WH-2", "INBOX")]


async def readings(store: DynamoStore) -> tuple[int, list[str], list[str], list[str]]:
    """The needs-attention count and search, and o-1's operations and events."""
    async with store.snapshot() as view:
        count = await view.needs_attention_count()
        page = await view.search_orders(OrderFilter(needs_attention=True), limit=10)
        ops = await view.operations_for_order("o-1")
        events = await view.inbox_for_order("o-1")
    return (count, [o.id for o in page.orders], [o.key for o in ops],
            [e.event_id for e in events])


async def test_setup_backfills_keys_written_before_them_and_runs_once(
        store: DynamoStore, dynamodb: Any, table_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Items stored without their by_order keys get exactly what the writers write (scanned
    three items a page); the queue, the gauge and the timeline find them; a second setup
    changes nothing."""
    monkeypatch.setattr(dynamo_backfill, "PAGE", 3)
    await seed(store)
    as_written = everything(dynamodb, table_name)
    current = await readings(store)
    assert current == (2, ["o-3", "o-1"], ["o-1:create", "o-1:capture:1"], ["WH-1", "WH-2"])
    strip_keys(dynamodb, table_name, LATE_KEYED)
    assert await readings(store) == (0, [], [], [])

    done = await store.setup()

    assert done == Backfill(scanned=len(as_written), orders=2, operations=3, events=2)
    assert everything(dynamodb, table_name) == as_written
    assert await readings(store) == current
    again = await store.setup()
    assert again == Backfill(scanned=len(as_written))
    assert everything(dynamodb, table_name) == as_written


async def test_a_flag_cleared_after_the_scan_is_not_indexed(
        store: DynamoStore, dynamodb: Any, table_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan reads o-1 and o-3 flagged; o-1's flag is cleared (a new version) before the
    backfill's updates: o-1 is skipped and stays out of the queue, o-3 is indexed."""
    await seed(store)
    strip_keys(dynamodb, table_name, LATE_KEYED[:2])
    scan = DynamoTable.scan

    async def scan_then_clear(self: DynamoTable, *args: Any, **kwargs: Any
                              ) -> AsyncIterator[tuple[list[dict[str, Any]], int]]:
        async for page in scan(self, *args, **kwargs):
            async with store.transaction() as uow:
                flagged = await uow.get_order("o-1")
                if flagged is not None and flagged.needs_attention is not None:
                    await uow.update_order(flagged.evolve(T0 + timedelta(hours=1),
                                                          needs_attention=None),
                                           flagged.version)
            yield page

    monkeypatch.setattr(DynamoTable, "scan", scan_then_clear)
    done = await store.setup()

    assert (done.orders, done.skipped, done.added) == (1, 1, 1)
    o1 = everything(dynamodb, table_name)[("ORDER#o-1", "ORDER")]
    assert "opk" not in o1 and "needs_attention" not in o1 and o1["version"] == {"N": "2"}
    count, flagged, _, _ = await readings(store)
    assert (count, flagged) == (1, ["o-3"])
