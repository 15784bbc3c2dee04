"""What only the DynamoDB store has to get right, against the session's moto server.

Its transaction's cancellation reasons are mapped back to the write that failed (an inbox
conflict reads as a duplicate on the retry; a version conflict writes nothing), a unit of work
that outgrows one TransactWriteItems is refused, setup enables and checks TTL, expired items
read as absent while DynamoDB still holds them, unique names are lookup items, keyset pages
span several index pages, and an unreachable endpoint is a StorageError that shows no secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from paywire.domain.errors import ConfigError, ConflictError, StorageError
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import (
    HistoryEntry,
    IdempotencyRecord,
    InboxEvent,
    ProviderOperation,
    Refund,
    WebhookRejection,
)
from paywire.store.dynamo import TTL_ATTRIBUTE, DynamoStore, ensure_table, table_definition
from paywire.testing import MotoServer, free_port
from testkit import StoppedClock

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
S = OrderStatus


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def make_order(order_id: str, *, created: datetime = T0, provider_order_id: str | None = None,
               capture_id: str | None = None) -> Order:
    """A one-line USD order."""
    order = Order.new(order_id, Intent.CAPTURE, [OrderLine("sku-1", "Mug", 1, Money(1250, "USD"))],
                      created)
    return dataclasses.replace(order, provider_order_id=provider_order_id, capture_id=capture_id)


def event(event_id: str = "WH-1", body: bytes = b"{}") -> InboxEvent:
    """A stored capture event from transmission tx-<event id>."""
    return InboxEvent(provider="paypal", event_id=event_id,
                      event_type="PAYMENT.CAPTURE.COMPLETED", received_at=T0, body=body,
                      transmission_id=f"tx-{event_id}", order_id="o-1")


def rejection(transmission_id: str, received: datetime = T0) -> WebhookRejection:
    """A bad-signature rejection."""
    return WebhookRejection(provider="paypal", transmission_id=transmission_id,
                            received_at=received, check="signature", reason="does not verify")


def completed(order_id: str) -> Announcement:
    """The order.completed announcement of an order."""
    return Announcement(key=f"order.completed:{order_id}", type="order.completed",
                        order_id=order_id, payload={"order_id": order_id})


def note(order_id: str, when: datetime = T0) -> HistoryEntry:
    """A NOTE history line."""
    return HistoryEntry(order_id, when, "webhook", "NOTE", S.CREATED, S.CREATED)


@pytest.fixture
def table_name(dynamodb: Any) -> Iterator[str]:
    """A fresh table name, the table (if made) deleted afterwards."""
    name = f"paywire-test-{secrets.token_hex(6)}"
    yield name
    with contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.delete_table(TableName=name)


async def new_store(client: Any, name: str, **options: Any) -> DynamoStore:
    """A store on table `name`, set up."""
    store = DynamoStore(name, client=client, **options)
    await store.setup()
    return store


@pytest.fixture
async def store(dynamodb: Any, table_name: str) -> AsyncIterator[DynamoStore]:
    """A DynamoDB store on a fresh table."""
    dynamo = await new_store(dynamodb, table_name)
    yield dynamo
    await dynamo.close()


def raw(client: Any, table: str, pk: str, sk: str) -> dict[str, Any] | None:
    """The item at (pk, sk) as DynamoDB holds it (typed JSON), or None."""
    found = client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                            ConsistentRead=True)
    item: dict[str, Any] | None = found.get("Item")
    return item


# --- one transaction per unit of work ----------------------------------------------------------


async def test_inbox_conflict_is_mapped_to_its_write_and_reads_as_duplicate(
        store: DynamoStore) -> None:
    """Two units store one event; the later commit fails on the inbox write (not the writes
    before it in the same transaction), writes nothing, and its retry sees a duplicate."""
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1"))
    with pytest.raises(ConflictError) as failed:
        async with store.transaction() as late:
            await late.append_history(note("o-1"))
            assert await late.add_announcement(completed("o-1"), "msg-late", T0)
            assert await late.put_inbox_event(event(body=b"late"))
            async with store.transaction() as first:
                assert await first.put_inbox_event(event(body=b"first"))
    assert failed.value.details["item"] == "inbox event paypal/WH-1"
    assert "already written" in failed.value.message
    async with store.transaction() as retry:
        assert not await retry.put_inbox_event(event(body=b"late"))
        stored = await retry.get_inbox_event("paypal", "WH-1")
        assert await retry.history("o-1") == []
        assert await retry.outbox_for_order("o-1") == []
        assert await retry.get_outbox("msg-late") is None
    assert stored is not None and stored.body == b"first"


async def test_version_conflict_is_a_conflict_and_writes_nothing(store: DynamoStore) -> None:
    """Of two units that read version 1, the later commit is a ConflictError naming the order,
    and none of its writes (history, announcement) lands."""
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1"))
    with pytest.raises(ConflictError) as failed:
        async with store.transaction() as late:
            current = await late.get_order("o-1")
            assert current is not None
            await late.append_history(note("o-1", at(2)))
            await late.update_order(current.evolve(at(2), status=S.VOIDED), current.version)
            assert await late.add_announcement(completed("o-1"), "msg-late", at(2))
            async with store.transaction() as first:
                await first.update_order(current.evolve(at(1), status=S.APPROVED), 1)
    assert failed.value.details["item"] == "order o-1 (version 1)"
    async with store.transaction() as uow:
        got = await uow.get_order("o-1")
        assert await uow.history("o-1") == []
        assert await uow.get_outbox("msg-late") is None
    assert got is not None and (got.status, got.version) == (S.APPROVED, 2)


async def test_more_than_a_transaction_holds_is_refused_and_writes_nothing(
        store: DynamoStore) -> None:
    """The 101st item a unit would write is a ValueError saying why; nothing is written."""
    with pytest.raises(ValueError, match="at most 100 items"):
        async with store.transaction() as uow:
            for n in range(101):
                await uow.append_history(note("o-1", at(n)))
    async with store.transaction() as uow:
        assert await uow.history("o-1") == []


async def test_put_operation_is_immediate_only_as_first_write(store: DynamoStore) -> None:
    """As a unit's first write, put_operation is visible to others before its unit ends (the
    caller acts on it); after another write it is buffered, and undone by an exception."""
    op = ProviderOperation("capture:o-1:1", "o-1", "capture", "pending", T0, T0,
                           lease_until=at(30))
    async with store.transaction() as uow:
        assert await uow.put_operation(op)
        async with store.transaction() as other:
            assert await other.get_operation(op.key) == op
            assert not await other.put_operation(op)
    second = dataclasses.replace(op, key="capture:o-1:2")
    with pytest.raises(RuntimeError, match="boom"):
        async with store.transaction() as uow:
            await uow.insert_order(make_order("o-1"))
            assert await uow.put_operation(second)
            async with store.transaction() as other:
                assert await other.get_operation(second.key) is None
            raise RuntimeError("boom")
    async with store.transaction() as uow:
        assert await uow.get_operation(second.key) is None


# --- setup and TTL ----------------------------------------------------------------------------


async def test_setup_creates_the_table_and_enables_ttl(dynamodb: Any, table_name: str) -> None:
    """Setup makes the table with its keys-only indexes and TTL on `expires_ttl`; running it
    again changes nothing."""
    await ensure_table(table_name, client=dynamodb)
    await ensure_table(table_name, client=dynamodb)
    described = dynamodb.describe_table(TableName=table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == TTL_ATTRIBUTE
    assert {i["IndexName"] for i in described["GlobalSecondaryIndexes"]} == {
        "by_time", "by_status", "by_due", "by_order"}
    assert {i["Projection"]["ProjectionType"] for i in described["GlobalSecondaryIndexes"]} == \
        {"KEYS_ONLY"}
    definition = table_definition(table_name)
    assert definition["BillingMode"] == "PAY_PER_REQUEST"
    assert "StreamSpecification" not in definition
    assert table_definition(table_name, stream=True)["StreamSpecification"] == {
        "StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}


async def test_setup_refuses_ttl_on_another_attribute(dynamodb: Any, table_name: str) -> None:
    """A table whose TTL is on another attribute is refused with both names, not changed."""
    dynamodb.create_table(**table_definition(table_name))
    dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "purge_at"})
    with pytest.raises(ConfigError, match=r"'purge_at'.*'expires_ttl'"):
        await ensure_table(table_name, client=dynamodb)
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "purge_at"


async def test_setup_refuses_another_key_schema(dynamodb: Any, table_name: str) -> None:
    """A table keyed otherwise than (pk, sk) is refused."""
    dynamodb.create_table(TableName=table_name, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    with pytest.raises(ConfigError, match="key schema"):
        await ensure_table(table_name, client=dynamodb)


# --- expiry ------------------------------------------------------------------------------------


async def test_expired_idempotency_key_reads_absent_while_still_stored(
        store: DynamoStore, dynamodb: Any) -> None:
    """An idempotency record past `expires_at` reads as absent and is replaced by a new put,
    though DynamoDB (here moto, which never deletes) still holds it; its TTL attribute is set."""
    record = IdempotencyRecord(scope="shop:POST /v1/orders", key="k-1", request_hash="h-1",
                               status="in_flight", created_at=T0, expires_at=at(60),
                               locked_until=at(30))
    async with store.transaction() as uow:
        assert await uow.put_idempotency(record)
    pk = "IDEM#shop:POST /v1/orders#k-1"
    stored = raw(dynamodb, store.table_name, pk, "IDEM")
    assert stored is not None and stored[TTL_ATTRIBUTE] == {"N": str(int(at(60).timestamp()) + 1)}
    async with store.transaction() as uow:
        assert await uow.get_idempotency(record.scope, "k-1", at(59)) == record
        assert await uow.get_idempotency(record.scope, "k-1", at(60)) is None
        assert not await uow.lock_idempotency(record.scope, "k-1", at(61), at(90))
    assert raw(dynamodb, store.table_name, pk, "IDEM") is not None  # still there
    fresh = dataclasses.replace(record, request_hash="h-2", created_at=at(60),
                                expires_at=at(120))
    async with store.transaction() as uow:
        assert await uow.put_idempotency(fresh)
        assert await uow.get_idempotency(record.scope, "k-1", at(61)) == fresh


async def test_expired_rejection_reads_absent_while_still_stored(
        dynamodb: Any, table_name: str) -> None:
    """A rejection older than the store's retention is not listed and its transmission id may
    be recorded again, while the item (with its TTL attribute) is still in the table."""
    clock = StoppedClock(at(0))
    store = await new_store(dynamodb, table_name, clock=clock,
                            rejection_ttl=timedelta(hours=1))
    async with store.transaction() as uow:
        assert await uow.record_rejection(rejection("tx-1"), max_rows=10)
        assert not await uow.record_rejection(rejection("tx-1", at(3599)), max_rows=10)
    clock.instant = at(3600)
    async with store.transaction() as uow:
        assert await uow.list_rejections() == []
    stored = raw(dynamodb, table_name, "REJ#paypal#tx-1", "REJ")
    assert stored is not None and stored[TTL_ATTRIBUTE] == {"N": str(int(at(3600).timestamp())
                                                                   + 1)}
    async with store.transaction() as uow:
        assert await uow.record_rejection(rejection("tx-1", at(3600)), max_rows=10)
        assert await uow.list_rejections() == [rejection("tx-1", at(3600))]
    assert raw(dynamodb, table_name, "INBOX#paypal#WH-1", "INBOX") is None
    async with store.transaction() as uow:
        assert await uow.put_inbox_event(event())
    inbox = raw(dynamodb, table_name, "INBOX#paypal#WH-1", "INBOX")
    assert inbox is not None and TTL_ATTRIBUTE not in inbox  # kept for the audit period
    await store.close()


# --- unique names as lookup items ------------------------------------------------------------


async def test_unique_names_are_lookup_items_written_with_their_records(
        store: DynamoStore, dynamodb: Any) -> None:
    """Provider ids, refund ids and announcement keys are items of their own, written in the
    same transaction as the record they name."""
    refund = Refund("r-1", "o-1", Money(500, "USD"), "completed", "refund:r-1", T0, T0,
                    provider_refund_id="PR-1")
    async with store.transaction() as uow:
        await uow.insert_order(make_order("o-1", provider_order_id="PP-1", capture_id="CAP-1"))
        await uow.insert_refund(refund)
        assert await uow.put_inbox_event(event())
        assert await uow.add_announcement(completed("o-1"), "msg-1", T0)
    targets = {pk: raw(dynamodb, store.table_name, pk, "LOOKUP")
               for pk in ("PPID#paypal#PP-1", "PAYID#paypal#CAP-1", "RFID#PR-1",
                          "OUTKEY#order.completed:o-1")}
    assert {pk: item["target"]["S"] for pk, item in targets.items() if item} == {
        "PPID#paypal#PP-1": "o-1", "PAYID#paypal#CAP-1": "o-1", "RFID#PR-1": "r-1",
        "OUTKEY#order.completed:o-1": "msg-1"}


async def test_concurrent_claims_of_one_provider_order_id_conflict(store: DynamoStore) -> None:
    """Two orders claiming one provider order id in overlapping units: the later commit is a
    ConflictError on the lookup item, and its order is not written."""
    with pytest.raises(ConflictError) as failed:
        async with store.transaction() as late:
            await late.insert_order(make_order("o-2", provider_order_id="PP-1"))
            async with store.transaction() as first:
                await first.insert_order(make_order("o-1", provider_order_id="PP-1"))
    assert failed.value.details["item"] == "provider order id PP-1"
    async with store.transaction() as uow:
        assert await uow.get_order("o-2") is None
        found = await uow.find_order_by_provider_id("paypal", "PP-1")
    assert found is not None and found.id == "o-1"


async def test_changed_payment_id_moves_its_lookup(store: DynamoStore) -> None:
    """An order whose capture id changes is found by the new id, no longer by the old one."""
    order = make_order("o-1", capture_id="CAP-1")
    async with store.transaction() as uow:
        await uow.insert_order(order)
    async with store.transaction() as uow:
        await uow.update_order(order.evolve(at(1), capture_id="CAP-2"), 1)
    async with store.transaction() as uow:
        assert await uow.find_order_by_capture_id("paypal", "CAP-1") is None
        moved = await uow.find_order_by_capture_id("paypal", "CAP-2")
    assert moved is not None and moved.version == 2


# --- index pages ---------------------------------------------------------------------------------


async def test_keyset_pages_span_several_index_pages(dynamodb: Any, table_name: str) -> None:
    """With two keys per index page, listings of orders, outbox messages and rejections still
    walk everything newest first, each page of five reading several index pages."""
    queries: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        queries.append(params.get("IndexName", ""))

    dynamodb.meta.events.register("before-call.dynamodb.Query", count)
    store = await new_store(dynamodb, table_name, page_size=2, clock=StoppedClock(T0))
    try:
        async with store.transaction() as uow:
            for n in range(7):
                await uow.insert_order(make_order(f"o-{n}", created=at(n % 4)))
                assert await uow.add_announcement(completed(f"o-{n}"), f"msg-{n}", at(n % 4))
                assert await uow.record_rejection(rejection(f"tx-{n}", at(n % 4)), 100)
        newest_first = [f"{n}" for n in (3, 6, 2, 5, 1, 4, 0)]
        async with store.transaction() as uow:
            queries.clear()
            first = await uow.list_orders(limit=5)
            assert len(queries) >= 3  # five orders, two keys a page
            rest = await uow.list_orders(limit=5, before=(first[-1].created_at, first[-1].id))
            messages = await uow.list_outbox(limit=5)
            more = await uow.list_outbox(limit=5, before=(messages[-1].created_at,
                                                          messages[-1].id))
            rejected = await uow.list_rejections(limit=5)
            older = await uow.list_rejections(limit=5, before=(rejected[-1].received_at,
                                                               rejected[-1].transmission_id))
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.Query", count)
        await store.close()
    assert [o.id for o in first + rest] == [f"o-{n}" for n in newest_first]
    assert [m.id for m in messages + more] == [f"msg-{n}" for n in newest_first]
    assert [r.transmission_id for r in rejected + older] == [f"tx-{n}" for n in newest_first]


# --- errors and configuration ----------------------------------------------------------------


async def test_unreachable_endpoint_is_a_storage_error_without_secrets(
        moto_server: MotoServer) -> None:
    """A closed port answers nothing: StorageError, whose message and the store's repr show
    neither the secret key nor a password in the endpoint URL."""
    secret, password = "s3cr3t-AKIA-test-only", "hunter2-test-only"
    endpoint = f"http://user:{password}@127.0.0.1:{free_port()}"
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=moto_server.REGION,
                          aws_access_key_id="AKIATEST", aws_secret_access_key=secret,
                          config=Config(retries={"mode": "standard", "max_attempts": 1},
                                        connect_timeout=0.5, read_timeout=0.5))
    store = DynamoStore("paywire-unreachable", client=client)
    try:
        with pytest.raises(StorageError) as failed:
            async with store.transaction() as uow:
                await uow.get_order("o-1")
    finally:
        await store.close()
        client.close()
    shown = f"{failed.value.message} {failed.value.details} {store!r}"
    assert "unreachable" in failed.value.message
    assert secret not in shown and password not in shown


async def test_from_url_reads_region_and_endpoint(moto_server: MotoServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """dynamodb://<table> takes region and endpoint from the AWS environment or its query;
    other URLs and a missing region are configuration errors."""
    for key, value in moto_server.env.items():
        monkeypatch.setenv(key, value)
    store = DynamoStore.from_url("dynamodb://paywire-from-url")
    await store.setup()
    async with store.transaction() as uow:
        assert await uow.get_order("o-1") is None
    await store.close()
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match="region"):
        DynamoStore.from_url("dynamodb://paywire-from-url")
    queried = DynamoStore.from_url(f"dynamodb://paywire-from-url?region={moto_server.REGION}"
                                   f"&endpoint_url={moto_server.endpoint_url}")
    async with queried.transaction() as uow:
        assert await uow.get_order("o-1") is None
    await queried.close()
    for bad in ("dynamodb://x", "dynamodb://paywire/extra", "sqlite:///x.db",
                "dynamodb://paywire?read_timeout=1"):
        with pytest.raises(ConfigError):
            DynamoStore.from_url(bad)
    await asyncio.to_thread(boto3.client("dynamodb", region_name=moto_server.REGION,
                                         endpoint_url=moto_server.endpoint_url).delete_table,
                            TableName="paywire-from-url")
