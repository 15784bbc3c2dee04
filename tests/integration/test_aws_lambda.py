"""End to end through the Lambda handlers: a purchase from the API to the shop, via SQS.

The HTTP handler answers real API Gateway HTTP API (2.0) events; PayPal's side is the emulator,
whose signed webhooks reach the handler through `paywire.aws.local.ApiGateway` with every body
base64-encoded (as API Gateway may send it), so the signature is checked over the decoded raw
bytes. The drainer hands the announcements to a real SQS queue on the moto server and the
consumer, fed events built from real `ReceiveMessage` answers, delivers them to a shop that
verifies each with `paywire.verify_delivery`. The store is an SQLite file, and DynamoDB on
the moto server.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from apikit import approve, settings_for
from awskit import SHOP_SECRET, Queue, Shop, client, make_queue, running_shop
from paywire.aws.config import AwsConfig
from paywire.aws.drainer import Drainer
from paywire.aws.events import LocalContext, http_answer, http_event, stream_event
from paywire.aws.http import HttpApi, webhook_app
from paywire.aws.local import ApiGateway, poll_queue
from paywire.aws.reconciler import ReconcilerFunction
from paywire.aws.sqs_consumer import SqsConsumer
from paywire.aws.stream import StreamHandler
from paywire.bootstrap import store_for
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import OpsUnitOfWork
from paywire.settings import Settings
from paywire.store import dynamo
from paywire.testing import EmulatorServer, MotoServer, ServerThread, free_port
from testkit import CLIENT_ID, CLIENT_SECRET
from webhookkit import PayPal, delivery, quiet, statuses, transmissions

T = TypeVar("T")


pytestmark = pytest.mark.usefixtures("powertools_logging", "aws_env")


@pytest.fixture(params=["sqlite", "dynamodb"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path,
                       moto_server: MotoServer) -> str:
    """A fresh store: an SQLite file (paywire migrates it), or a DynamoDB table on the moto
    server created with `paywire.store.dynamo.ensure_table`."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'paywire.db'}"
    table = f"paywire-e2e-{free_port()}"
    ddb = client(moto_server, "dynamodb")
    try:
        await dynamo.ensure_table(table, client=ddb)
    finally:
        ddb.close()
    return f"dynamodb://{table}"


@dataclass
class Functions:
    """The deployment's functions as Lambda would run them, and what they talk to."""

    settings: Settings
    http: HttpApi
    webhooks: HttpApi  # the webhook function (its own app: the webhook routes only)
    drainer: Drainer
    consumer: SqsConsumer
    reconciler: ReconcilerFunction
    gateway: ApiGateway
    webhook_url: str
    queue: Queue
    sqs: Any

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API request through the HTTP handler as an API Gateway event."""
        raw = json.dumps(body).encode() if body is not None else b""
        event = http_event(method, path, body=raw,
                           headers={"content-type": "application/json"} if raw else {})
        return http_answer(await asyncio.to_thread(self.http, event, LocalContext()))

    async def read(self, fn: Callable[[OpsUnitOfWork], Awaitable[T]]) -> T:
        """Read through the store port (a store of the test's own)."""
        store = store_for(self.settings)
        try:
            async with store.transaction() as uow:
                return await fn(uow)
        finally:
            await store.close()


@pytest.fixture
async def functions(emulator: EmulatorServer, database_url: str, tmp_path: Path,
                    moto_server: MotoServer) -> AsyncIterator[tuple[Functions, Shop]]:
    """The HTTP, drainer, consumer and reconciler functions on one settings (a webhook
    subscription for the gateway's port first), the gateway serving, a queue with a DLQ."""
    port = free_port()
    paypal = PayPal(emulator, CLIENT_ID, CLIENT_SECRET)
    webhook_id = await paypal.subscribe(f"http://127.0.0.1:{port}/webhooks/paypal")
    sqs = client(moto_server, "sqs")
    queue = make_queue(sqs, max_receives=3)
    with running_shop() as shop:
        settings = settings_for(emulator, database_url, tmp_path, paypal_webhook_id=webhook_id,
                                fulfilment_url=shop.url, fulfilment_secret=SHOP_SECRET)
        config = AwsConfig(sqs_queue_url=queue.url, sqs_max_receives=3)
        factories: dict[str, Any] = {"settings_factory": lambda: settings,
                                     "config_factory": lambda: config}
        http, webhooks = HttpApi(**factories), HttpApi(app_factory=webhook_app, **factories)
        # The webhook paths go to the webhook function, as the template routes them.
        gateway = ApiGateway(http, base64_bodies=True, webhooks=webhooks)
        server = ServerThread(gateway, port=port)
        server.start()
        made = Functions(settings, http, webhooks, Drainer(**factories), SqsConsumer(**factories),
                         ReconcilerFunction(**factories), gateway,
                         f"{server.url}/webhooks/paypal", queue, sqs)
        try:
            yield made, shop
        finally:
            server.stop()
            for function in (made.http, made.webhooks, made.drainer, made.consumer,
                             made.reconciler):
                function.close()


async def test_purchase_travels_from_the_api_to_the_shop_once(
        functions: tuple[Functions, Shop], emulator: EmulatorServer) -> None:
    """Create, approve and capture through the HTTP handler; PayPal's signed webhooks arrive
    through it base64-encoded and verify; the drainer queues the announcements, the consumer
    delivers each to the shop exactly once; a redelivery and a doctored webhook change
    nothing; one container served every request."""
    fn, shop = functions
    created = await fn.call("POST", "/v1/checkout/orders",
                            {"items": [{"sku": "mug", "quantity": 2}]})
    assert created.status == 201, created.body
    order = created.json()
    await approve(emulator, order["provider_order_id"])
    captured = await fn.call("POST", f"/v1/checkout/orders/{order['id']}/capture")
    assert captured.status == 200 and captured.json()["status"] == "COMPLETED", captured.body
    await quiet(emulator, timeout=20)

    hooks = [t for t in transmissions(emulator, fn.webhook_url)
             if order["provider_order_id"] in t.body.decode()]
    assert {t.event_type for t in hooks} >= {"CHECKOUT.ORDER.APPROVED",
                                              "PAYMENT.CAPTURE.COMPLETED"}
    assert all(statuses(emulator, t.id) == [200] for t in hooks), [
        (t.event_type, statuses(emulator, t.id)) for t in hooks]
    events = await fn.read(lambda uow: inbox_of(uow, [json.loads(t.body)["id"] for t in hooks]))
    assert all(e is not None and e.body == t.body for e, t in zip(events, hooks, strict=True))

    before = await fn.read(lambda uow: uow.outbox_for_order(order["id"]))
    genuine = delivery(hooks[0])
    resent = await webhook(fn, genuine.body, genuine.headers)
    assert resent.status == 200, resent.body
    doctored = genuine.body.replace(b'"id"', b'"id" ', 1)
    refused = await webhook(fn, doctored, genuine.headers)
    assert refused.status == 400 and refused.json()["error"]["code"] == "webhook_rejected"
    after = await fn.read(lambda uow: uow.outbox_for_order(order["id"]))
    assert [m.id for m in after] == [m.id for m in before]

    drained = await asyncio.to_thread(fn.drainer, {"source": "aws.events"}, LocalContext())
    outbox = await fn.read(lambda uow: uow.outbox_for_order(order["id"]))
    assert drained["queued"] >= 1 and {m.status for m in outbox} == {"queued"}
    assert "order.completed" in {m.type for m in outbox}

    for _ in range(5):
        polled = await asyncio.to_thread(poll_queue, fn.sqs, fn.queue.url, fn.consumer,
                                         arn=fn.queue.arn)
        assert polled.failed == []
        if not polled.received:
            break
    outbox = await fn.read(lambda uow: uow.outbox_for_order(order["id"]))
    assert {m.status for m in outbox} == {"delivered"}
    assert shop.accepted == Counter(m.id for m in outbox)  # each fact's id, accepted once
    assert sorted(shop.seen) == sorted(m.id for m in outbox) and shop.bad == 0
    assert [shop.types[m.id] for m in outbox].count("order.completed") == 1

    stored = await fn.read(lambda uow: uow.get_order(order["id"]))
    assert stored is not None and stored.status is OrderStatus.COMPLETED
    report = await asyncio.to_thread(fn.reconciler, {"source": "aws.events"}, LocalContext())
    assert report["errors"] == 0
    assert fn.http.runtime.builds == 1 and fn.gateway.invocations >= len(hooks)
    # Every webhook went to the webhook function, whose app serves nothing else.
    assert fn.webhooks.runtime.builds == 1
    offside = http_answer(await asyncio.to_thread(
        fn.webhooks, http_event("GET", f"/v1/orders/{order['id']}"), LocalContext()))
    assert offside.status == 404 and offside.json()["error"]["code"] == "not_found"


async def test_the_checkouts_trace_reaches_the_shop_through_the_queue(
        functions: tuple[Functions, Shop], emulator: EmulatorServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Through the Lambda handlers: a traceparent on create is answered as traceresponse, kept
    on the order and its outbox rows, and named on every callback the consumer makes; the
    HTTP function's JSON lines carry it beside the invocation's keys."""
    fn, shop = functions
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    event = http_event("POST", "/v1/checkout/orders", headers={
        "content-type": "application/json",
        "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        body=json.dumps({"items": [{"sku": "mug", "quantity": 1}]}).encode())
    created = http_answer(await asyncio.to_thread(fn.http, event, LocalContext()))
    assert created.status == 201, created.body
    assert created.headers["traceresponse"].startswith(f"00-{trace_id}-")
    order = created.json()
    await approve(emulator, order["provider_order_id"])
    captured = await fn.call("POST", f"/v1/checkout/orders/{order['id']}/capture")
    assert captured.status == 200, captured.body
    await quiet(emulator, timeout=20)
    await asyncio.to_thread(fn.drainer, {"source": "aws.events"}, LocalContext())
    for _ in range(5):
        polled = await asyncio.to_thread(poll_queue, fn.sqs, fn.queue.url, fn.consumer,
                                         arn=fn.queue.arn)
        if not polled.received:
            break
    stored = await fn.read(lambda uow: uow.get_order(order["id"]))
    outbox = await fn.read(lambda uow: uow.outbox_for_order(order["id"]))
    assert stored is not None and stored.trace_id == trace_id
    assert outbox and {m.status for m in outbox} == {"delivered"}
    assert {m.trace_id for m in outbox} == {trace_id}
    assert {shop.traces[m.id] for m in outbox} == {trace_id}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    access = [line for line in lines if line.get("name") == "paywire.api.access"
              and line.get("trace_id") == trace_id]
    assert access and all(line["order_id"] == order["id"] and line["function_request_id"]
                          for line in access)


async def inbox_of(uow: OpsUnitOfWork, event_ids: list[str]) -> list[Any]:
    """The stored inbox events, in the order asked."""
    return [await uow.get_inbox_event("paypal", event_id) for event_id in event_ids]


async def webhook(fn: Functions, body: bytes, headers: dict[str, str]) -> Any:
    """A webhook delivery straight to the webhook function, its body base64-encoded."""
    event = http_event("POST", "/webhooks/paypal", headers=headers, body=body,
                       base64_body=True)
    assert event["isBase64Encoded"] and base64.b64decode(event["body"]) == body
    return http_answer(await asyncio.to_thread(fn.webhooks, event, LocalContext()))


async def test_stream_inserts_of_outbox_rows_reach_sqs_at_once(
        moto_server: MotoServer, tmp_path: Path) -> None:
    """DynamoDB Streams records (real GetRecords answers): a batch with a new outbox item makes
    the stream handler send the due rows to SQS (queued); a batch without one sends nothing;
    neither reports a failure."""
    ddb, streams, sqs = (client(moto_server, s) for s in ("dynamodb", "dynamodbstreams", "sqs"))
    table = f"paywire-stream-{free_port()}"
    await dynamo.ensure_table(table, client=ddb, stream=True)  # a stream of new images
    stream_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    queue = make_queue(sqs)
    settings = Settings.load(_env_file=None, paypal_client_id="c", paypal_client_secret="s",
                             database_url=f"dynamodb://{table}", data_dir=tmp_path)
    handler = StreamHandler(settings_factory=lambda: settings,
                            config_factory=lambda: AwsConfig(sqs_queue_url=queue.url))
    store = store_for(settings)
    try:
        [order_id] = await seed_orders(store, 1)
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        answer = streams.get_records(ShardIterator=iterator)
        records = answer["Records"]
        orders_only = [r for r in records if r["dynamodb"]["Keys"]["sk"]["S"] != "OUTBOX"]
        quiet_batch = stream_event(orders_only, stream_arn)
        assert await asyncio.to_thread(handler, quiet_batch, LocalContext()) == {
            "batchItemFailures": []}
        assert handler.runtime.builds == 0  # nothing to send: no container even built
        event = stream_event(records, stream_arn)
        assert any(r["eventName"] == "INSERT" and r["eventSourceARN"] == stream_arn
                   and isinstance(r["dynamodb"]["ApproximateCreationDateTime"], int)
                   for r in event["Records"])
        assert await asyncio.to_thread(handler, event, LocalContext()) == {
            "batchItemFailures": []}
        async with store.transaction() as uow:
            outbox = await uow.outbox_for_order(order_id)
        assert [m.status for m in outbox] == ["queued"]
        sent = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10)["Messages"]
        assert [json.loads(m["Body"])["id"] for m in sent] == [outbox[0].id]
    finally:
        handler.close()
        await store.close()
        for c in (ddb, streams, sqs):
            c.close()


async def seed_orders(store: Any, n: int) -> list[str]:
    """`n` orders, each with one order.completed announcement; their ids."""
    now = datetime.now(UTC)
    ids = [f"ord_stream_{free_port()}_{i}" for i in range(n)]
    async with store.transaction() as uow:
        for order_id in ids:
            line = OrderLine("mug", "Mug", 1, Money.parse("12.50", "USD"))
            await uow.insert_order(Order.new(order_id, Intent.CAPTURE, [line], now))
            await uow.add_announcement(Announcement(f"order.completed:{order_id}",
                                                    "order.completed", order_id,
                                                    {"order_id": order_id}),
                                       f"msg_{order_id}", now)
    return ids
