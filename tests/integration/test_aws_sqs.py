"""SQS delivery on the moto server: the SQS target, the drainer and the consumer handler.

Queues are real (moto server over HTTP, fresh names per test); the consumer is the Lambda
handler `paywire.aws.sqs_consumer.SqsConsumer`, fed events built by `paywire.aws.events` from
real `ReceiveMessage` answers (`paywire.aws.local.poll_queue`, which deletes what the handler
did not report failed, as Lambda's event source mapping does). The shop verifies every
delivery with `paywire.verify_delivery`. The store is a migrated SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.config
import pytest
from botocore.exceptions import ClientError

from awskit import (
    SHOP_SECRET,
    TEMPLATE_MAX_RECEIVES,
    Queue,
    Shop,
    client,
    drain_queue,
    make_queue,
    move_messages,
    running_shop,
)
from paywire.aws.config import AwsConfig
from paywire.aws.drainer import Drainer, DrainSession
from paywire.aws.events import LocalContext
from paywire.aws.local import poll_queue, queue_arn
from paywire.aws.runtime import default_config, default_settings
from paywire.aws.sqs_consumer import SqsConsumer
from paywire.delivery.sqs import SqsTarget, delivery_error, envelope, read_envelope
from paywire.domain.errors import ConfigError, DeliveryError
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine
from paywire.ports import OutboxMessage
from paywire.services.queue_delivery import backoff
from paywire.settings import Settings
from paywire.store import migrate
from paywire.store.sql import SqlStore
from paywire.testing import MotoServer, free_port

pytestmark = pytest.mark.usefixtures("powertools_logging", "aws_env")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A migrated SQLite database for the module, and its data directory."""
    data_dir = tmp_path_factory.mktemp("aws-sqs")
    url = f"sqlite+aiosqlite:///{data_dir / 'paywire.db'}"
    migrate.upgrade(url)
    return url, data_dir


@pytest.fixture
async def store(database: tuple[str, Path]) -> AsyncIterator[SqlStore]:
    """The real store on the module's database."""
    store = SqlStore(database[0])
    yield store
    await store.close()


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    """The shop's fulfilment endpoint (message ids are fresh per test)."""
    with running_shop() as shop:
        yield shop


@pytest.fixture
def sqs(moto_server: MotoServer) -> Any:
    """An SQS client on the moto server."""
    return client(moto_server, "sqs")


def settings_for(database: tuple[str, Path], shop: Shop, **options: Any) -> Settings:
    """paywire's settings for the consumer: the shop's callback, the module's database."""
    url, data_dir = database
    return Settings.load(_env_file=None, paypal_env="emulator",
                         paypal_base_url=f"http://127.0.0.1:{free_port()}",
                         paypal_client_id="client", paypal_client_secret="secret-value-1",
                         database_url=url, data_dir=data_dir, fulfilment_url=shop.url,
                         fulfilment_secret=SHOP_SECRET, fulfilment_timeout_seconds=5,
                         **options)


@pytest.fixture
def consumer(database: tuple[str, Path], shop: Shop) -> Iterator[SqsConsumer]:
    """The consumer handler; a failed record is due again at once (no backoff), and the last
    allowed receive is the 2nd."""
    settings = settings_for(database, shop, outbox_base_delay_seconds=0)
    config = AwsConfig(sqs_max_receives=2)
    handler = SqsConsumer(settings_factory=lambda: settings, config_factory=lambda: config)
    yield handler
    handler.close()


class ManualClock:
    """A clock the test moves (compressed time); starts at the wall clock's now."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        """The current (test) time."""
        return self.at

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    """The consumer's clock, moved by the test."""
    return ManualClock()


@pytest.fixture
def backoff_consumer(database: tuple[str, Path], shop: Shop,
                     clock: ManualClock) -> Iterator[SqsConsumer]:
    """The consumer handler with the default backoff (5 s doubling to 1 h), maximum age (3
    days) and the template's MaxReceiveCount, on the test's clock."""
    settings = settings_for(database, shop)
    config = AwsConfig(sqs_max_receives=TEMPLATE_MAX_RECEIVES)
    handler = SqsConsumer(settings_factory=lambda: settings, config_factory=lambda: config,
                          clock=clock)
    yield handler
    handler.close()


async def seed(store: SqlStore, n: int = 1, *, order_id: str | None = None,
               kind: str = "order.completed", trace_id: str | None = None,
               ) -> list[OutboxMessage]:
    """`n` announcements in the outbox, for one order (written too) unless given, written in
    the trace `trace_id` if given."""
    tag = secrets.token_hex(4)
    now = datetime.now(UTC)
    order_id = order_id or f"ord_{tag}"
    async with store.transaction() as uow:
        if await uow.get_order(order_id) is None:
            line = OrderLine("mug", "Mug", 1, Money.parse("12.50", "USD"))
            await uow.insert_order(Order.new(order_id, Intent.CAPTURE, [line], now))
        for i in range(n):
            payload = {"type": kind, "order_id": order_id, "n": i}
            assert await uow.add_announcement(
                Announcement(f"{kind}:{order_id}:{tag}:{i}", kind, order_id, payload),
                f"msg_{tag}_{i}", now, trace_id=trace_id)
        found = [await uow.get_outbox(f"msg_{tag}_{i}") for i in range(n)]
    return [m for m in found if m is not None]


async def rows(store: SqlStore, messages: list[OutboxMessage]) -> list[OutboxMessage]:
    """The messages as stored now."""
    async with store.transaction() as uow:
        found = [await uow.get_outbox(m.id) for m in messages]
    return [m for m in found if m is not None]


async def send(queue: Queue, *messages: OutboxMessage) -> None:
    """Hand the messages to the queue through the SQS target."""
    target = SqsTarget(queue.url)
    try:
        for message in messages:
            await target.deliver(message)
    finally:
        await target.aclose()


async def poll(sqs: Any, queue: Queue, handler: SqsConsumer, **options: Any) -> Any:
    """One event source mapping poll, the handler run in a worker thread (as Lambda would)."""
    return await asyncio.to_thread(poll_queue, sqs, queue.url, handler, arn=queue.arn,
                                   **options)


# --- the target ------------------------------------------------------------------------------


async def test_target_sends_the_envelope_with_attributes_on_a_standard_queue(
        store: SqlStore, sqs: Any) -> None:
    """A standard queue gets the envelope as the body, the message id and type as message
    attributes, and no FIFO ids."""
    queue = make_queue(sqs)
    [message] = await seed(store)
    await send(queue, message)
    [got] = drain_queue(sqs, queue.url)
    envelope = read_envelope(got["Body"])
    assert (envelope.id, envelope.key, envelope.type, envelope.order_id) == (
        message.id, message.key, message.type, message.order_id)
    assert envelope.payload == message.payload and envelope.created_at == message.created_at
    assert json.loads(got["Body"])["id"] == message.id
    attributes = got["MessageAttributes"]
    assert attributes["message_id"] == {"StringValue": message.id, "DataType": "String"}
    assert attributes["type"]["StringValue"] == "order.completed"
    assert "MessageGroupId" not in got["Attributes"]


async def test_target_groups_by_order_and_deduplicates_by_message_id_on_fifo(
        store: SqlStore, sqs: Any) -> None:
    """On a FIFO queue the group is the order id and the deduplication id the message id: a
    message sent twice within the window is queued once, and one order's stay in order."""
    queue = make_queue(sqs, fifo=True)
    first = await seed(store, 2)
    other = await seed(store, 1)
    await send(queue, first[0], other[0], first[1], first[0])
    got = drain_queue(sqs, queue.url)
    ids = [read_envelope(m["Body"]).id for m in got]
    assert sorted(ids) == sorted(m.id for m in [*first, *other])
    assert [i for i in ids if i in {m.id for m in first}] == [first[0].id, first[1].id]
    for m in got:
        envelope = read_envelope(m["Body"])
        assert m["Attributes"]["MessageGroupId"] == envelope.order_id
        assert m["Attributes"]["MessageDeduplicationId"] == envelope.id


async def test_target_errors_are_mapped_without_credentials(store: SqlStore, sqs: Any,
                                                            moto_server: MotoServer) -> None:
    """A missing queue is refused for good; an unreachable endpoint, throttling and a 5xx are
    retryable; a denied access is not; no error carries a credential."""
    [message] = await seed(store)
    missing = SqsTarget(f"{moto_server.endpoint_url}/123456789012/no-such-queue-{free_port()}")
    with pytest.raises(DeliveryError) as gone:
        await missing.deliver(message)
    await missing.aclose()
    assert not gone.value.retryable and gone.value.target == "sqs"
    assert "NonExistentQueue" in gone.value.message or "QueueDoesNotExist" in gone.value.message
    dead_end = f"http://127.0.0.1:{free_port()}"
    unreachable = SqsTarget(f"{dead_end}/123456789012/q", client=client_for(dead_end))
    with pytest.raises(DeliveryError) as down:
        await unreachable.deliver(message)
    assert down.value.retryable and "cannot reach SQS" in down.value.message
    cases = {("ThrottlingException", 400): True, ("InternalError", 500): True,
             ("AccessDenied", 403): False, ("KmsThrottled", 400): True,
             ("InvalidParameterValue", 400): False}
    for (code, status), retryable in cases.items():
        err = ClientError({"Error": {"Code": code, "Message": "Credential=testing/x"},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, "SendMessage")
        mapped = delivery_error(err, target="sqs", queue_url="https://sqs.example/1/q")
        assert mapped.retryable is retryable, code
        assert mapped.status == status and code in mapped.message
    for error in (gone.value, down.value, mapped):
        text = f"{error.message} {error.details}"
        assert "testing" not in text and "Credential" not in text


def client_settings(client: Any) -> dict[str, Any]:
    """What a boto3 client was configured with: timeouts and retries."""
    config = client.meta.config
    return {"connect_timeout": config.connect_timeout, "read_timeout": config.read_timeout,
            "retries": config.retries}


async def test_sqs_clients_carry_the_aws_clients_timeouts_and_retries(
        store: SqlStore, consumer: SqsConsumer, moto_server: MotoServer, sqs: Any) -> None:
    """The SQS target's client and the consumer's have the DynamoDB client's timeouts and
    standard-mode retries (not botocore's 60 s defaults), and they work over moto."""
    from paywire.aws.sqs_consumer import Session
    from paywire.store.dynamo import make_client

    dynamo = make_client(region=moto_server.REGION)
    wanted = client_settings(dynamo)
    dynamo.close()
    assert wanted["connect_timeout"] == 3 and wanted["read_timeout"] == 10
    assert wanted["retries"]["mode"] == "standard"
    queue = make_queue(sqs)
    target = SqsTarget(queue.url)
    try:
        assert client_settings(target._client) == wanted
        [message] = await seed(store)
        await target.deliver(message)
    finally:
        await target.aclose()
    assert [json.loads(m["Body"])["id"] for m in drain_queue(sqs, queue.url)] == [message.id]

    async def consumer_client(session: Session) -> dict[str, Any]:
        return client_settings(session.sqs)

    assert await asyncio.to_thread(consumer.runtime.run, consumer_client) == wanted


def client_for(endpoint: str) -> Any:
    """An SQS client for `endpoint` that gives up at once (no retries, short timeouts)."""
    import boto3

    return boto3.client("sqs", endpoint_url=endpoint, region_name="eu-west-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=botocore.config.Config(retries={"max_attempts": 1},
                                                      connect_timeout=1, read_timeout=1))


# --- the drainer -----------------------------------------------------------------------------


async def test_drainer_moves_due_rows_to_sqs_as_queued(tmp_path: Path, sqs: Any,
                                                       shop: Shop) -> None:
    """The drainer sends every due row (rounds of a small batch) and marks each queued; with
    no time left it starts no round."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'drain.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    queue = make_queue(sqs)
    store = SqlStore(url)
    settings = settings_for((url, tmp_path), shop).model_copy(update={"outbox_batch": 3})
    drainer = Drainer(settings_factory=lambda: settings,
                      config_factory=lambda: AwsConfig(sqs_queue_url=queue.url))
    try:
        messages = await seed(store, 7)
        idle = await asyncio.to_thread(drainer, {}, LocalContext(timeout_seconds=1))
        assert idle["rounds"] == 0 and all(m.status == "pending"
                                           for m in await rows(store, messages))
        report = await asyncio.to_thread(drainer, {"source": "aws.events"}, LocalContext())
        assert report["queued"] == 7 and report["claimed"] == 7 and report["rounds"] == 3
        assert [m.status for m in await rows(store, messages)] == ["queued"] * 7
        got = drain_queue(sqs, queue.url)
        assert sorted(read_envelope(m["Body"]).id for m in got) == sorted(m.id for m in messages)
        again = await asyncio.to_thread(drainer, {}, LocalContext())
        assert again["claimed"] == 0 and drainer.runtime.builds == 1
    finally:
        drainer.close()
        await store.close()


# --- the consumer ----------------------------------------------------------------------------


async def test_consumer_delivers_a_message_sent_twice_once(store: SqlStore, sqs: Any,
                                                           shop: Shop,
                                                           consumer: SqsConsumer) -> None:
    """Two copies in one batch and a third later (past FIFO's window, say): the shop accepts
    the message once, the row is delivered after one attempt, every copy is acknowledged."""
    queue = make_queue(sqs)
    [message] = await seed(store)
    await send(queue, message, message)
    first = await poll(sqs, queue, consumer)
    assert first.received == 2 and first.failed == [] and len(first.deleted) == 2
    await send(queue, message)
    later = await poll(sqs, queue, consumer)
    assert later.received == 1 and later.failed == []
    assert shop.accepted[message.id] == 1 and shop.seen.count(message.id) == 1
    [row] = await rows(store, [message])
    assert row.status == "delivered" and row.attempts == 1 and row.delivered_at is not None


async def test_consumer_reports_only_the_failed_records(
        store: SqlStore, sqs: Any, shop: Shop, backoff_consumer: SqsConsumer) -> None:
    """Of four messages the shop refuses two: exactly those are reported failed (and stay on
    the queue, hidden for their backoff); the other two are delivered and deleted."""
    queue = make_queue(sqs)
    messages = [(await seed(store))[0] for _ in range(4)]
    shop.refuse.update({messages[1].id, messages[3].id})
    await send(queue, *messages)
    result = await poll(sqs, queue, backoff_consumer)
    by_item = {r["messageId"]: read_envelope(r["body"]).id for r in result.event["Records"]}
    assert result.received == 4
    assert sorted(by_item[i] for i in result.failed) == sorted([messages[1].id, messages[3].id])
    assert result.answer == {"batchItemFailures": [{"itemIdentifier": i} for i in result.failed]}
    assert [m.status for m in await rows(store, messages)] == [
        "delivered", "pending", "delivered", "pending"]
    waiting = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert waiting["ApproximateNumberOfMessagesNotVisible"] == "2"


def make_visible(sqs: Any, queue: Queue, result: Any) -> None:
    """Time passes: the messages of a poll's batch are visible again now (their backoff is
    over in the test's compressed time)."""
    sqs.change_message_visibility_batch(QueueUrl=queue.url, Entries=[
        {"Id": str(i), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": 0}
        for i, r in enumerate(result.event["Records"])])


async def test_shop_down_two_hours_then_up_gets_every_announcement_once(
        store: SqlStore, sqs: Any, shop: Shop, backoff_consumer: SqsConsumer,
        clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    """The shop down for two (compressed) hours: each failed message is hidden for its backoff
    (5 s doubling to 1 h, jittered), the clock jumps by that much, nothing goes dead; back up,
    every announcement arrives exactly once."""
    queue = make_queue(sqs, max_receives=TEMPLATE_MAX_RECEIVES)
    messages = await seed(store, 5)
    ids = {m.id for m in messages}
    shop.refuse.update(ids)
    await send(queue, *messages)
    start, receives = clock.now(), 0
    with caplog.at_level(logging.INFO, logger="paywire.queue"):
        while clock.now() - start < timedelta(hours=2):
            caplog.clear()
            result = await poll(sqs, queue, backoff_consumer, visibility_timeout=0)
            receives += 1
            assert result.received == 5 and len(result.failed) == 5, receives
            waits = [r.__dict__["retry_in"] for r in caplog.records if "retry_in" in r.__dict__]
            full = backoff(receives, timedelta(seconds=5), timedelta(hours=1))
            assert len(waits) == 5 and all(full / 2 <= w <= math.ceil(full) for w in waits)
            hidden = await poll(sqs, queue, backoff_consumer, visibility_timeout=0)
            assert hidden.received == 0  # hidden by the consumer's backoff, not the receive
            clock.advance(max(waits))
            make_visible(sqs, queue, result)
    assert 10 <= receives <= 16  # ~1.4 h of doubling, then 30-60 min apart
    assert [m.status for m in await rows(store, messages)] == ["pending"] * 5
    shop.refuse.difference_update(ids)
    up = await poll(sqs, queue, backoff_consumer)
    assert up.received == 5 and up.failed == [] and len(up.deleted) == 5
    assert {r["attributes"]["ApproximateReceiveCount"] for r in up.event["Records"]} == {
        str(receives + 1)}
    assert all(shop.accepted[i] == 1 for i in ids)  # once each, after one try per receive
    assert all(shop.seen.count(i) == receives + 1 for i in ids)
    assert [m.status for m in await rows(store, messages)] == ["delivered"] * 5
    assert drain_queue(sqs, queue.url) == [] and drain_queue(sqs, queue.dlq_url or "") == []


async def test_still_failing_at_max_age_is_dead_flagged_and_acknowledged(
        store: SqlStore, sqs: Any, shop: Shop, backoff_consumer: SqsConsumer,
        clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    """A message whose row reaches the maximum age (3 days) while the shop still fails is
    settled dead with an ERROR, its order flagged, and acknowledged: neither on the queue nor
    in the DLQ (the row is the record; `paywire outbox retry` revives it)."""
    queue = make_queue(sqs, max_receives=TEMPLATE_MAX_RECEIVES)
    [message] = await seed(store)
    shop.refuse.add(message.id)
    await send(queue, message)
    first = await poll(sqs, queue, backoff_consumer, visibility_timeout=0)
    assert len(first.failed) == 1
    clock.advance(timedelta(days=3, minutes=1).total_seconds())
    make_visible(sqs, queue, first)
    with caplog.at_level(logging.ERROR, logger="paywire.queue"):
        last = await poll(sqs, queue, backoff_consumer)
    assert last.received == 1 and last.failed == [] and len(last.deleted) == 1
    [row] = await rows(store, [message])
    assert row.status == "dead" and "503" in (row.last_error or "")
    [dead] = [r for r in caplog.records
              if message.id in r.getMessage() and r.levelno == logging.ERROR]
    assert "dead" in dead.getMessage() and dead.__dict__["reason"] == "max_age"
    async with store.transaction() as uow:
        order = await uow.get_order(message.order_id)
    assert order is not None and order.needs_attention == "undelivered:order.completed"
    assert drain_queue(sqs, queue.url) == [] and drain_queue(sqs, queue.dlq_url or "") == []


async def test_fifo_failure_fails_the_rest_of_its_group_untried(store: SqlStore, sqs: Any,
                                                                shop: Shop,
                                                                consumer: SqsConsumer) -> None:
    """a1 a2 b1 a3 with a2 refused: a1 and b1 delivered; a2 failed; a3 reported failed
    without reaching the shop (it must not overtake a2)."""
    queue = make_queue(sqs, fifo=True)
    a1, a2, a3 = await seed(store, 3)
    [b1] = await seed(store)
    shop.refuse.add(a2.id)
    await send(queue, a1, a2, b1, a3)
    result = await poll(sqs, queue, consumer)
    by_item = {r["messageId"]: read_envelope(r["body"]).id for r in result.event["Records"]}
    assert result.received == 4
    assert [by_item[i] for i in result.failed] == [a2.id, a3.id]
    assert a3.id not in shop.seen and shop.accepted[a1.id] == shop.accepted[b1.id] == 1
    assert [m.status for m in await rows(store, [a1, a2, b1, a3])] == [
        "delivered", "pending", "delivered", "pending"]


async def test_poison_message_goes_dead_with_an_alert_and_ends_in_the_dlq(
        store: SqlStore, sqs: Any, shop: Shop, consumer: SqsConsumer,
        caplog: pytest.LogCaptureFixture) -> None:
    """Redrive after 2 receives: the first failure is retried; on the 2nd receive the row
    goes dead, the order is flagged with order.needs_attention in the outbox and an ERROR is
    logged; the queue then moves the message to its DLQ. An unreadable body ends there too."""
    queue = make_queue(sqs, max_receives=2)
    [message] = await seed(store)
    shop.refuse.add(message.id)
    await send(queue, message)
    sqs.send_message(QueueUrl=queue.url, MessageBody="{not an envelope")
    with caplog.at_level(logging.ERROR, logger="paywire.queue"):
        first = await poll(sqs, queue, consumer, visibility_timeout=0)
        assert len(first.failed) == 2 and (await rows(store, [message]))[0].status == "pending"
        assert not [r for r in caplog.records if message.id in r.getMessage()]
        second = await poll(sqs, queue, consumer, visibility_timeout=0)
    assert len(second.failed) == 2
    assert (await poll(sqs, queue, consumer)).received == 0  # moved on this receive
    [row] = await rows(store, [message])
    assert row.status == "dead" and row.attempts == 1 and "503" in (row.last_error or "")
    async with store.transaction() as uow:
        order = await uow.get_order(message.order_id)
        outbox = await uow.outbox_for_order(message.order_id)
    assert order is not None and order.needs_attention == "undelivered:order.completed"
    alerts = [m for m in outbox if m.type == "order.needs_attention"]
    assert len(alerts) == 1 and alerts[0].payload["reason"] == "undelivered:order.completed"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    dead = [r for r in errors if message.id in r.getMessage() and "dead" in r.getMessage()]
    assert len(dead) == 1 and dead[0].__dict__["order_id"] == message.order_id
    assert len([r for r in errors if "unreadable" in r.getMessage()]) == 2
    assert dead[0].__dict__["reason"] == "max_receives"
    dlq = drain_queue(sqs, queue.dlq_url or "")
    assert sorted(m["Body"] for m in dlq) == sorted([envelope(message), "{not an envelope"])


async def test_gone_endpoint_is_dead_at_once_and_acknowledged(store: SqlStore, sqs: Any,
                                                              shop: Shop,
                                                              consumer: SqsConsumer) -> None:
    """A 410 from the shop will never succeed: dead and flagged on the first receive, and the
    message acknowledged (the row is the record; `paywire outbox retry` revives it)."""
    queue = make_queue(sqs, max_receives=2)
    [message] = await seed(store)
    shop.gone.add(message.id)
    await send(queue, message)
    result = await poll(sqs, queue, consumer)
    assert result.failed == [] and len(result.deleted) == 1
    [row] = await rows(store, [message])
    assert row.status == "dead" and "410" in (row.last_error or "")
    async with store.transaction() as uow:
        order = await uow.get_order(message.order_id)
    assert order is not None and order.needs_attention == "undelivered:order.completed"


async def test_logs_are_json_with_the_invocation_and_redacted(
        store: SqlStore, sqs: Any, consumer: SqsConsumer,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Handler log lines are JSON objects with the service, request id and cold-start flag;
    a secret of the settings, a whsec_ secret or a bearer token never reaches the output."""
    queue = make_queue(sqs)
    [message] = await seed(store)
    await send(queue, message)
    context = LocalContext(function_name="paywire-sqs-test")
    await asyncio.to_thread(poll_queue, sqs, queue.url, consumer, arn=queue.arn,
                            context=context)
    log = logging.getLogger("paywire.aws.test")
    log.error("leaking %s and %s", "secret-value-1", SHOP_SECRET)
    log.error("header Authorization: Bearer abc.def-123 for %s", message.id)
    # The log lines (the EMF lines beside them, `_aws`, are the invocation's metrics).
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{") and '"_aws"' not in line]
    batch = [line for line in lines if line["message"].startswith("SQS batch")]
    assert batch and batch[-1]["service"] == "paywire"
    assert batch[-1]["function_request_id"] == context.aws_request_id
    assert batch[-1]["function_name"] == "paywire-sqs-test"
    assert isinstance(batch[-1]["cold_start"], bool)
    leaks = [line for line in lines if line["message"].startswith(("leaking", "header"))]
    assert len(leaks) == 2
    text = json.dumps(lines)
    assert "secret-value-1" not in text and SHOP_SECRET not in text and "abc.def-123" not in text
    assert leaks[0]["message"] == "leaking *** and ***"
    assert leaks[1]["message"] == f"header Authorization: Bearer *** for {message.id}"


async def test_a_rows_trace_rides_the_queue_to_the_shop_and_the_log_lines(
        store: SqlStore, sqs: Any, shop: Shop, consumer: SqsConsumer,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The queue message carries the row's `traceparent` attribute; the consumer delivers in
    the row's trace: the shop's callback names it and the delivery's JSON line carries it
    beside the invocation's keys."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    [message] = await seed(store, trace_id=trace_id)
    peek = make_queue(sqs)
    await send(peek, message)
    [got] = drain_queue(sqs, peek.url)
    attribute = got["MessageAttributes"]["traceparent"]["StringValue"]
    assert attribute.startswith(f"00-{trace_id}-")
    queue = make_queue(sqs)
    await send(queue, message)
    capsys.readouterr()
    result = await poll(sqs, queue, consumer)
    assert result.failed == [] and shop.traces[message.id] == trace_id
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{") and '"_aws"' not in line]  # log lines, not EMF
    [delivered] = [line for line in lines if line["message"].startswith("outbox message")
                   and line.get("outcome") == "delivered"]
    assert (delivered["trace_id"], delivered["order_id"]) == (trace_id, message.order_id)
    assert delivered["function_request_id"] and delivered["service"] == "paywire"


async def test_container_is_rebuilt_only_when_the_settings_change(
        database: tuple[str, Path], shop: Shop, sqs: Any) -> None:
    """Invocations reuse the environment's container while the settings factory returns equal
    settings (a fresh but equal object included), and build a new one when they change."""
    queue = make_queue(sqs)
    base = settings_for(database, shop)
    current = [base]
    drainer = Drainer(settings_factory=lambda: current[0],
                      config_factory=lambda: AwsConfig(sqs_queue_url=queue.url))
    no_time = LocalContext(timeout_seconds=0)  # builds the session, starts no round
    try:
        for settings in (base, base.model_copy(), base, base.model_copy(
                update={"outbox_batch": 7}), base.model_copy(update={"outbox_batch": 7})):
            current[0] = settings
            assert (await asyncio.to_thread(drainer, {}, no_time))["rounds"] == 0
        assert drainer.runtime.builds == 2

        async def batch(session: DrainSession) -> int:
            return session.worker.batch

        assert await asyncio.to_thread(drainer.runtime.run, batch) == 7
    finally:
        drainer.close()


def test_default_settings_are_parsed_again_only_when_the_environment_changes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without a stage, each invocation's settings come from the environment, parsed once and
    reused until a PAYWIRE_ variable changes (parsing costs milliseconds per request)."""
    monkeypatch.chdir(tmp_path)  # no .env file
    monkeypatch.delenv("PAYWIRE_STAGE", raising=False)
    monkeypatch.setenv("PAYWIRE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_SQS_MAX_RECEIVES", "4")
    first, config = default_settings(), default_config()
    assert default_settings() is first and default_config() is config
    assert first.data_dir == tmp_path and config.sqs_max_receives == 4
    monkeypatch.setenv("PAYWIRE_OUTBOX_BATCH", "9")
    monkeypatch.setenv("PAYWIRE_SQS_MAX_RECEIVES", "6")
    again = default_settings()
    assert again is not first and again.outbox_batch == 9
    assert default_config().sqs_max_receives == 6


# --- the dead-letter queue redrive -----------------------------------------------------------
#
# The guide's redrive is `aws sqs start-message-move-task --source-arn <dlq-arn>`. The moto
# server does not implement it (the first test checks that it still does not), so these tests
# move the messages with `awskit.move_messages`, which does what AWS documents the move to do:
# each message sent again to the outbox queue as a new message (new id, receive count from 1,
# same body and message attributes), then deleted from the dead-letter queue. Everything else
# is real: moto moves messages to the dead-letter queue after MaxReceiveCount receives, the
# drainer and the consumer are the Lambda handlers, the operator's commands are the CLI's.


def test_the_moto_server_cannot_move_messages(moto_server: MotoServer, sqs: Any) -> None:
    """moto 5.2.5's server answers StartMessageMoveTask and ListMessageMoveTasks with a 500
    (its "start_message_move_task action has not been implemented"), which is why the redrive
    tests below model the move (`awskit.move_messages`). When this fails, moto implements the
    move: drive the real API in those tests instead."""
    queue = make_queue(sqs, max_receives=1)
    dlq_arn = queue_arn(sqs, queue.dlq_url or "")
    impatient = client_for(moto_server.endpoint_url)  # one attempt, no retries of the 500
    calls = {"StartMessageMoveTask": lambda: impatient.start_message_move_task(
                 SourceArn=dlq_arn, DestinationArn=queue.arn),
             "ListMessageMoveTasks": lambda: impatient.list_message_move_tasks(
                 SourceArn=dlq_arn)}
    for name, call in calls.items():
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500, name
    impatient.close()


@dataclass
class Rig:
    """One stage's outbox path on its own database: the queue (MaxReceiveCount 2) and its
    DLQ, the drainer sending to it, the consumer (its last receive the 2nd, no backoff), the
    operator's CLI; the module's shop."""

    store: SqlStore
    queue: Queue
    drainer: Drainer
    consumer: SqsConsumer
    env: dict[str, str]
    sqs: Any

    async def drain(self) -> dict[str, Any]:
        """One scheduled drainer run: the due rows sent to the queue and marked queued."""
        report: dict[str, Any] = await asyncio.to_thread(self.drainer, {}, LocalContext())
        return report

    async def poll(self, handler: SqsConsumer | None = None, **options: Any) -> Any:
        """One poll of the consumer's event source mapping (a failed message visible again
        at once)."""
        return await poll(self.sqs, self.queue, handler or self.consumer,
                          visibility_timeout=0, **options)

    async def operator(self, *args: str) -> Any:
        """`paywire ARGS` against the stage's store, as the operator runs it; JSON parsed."""
        from typer.testing import CliRunner

        from paywire.cli import app

        result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=self.env)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return json.loads(result.stdout) if "--json" in args else result.stdout

    async def listed(self, status: str, among: list[str]) -> list[str]:
        """Which of the ids `among` `paywire outbox list --status STATUS --json` shows."""
        rows = await self.operator("outbox", "list", "--status", status, "--json")
        return sorted(str(r["id"]) for r in rows["data"] if r["id"] in among)

    def redrive(self) -> list[str]:
        """`aws sqs start-message-move-task --source-arn <dlq-arn>`, modelled (see above)."""
        return move_messages(self.sqs, self.queue, self.queue)

    def waiting(self) -> tuple[int, int]:
        """Messages on (the outbox queue, its dead-letter queue), visible or not."""
        counts = []
        for url in (self.queue.url, self.queue.dlq_url or ""):
            a = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
                "Attributes"]
            counts.append(int(a["ApproximateNumberOfMessages"])
                          + int(a["ApproximateNumberOfMessagesNotVisible"]))
        return counts[0], counts[1]


@pytest.fixture
async def rig(tmp_path: Path, sqs: Any, shop: Shop) -> AsyncIterator[Rig]:
    """A fresh stage (its own database: the drainer sends every due row it finds)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'redrive.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    queue = make_queue(sqs, max_receives=2)
    settings = settings_for((url, tmp_path), shop, outbox_base_delay_seconds=0)
    config = AwsConfig(sqs_queue_url=queue.url, sqs_max_receives=2)
    drainer = Drainer(settings_factory=lambda: settings, config_factory=lambda: config)
    consumer = SqsConsumer(settings_factory=lambda: settings, config_factory=lambda: config)
    env = {"PAYWIRE_PAYPAL_ENV": "emulator", "PAYWIRE_PAYPAL_BASE_URL": settings.paypal.url,
           "PAYWIRE_PAYPAL_CLIENT_ID": "client", "PAYWIRE_PAYPAL_CLIENT_SECRET": "secret-value-1",
           "PAYWIRE_DATABASE_URL": url, "PAYWIRE_DATA_DIR": str(tmp_path), "COLUMNS": "250"}
    store = SqlStore(url)
    try:
        yield Rig(store, queue, drainer, consumer, env, sqs)
    finally:
        drainer.close()
        consumer.close()
        await store.close()


async def dead_lettered_by_a_shop_outage(rig: Rig, shop: Shop, n: int) -> list[OutboxMessage]:
    """`n` announcements of one order sent by the drainer while the shop answers 503: the
    first receive is retried, the last (2nd) settles each row dead and flags the order, and
    the queue then moves the messages to its DLQ. The order's `order.needs_attention`
    announcement reaches the shop, which is back up afterwards."""
    messages = await seed(rig.store, n)
    ids = {m.id for m in messages}
    shop.refuse.update(ids)
    assert (await rig.drain())["queued"] == n
    assert len((await rig.poll()).failed) == n  # receive 1: retried
    assert len((await rig.poll()).failed) == n  # receive 2: dead, flagged
    assert (await rig.poll()).received == 0  # moved to the DLQ on this receive
    assert (await rig.drain())["queued"] == 1  # the order's needs-attention announcement
    alert = await rig.poll()
    assert alert.received == 1 and alert.failed == []
    assert shop.types[read_envelope(alert.event["Records"][0]["body"]).id] == (
        "order.needs_attention")
    assert rig.waiting() == (0, n)
    shop.refuse.difference_update(ids)
    return messages


async def test_redriven_after_a_consumer_outage_each_announcement_arrives_once(
        rig: Rig, shop: Shop) -> None:
    """The consumer cannot start for MaxReceiveCount receives (a broken deploy, an unreadable
    secret: every invocation fails before it reads a message), so SQS moves the messages to
    the DLQ with their rows still `queued`, which `paywire outbox list --status queued` shows.
    Once it runs again, the redrive brings them back as new messages (receive count 1) and the
    shop gets each announcement exactly once; nothing is left on either queue and the drainer
    has nothing to send again."""
    def unreadable_secret() -> Settings:
        raise ConfigError("cannot read the stage secret paywire/t/app from AWS Secrets "
                          "Manager: AccessDeniedException")

    broken = SqsConsumer(settings_factory=unreadable_secret,
                         config_factory=lambda: AwsConfig(sqs_max_receives=2))
    try:
        messages = await seed(rig.store, 3)
        ids = sorted(m.id for m in messages)
        assert (await rig.drain())["queued"] == 3
        for _ in range(2):
            with pytest.raises(ConfigError):
                await rig.poll(broken)
        assert (await rig.poll(broken)).received == 0  # moved to the DLQ on this receive
    finally:
        broken.close()
    assert rig.waiting() == (0, 3) and await rig.listed("queued", ids) == ids
    assert not any(shop.seen.count(i) for i in ids)

    moved = rig.redrive()
    assert len(moved) == 3 and rig.waiting() == (3, 0)
    result = await rig.poll()
    assert result.received == 3 and result.failed == [] and len(result.deleted) == 3
    assert sorted(r["messageId"] for r in result.event["Records"]) == sorted(moved)
    assert {r["attributes"]["ApproximateReceiveCount"] for r in result.event["Records"]} == {"1"}
    assert sorted(read_envelope(r["body"]).id for r in result.event["Records"]) == ids
    assert all(shop.accepted[i] == 1 and shop.seen.count(i) == 1 for i in ids)
    assert await rig.listed("delivered", ids) == ids and rig.waiting() == (0, 0)
    assert (await rig.drain())["claimed"] == 0


async def test_a_redriven_message_of_a_dead_row_waits_for_outbox_retry(
        rig: Rig, shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    """The shop down through MaxReceiveCount receives: the consumer settles the rows dead and
    flags their orders (needs attention) on the last receive, and SQS moves the messages to
    the DLQ. Redriven before anyone ran `paywire outbox retry`, they are acknowledged without
    reaching the shop (dead is final until the operator revives the row, as for the outbox
    worker), a WARNING naming the command; the rows stay dead and both queues end empty.
    `paywire outbox retry` then makes a row pending, and the drainer's copy reaches the shop
    once."""
    messages = await dead_lettered_by_a_shop_outage(rig, shop, 2)
    ids = sorted(m.id for m in messages)
    assert await rig.listed("dead", ids) == ids
    tried = {i: shop.seen.count(i) for i in ids}  # the two refused attempts each

    assert len(rig.redrive()) == 2
    with caplog.at_level(logging.WARNING, logger="paywire.queue"):
        result = await rig.poll()
    assert result.received == 2 and result.failed == [] and len(result.deleted) == 2
    assert {i: shop.seen.count(i) for i in ids} == tried and not any(shop.accepted[i]
                                                                      for i in ids)
    assert await rig.listed("dead", ids) == ids and rig.waiting() == (0, 0)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all(any(f"paywire outbox retry {i}" in w for w in warned) for i in ids), warned
    for m in messages:
        async with rig.store.transaction() as uow:
            order = await uow.get_order(m.order_id)
        assert order is not None and order.needs_attention == "undelivered:order.completed"

    assert "revived" in await rig.operator("outbox", "retry", ids[0])
    assert (await rig.drain())["queued"] == 1
    assert (await rig.poll()).deleted and shop.accepted[ids[0]] == 1
    assert shop.seen.count(ids[0]) == tried[ids[0]] + 1 and shop.accepted[ids[1]] == 0
    assert await rig.listed("delivered", ids) == [ids[0]]
    assert await rig.listed("dead", ids) == [ids[1]]


@pytest.mark.parametrize("drainer_first", [False, True], ids=["redrive-only", "with-drainer"])
async def test_retry_then_redrive_delivers_a_dead_row_once(rig: Rig, shop: Shop,
                                                          drainer_first: bool) -> None:
    """The operator runs `paywire outbox retry` on the dead rows, then redrives the DLQ: the
    redriven message delivers each row once. Redriven before the drainer's next run, the
    drainer then has nothing to send; after it, the drainer's copy and the redriven one are
    both on the queue and the shop still gets the announcement once (the second copy finds
    the row delivered)."""
    messages = await dead_lettered_by_a_shop_outage(rig, shop, 2)
    ids = sorted(m.id for m in messages)
    tried = {i: shop.seen.count(i) for i in ids}
    for i in ids:
        assert "revived" in await rig.operator("outbox", "retry", i)
    assert await rig.listed("pending", ids) == ids
    if drainer_first:
        assert (await rig.drain())["queued"] == 2
    rig.redrive()
    assert rig.waiting() == (4 if drainer_first else 2, 0)
    result = await rig.poll()
    assert result.failed == [] and len(result.deleted) == result.received
    while rig.waiting() != (0, 0):
        assert (await rig.poll()).failed == []
    assert (await rig.drain())["claimed"] == 0  # nothing left to send again
    assert all(shop.accepted[i] == 1 and shop.seen.count(i) == tried[i] + 1 for i in ids)
    assert await rig.listed("delivered", ids) == ids


@pytest.mark.parametrize("together", [True, False], ids=["one-batch", "one-by-one"])
async def test_a_redriven_copy_and_the_drainers_copy_deliver_once(
        rig: Rig, shop: Shop, together: bool) -> None:
    """A row retried and sent again by the drainer while its old message is redriven: the
    queue holds two copies of one announcement. In one batch the consumer runs them one after
    the other (the second finds the row delivered); received one by one, the second is a
    duplicate; either way the shop gets it once and both copies are deleted."""
    [message] = await dead_lettered_by_a_shop_outage(rig, shop, 1)
    tried = shop.seen.count(message.id)
    assert "revived" in await rig.operator("outbox", "retry", message.id)
    assert (await rig.drain())["queued"] == 1
    rig.redrive()
    assert rig.waiting() == (2, 0)
    if together:
        result = await rig.poll()
        assert result.received == 2 and result.failed == [] and len(result.deleted) == 2
    else:
        for _ in range(2):
            result = await rig.poll(max_messages=1)
            assert result.received == 1 and result.failed == [] and len(result.deleted) == 1
    assert shop.accepted[message.id] == 1 and shop.seen.count(message.id) == tried + 1
    assert rig.waiting() == (0, 0) and await rig.listed("delivered", [message.id]) == [message.id]
