"""The DynamoDB store never deletes: a removal puts a tombstone, which reads, lists and meets
conditions as nothing at all, and no request the store sends needs dynamodb:DeleteItem.

Every removal the store makes is run here against the session's moto server — forgetting an
in-flight Idempotency-Key, releasing the lookups of changed provider ids, clearing
reconciliation state, trimming the rejection log — once behind `AwsRecorder` (the proxy the
SAM template test holds each request against its role with), to show what goes over the wire,
and once each to show that what is left behaves as after a delete: reads absent, listed
nowhere, created over, and a write that demands the item fails. moto never runs TTL, so the
tombstones stay in the table for these tests to look at.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from test_store_dynamo import T0, at
from typer.testing import CliRunner

from awstemplatekit import ACCOUNT, AwsCall, AwsRecorder, needed
from paywire.cli import app
from paywire.domain.errors import ConflictError, NotFoundError
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import (
    HistoryEntry,
    IdempotencyRecord,
    ReconcileState,
    Refund,
    WebhookRejection,
)
from paywire.store.dynamo import TTL_ATTRIBUTE, DynamoStore
from paywire.store.dynamo import items as di
from paywire.store.dynamo.table import from_wire, to_wire
from paywire.testing import MotoServer
from testkit import StoppedClock

NOW = datetime(2025, 3, 4, 12, tzinfo=UTC)  # the stores' stopped clock: when removals happen
S = OrderStatus
SCOPE = "shop:POST /v1/orders"
# What a unit of work may ask of DynamoDB: the template's item-level actions but DeleteItem.
ITEM_ACTIONS = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
                "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"}


def make_order(order_id: str, *, provider_order_id: str | None = None,
               capture_id: str | None = None) -> Order:
    """A one-line USD order created at T0."""
    order = Order.new(order_id, Intent.CAPTURE, [OrderLine("sku-1", "Mug", 1, Money(1250, "USD"))],
                      T0)
    return dataclasses.replace(order, provider_order_id=provider_order_id, capture_id=capture_id)


def in_flight(key: str, created: datetime = T0) -> IdempotencyRecord:
    """An in-flight Idempotency-Key record, for an hour."""
    return IdempotencyRecord(scope=SCOPE, key=key, request_hash="h-1", status="in_flight",
                             created_at=created, expires_at=created + timedelta(hours=1),
                             locked_until=created + timedelta(seconds=30))


def rejection(transmission_id: str, received: datetime) -> WebhookRejection:
    """A bad-signature rejection."""
    return WebhookRejection(provider="paypal", transmission_id=transmission_id,
                            received_at=received, check="signature", reason="does not verify")


def refund(provider_refund_id: str) -> Refund:
    """Refund r-1 of order o-1, known to the provider as `provider_refund_id`."""
    return Refund("r-1", "o-1", Money(500, "USD"), "pending", "refund:r-1", T0, T0,
                  provider_refund_id=provider_refund_id)


def state(order_id: str) -> ReconcileState:
    """A reconciliation state that is due."""
    return ReconcileState(order_id, 1, T0, T0, T0)


def raw(client: Any, table: str, key: di.Key) -> di.Item | None:
    """The item at `key` as the table holds it (plain), or None."""
    found = client.get_item(TableName=table, Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}},
                            ConsistentRead=True).get("Item")
    return None if found is None else from_wire(found)


def is_tombstone_of(item: di.Item | None, key: di.Key) -> bool:
    """Whether `item` is exactly the tombstone a removal at NOW leaves at `key`: its keys, the
    kind, the removal time and the TTL attribute at that time, no index attribute."""
    return item == {"pk": key[0], "sk": key[1], "kind": "tombstone",
                    "removed_at": di.ts(NOW), TTL_ATTRIBUTE: di.epoch(NOW)}


async def new_store(client: Any) -> DynamoStore:
    """A store on a fresh table whose clock stands at NOW."""
    store = DynamoStore(f"paywire-test-{secrets.token_hex(6)}", client=client,
                        clock=StoppedClock(NOW))
    await store.setup()
    return store


@pytest.fixture
async def store(dynamodb: Any) -> AsyncIterator[DynamoStore]:
    """A store on a fresh table, its clock at NOW; the table is dropped afterwards."""
    dynamo = await new_store(dynamodb)
    yield dynamo
    await dynamo.close()
    await asyncio.to_thread(dynamodb.delete_table, TableName=dynamo.table_name)


@pytest.fixture
def recorder(moto_server: MotoServer) -> Iterator[AwsRecorder]:
    """The template test's recording proxy in front of the moto server."""
    proxy = AwsRecorder(moto_server.endpoint_url)
    proxy.server.start()
    try:
        yield proxy
    finally:
        proxy.server.stop()


# --- over the wire -----------------------------------------------------------------------------


def tombstones_sent(calls: list[AwsCall]) -> set[di.Key]:
    """The keys of the tombstones the calls put, alone or in a transaction."""
    puts = [c.params["Item"] for c in calls if c.operation == "PutItem"]
    puts += [item["Put"]["Item"] for c in calls if c.operation == "TransactWriteItems"
             for item in c.params["TransactItems"] if "Put" in item]
    return {(p["pk"]["S"], p["sk"]["S"]) for p in puts if p["kind"] == {"S": "tombstone"}}


async def test_no_removal_sends_a_delete(moto_server: MotoServer, dynamodb: Any,
                                         recorder: AwsRecorder) -> None:
    """Every removal the store makes, recorded on its way to DynamoDB: a tombstone put (alone,
    in a transaction, or after the commit), never a DeleteItem, a BatchWriteItem or a
    transaction's Delete; the requests need no IAM action beyond the roles' item-level ones
    without DeleteItem."""
    env = moto_server.env
    client = boto3.client("dynamodb", endpoint_url=recorder.url,
                          region_name=env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    store = await new_store(client)
    try:
        recorder.calls.clear()  # setup's table management is `paywire migrate`'s, not a role's
        # The API's `forget` of an in-flight key: one PutItem of a tombstone.
        async with store.transaction() as uow:
            assert await uow.put_idempotency(in_flight("k-1"))
        async with store.transaction() as uow:
            await uow.delete_idempotency(SCOPE, "k-1")
        # A key written and forgotten in one unit leaves only its condition to check.
        async with store.transaction() as uow:
            await uow.insert_order(make_order("o-9"))
            assert await uow.put_idempotency(in_flight("k-2"))
            await uow.delete_idempotency(SCOPE, "k-2")
        # Changed provider ids release their lookups in the order's transaction.
        async with store.transaction() as uow:
            await uow.insert_order(make_order("o-1", provider_order_id="PP-1",
                                              capture_id="CAP-1"))
            await uow.insert_refund(refund("PR-1"))
        async with store.transaction() as uow:
            await uow.update_order(make_order("o-1", provider_order_id="PP-2",
                                              capture_id="CAP-2").evolve(at(1)), 1)
            await uow.update_refund(dataclasses.replace(refund("PR-2"), updated_at=at(1)))
        # The reconciler's clearing: blind, like the SQL DELETE.
        async with store.transaction() as uow:
            await uow.save_reconcile_state(state("o-1"))
        async with store.transaction() as uow:
            await uow.clear_reconcile_state("o-1")
        # Trimming the rejection log beyond max_rows, after the commit.
        for n in range(3):
            async with store.transaction() as uow:
                assert await uow.record_rejection(rejection(f"tx-{n}", at(n)), max_rows=2)
    finally:
        await store.close()
        client.close()
    await asyncio.to_thread(dynamodb.delete_table, TableName=store.table_name)

    calls = [c for c in recorder.calls if c.service == "dynamodb"]
    operations = {c.operation for c in calls}
    assert not operations & {"DeleteItem", "BatchWriteItem"}, operations
    transacted = {kind for c in calls if c.operation == "TransactWriteItems"
                  for item in c.params["TransactItems"] for kind in item}
    assert transacted == {"Put", "ConditionCheck"}
    actions = {action for c in calls for action, _ in needed(
        c, region=env["AWS_DEFAULT_REGION"], account=ACCOUNT, secret_arn=str)}
    assert actions <= ITEM_ACTIONS, actions - ITEM_ACTIONS
    assert tombstones_sent(calls) == {
        di.idempotency_key(SCOPE, "k-1"), di.lookup_key("PPID", "paypal", "PP-1"),
        di.lookup_key("PAYID", "paypal", "CAP-1"), di.lookup_key("RFID", "PR-1"),
        di.reconcile_key("o-1"), di.rejection_key("paypal", "tx-0")}


# --- what a tombstone behaves as -----------------------------------------------------------------


async def test_forgotten_idempotency_key_is_as_if_deleted(store: DynamoStore,
                                                          dynamodb: Any) -> None:
    """A forgotten key is a tombstone: it reads absent, cannot be locked or completed (also
    not by a unit that read it before it went), a put and forget of it in one unit commits,
    and a new put of the key succeeds."""
    key = di.idempotency_key(SCOPE, "k-1")
    async with store.transaction() as uow:
        assert await uow.put_idempotency(in_flight("k-1"))
    with pytest.raises(ConflictError) as failed:
        async with store.transaction() as late:
            await late.complete_idempotency(SCOPE, "k-1", "o-1", 201, {"id": "o-1"})
            async with store.transaction() as first:
                await first.delete_idempotency(SCOPE, "k-1")
    assert failed.value.details["item"] == f"idempotency key {SCOPE}/k-1"
    assert is_tombstone_of(raw(dynamodb, store.table_name, key), key)
    async with store.transaction() as uow:
        assert await uow.get_idempotency(SCOPE, "k-1", at(1)) is None
        assert not await uow.lock_idempotency(SCOPE, "k-1", at(60), at(90))
        with pytest.raises(NotFoundError):
            await uow.complete_idempotency(SCOPE, "k-1", "o-1", 201, {"id": "o-1"})
        await uow.delete_idempotency(SCOPE, "k-1")  # nothing left to forget
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1"))
        assert await uow.put_idempotency(in_flight("k-1", at(2)))  # buffered: not first
        await uow.delete_idempotency(SCOPE, "k-1")
    assert is_tombstone_of(raw(dynamodb, store.table_name, key), key)
    again = in_flight("k-1", at(3))
    async with store.transaction() as uow:
        assert await uow.put_idempotency(again)
    async with store.transaction() as uow:
        assert await uow.get_idempotency(SCOPE, "k-1", at(4)) == again
        assert not await uow.put_idempotency(in_flight("k-1", at(4)))


async def test_released_lookups_are_as_if_deleted(store: DynamoStore, dynamodb: Any) -> None:
    """The lookups of a provider order id, a capture id and a refund id an order or refund no
    longer has are tombstones: nothing is found by them, and another order or refund claims
    them again in its own transaction."""
    released = [di.lookup_key("PPID", "paypal", "PP-1"),
                di.lookup_key("PAYID", "paypal", "CAP-1"), di.lookup_key("RFID", "PR-1")]
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1", provider_order_id="PP-1", capture_id="CAP-1"))
        await uow.insert_refund(refund("PR-1"))
    async with store.transaction() as uow:
        await uow.update_order(make_order("o-1", provider_order_id="PP-2",
                                          capture_id="CAP-2").evolve(at(1)), 1)
        await uow.update_refund(dataclasses.replace(refund("PR-2"), updated_at=at(1)))
    assert all(is_tombstone_of(raw(dynamodb, store.table_name, k), k) for k in released)
    async with store.transaction() as uow:
        assert await uow.find_order_by_provider_id("paypal", "PP-1") is None
        assert await uow.find_order_by_capture_id("paypal", "CAP-1") is None
        assert await uow.find_refund_by_provider_id("PR-1") is None
        moved = await uow.find_order_by_capture_id("paypal", "CAP-2")
    assert moved is not None and moved.version == 2
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-2", provider_order_id="PP-1", capture_id="CAP-1"))
        await uow.insert_refund(dataclasses.replace(refund("PR-1"), id="r-2"))
    async with store.transaction() as uow:
        by_ppid = await uow.find_order_by_provider_id("paypal", "PP-1")
        by_capture = await uow.find_order_by_capture_id("paypal", "CAP-1")
        by_refund = await uow.find_refund_by_provider_id("PR-1")
    assert by_ppid is not None and by_ppid.id == "o-2"
    assert by_capture is not None and by_capture.id == "o-2"
    assert by_refund is not None and by_refund.id == "r-2"


async def test_cleared_reconcile_state_is_as_if_deleted(store: DynamoStore,
                                                        dynamodb: Any) -> None:
    """A cleared state is a tombstone: the order is a candidate never checked; clearing again,
    or clearing an order that never had a state, changes nothing one can read; a new state
    replaces the tombstone."""
    key = di.reconcile_key("o-1")

    async def candidates() -> list[tuple[str, ReconcileState | None]]:
        async with store.transaction() as uow:
            found = await uow.reconcile_candidates({S.CREATED: at(10)}, at(10), 10)
        return [(order.id, got) for order, got in found]

    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1"))
        await uow.save_reconcile_state(state("o-1"))
    assert await candidates() == [("o-1", state("o-1"))]
    for _ in range(2):
        async with store.transaction() as uow:
            await uow.clear_reconcile_state("o-1")
        assert is_tombstone_of(raw(dynamodb, store.table_name, key), key)
        assert await candidates() == [("o-1", None)]
    async with store.transaction() as uow:
        await uow.clear_reconcile_state("o-never")
    assert is_tombstone_of(raw(dynamodb, store.table_name, di.reconcile_key("o-never")),
                           di.reconcile_key("o-never"))
    async with store.transaction() as uow:
        await uow.save_reconcile_state(dataclasses.replace(state("o-1"), attempts=2))
    assert await candidates() == [("o-1", dataclasses.replace(state("o-1"), attempts=2))]


async def test_pruned_rejections_are_as_if_deleted(store: DynamoStore, dynamodb: Any) -> None:
    """Rejections trimmed beyond max_rows become tombstones after the commit: not listed, and
    their transmission id may be recorded again (which trims the next oldest)."""
    for n in range(3):
        async with store.transaction() as uow:
            assert await uow.record_rejection(rejection(f"tx-{n}", at(n)), max_rows=2)
    key = di.rejection_key("paypal", "tx-0")
    assert is_tombstone_of(raw(dynamodb, store.table_name, key), key)
    async with store.transaction() as uow:
        assert await uow.list_rejections() == [rejection("tx-2", at(2)), rejection("tx-1", at(1))]
        assert await uow.record_rejection(rejection("tx-0", at(3)), max_rows=2)
        assert await uow.list_rejections() == [rejection("tx-0", at(3)), rejection("tx-2", at(2))]
    async with store.transaction() as uow:
        assert await uow.list_rejections() == [rejection("tx-0", at(3)), rejection("tx-2", at(2))]
    tx1 = di.rejection_key("paypal", "tx-1")
    assert is_tombstone_of(raw(dynamodb, store.table_name, tx1), tx1)


async def test_pruning_tombstones_only_the_row_it_pruned(store: DynamoStore,
                                                         dynamodb: Any) -> None:
    """The tombstone after the commit is conditional on the pruned row still being there as
    it was: a row TTL removed meanwhile is not written again, and one recorded again since
    (here after TTL removed the pruned one) is kept."""
    async with store.transaction() as uow:
        assert await uow.record_rejection(rejection("tx-0", at(0)), max_rows=5)
        assert await uow.record_rejection(rejection("tx-1", at(1)), max_rows=5)
    ttl_removed = [di.rejection_key("paypal", t) for t in ("tx-0", "tx-1")]
    async with store.transaction() as uow:
        assert await uow.record_rejection(rejection("tx-2", at(2)), max_rows=1)
        for pk, sk in ttl_removed:  # DynamoDB's TTL, before this unit's clean-up
            dynamodb.delete_item(TableName=store.table_name,
                                 Key={"pk": {"S": pk}, "sk": {"S": sk}})
        async with store.transaction() as other:
            assert await other.record_rejection(rejection("tx-1", at(5)), max_rows=5)
    assert raw(dynamodb, store.table_name, ttl_removed[0]) is None
    kept = raw(dynamodb, store.table_name, ttl_removed[1])
    assert kept is not None and kept["kind"] == "rejection" and kept["received_at"] == di.ts(at(5))


async def test_every_read_passes_over_a_tombstone(store: DynamoStore, dynamodb: Any) -> None:
    """A tombstone wherever one could stand (here put over an order and one of its history
    lines, as the table's own reads would meet them) reads as nothing: the order, its
    history (a base-table Query), the order listings (index walks) and a new insert all
    behave as if the items had been deleted."""
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1"))
        await uow.append_history(HistoryEntry("o-1", T0, "webhook", "NOTE", S.CREATED,
                                              S.CREATED))
        await uow.append_history(HistoryEntry("o-1", at(1), "webhook", "NOTE", S.CREATED,
                                              S.CREATED))
        assert await uow.add_announcement(Announcement("order.completed:o-1", "order.completed",
                                                       "o-1", {"order_id": "o-1"}), "m-1", T0)
    history = dynamodb.query(TableName=store.table_name, KeyConditionExpression="pk = :p",
                             ExpressionAttributeValues={":p": {"S": "ORDER#o-1"}})["Items"]
    first_line = next(from_wire(i) for i in history if from_wire(i)["kind"] == "history")
    for key in (di.order_key("o-1"), (first_line["pk"], first_line["sk"])):
        dynamodb.put_item(TableName=store.table_name, Item=to_wire(di.tombstone(key, NOW)))
    async with store.transaction() as uow:
        assert await uow.get_order("o-1") is None
        assert [h.at for h in await uow.history("o-1")] == [at(1)]
        assert await uow.list_orders() == []
        assert await uow.list_orders(status=S.CREATED) == []
        assert [m.id for m in await uow.outbox_for_order("o-1")] == ["m-1"]
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1"))
    async with store.transaction() as uow:
        assert [o.id for o in await uow.list_orders()] == ["o-1"]


def test_operator_listings_omit_tombstones(moto_server: MotoServer, dynamodb: Any,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """`paywire rejections list`, `orders list` and `outbox list` on a DynamoDB table holding
    tombstones (a trimmed rejection, a forgotten key, a released lookup, cleared state) show
    only the live records: they walk indexes, which tombstones are never in, and the store's
    roles have no Scan."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    now = datetime.now(UTC)  # the CLI's store reads the real clock to expire rejections

    async def fill() -> str:
        store = DynamoStore(f"paywire-test-{secrets.token_hex(6)}", client=dynamodb)
        await store.setup()
        for n in range(3):
            async with store.transaction() as uow:
                assert await uow.record_rejection(rejection(f"tx-{n}", now + timedelta(
                    seconds=n - 10)), max_rows=2)
        async with store.transaction() as uow:
            await uow.insert_order(make_order("o-1", capture_id="CAP-1"))
            assert await uow.add_announcement(Announcement(
                "order.completed:o-1", "order.completed", "o-1", {"order_id": "o-1"}), "m-1", T0)
            await uow.save_reconcile_state(state("o-1"))
            assert await uow.put_idempotency(in_flight("k-1", now))
        async with store.transaction() as uow:
            await uow.update_order(make_order("o-1", capture_id="CAP-2").evolve(at(1)), 1)
            await uow.clear_reconcile_state("o-1")
            await uow.delete_idempotency(SCOPE, "k-1")
        await store.close()
        return store.table_name

    table = asyncio.run(fill())
    env = {**moto_server.env, "PAYWIRE_DATABASE_URL": f"dynamodb://{table}",
           "PAYWIRE_DATA_DIR": str(tmp_path)}
    try:
        tombstones = [from_wire(i) for i in dynamodb.scan(TableName=table)["Items"]
                      if i["kind"] == {"S": "tombstone"}]
        assert len(tombstones) == 4
        shown = {}
        for what in ("rejections", "orders", "outbox"):
            result = CliRunner().invoke(app, [what, "list", "--json"], env=env)
            assert result.exit_code == 0, (what, result.output, result.exception)
            shown[what] = [row.get("transmission_id") or row["id"]
                           for row in json.loads(result.stdout)["data"]]
    finally:
        dynamodb.delete_table(TableName=table)
    assert shown == {"rejections": ["tx-2", "tx-1"], "orders": ["o-1"], "outbox": ["m-1"]}
