"""One bad PayPal secret stops only the functions that call PayPal: with a stage whose PayPal
secret PayPal (the emulator) refuses, read from Secrets Manager on the moto server as Lambda
would, the stream, drainer and consumer handlers still carry announcements from DynamoDB through
SQS to the shop, while the HTTP function fails its start, naming the refused credentials."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_aws_lambda import seed_orders

from awskit import SHOP_SECRET, client, make_queue, restored_logging, running_shop
from paywire.aws import secrets
from paywire.aws.drainer import Drainer
from paywire.aws.events import LocalContext, http_event, sqs_event, stream_event
from paywire.aws.http import HttpApi
from paywire.aws.sqs_consumer import SqsConsumer
from paywire.aws.stream import StreamHandler
from paywire.domain.errors import ConfigError
from paywire.settings import DEMO_CATALOG, Settings
from paywire.store import dynamo
from paywire.testing import EmulatorServer, MotoServer
from testkit import CLIENT_ID

BAD_SECRET = "not-the-paypal-secret-9f2c"


@pytest.fixture(autouse=True)
def _fresh_stage_cache() -> Iterator[None]:
    """The process's stage-settings cache starts and ends empty; logging is put back."""
    secrets._process_secrets.cache_clear()
    with restored_logging():
        yield
    secrets._process_secrets.cache_clear()


async def test_a_refused_paypal_secret_stops_only_the_http_function(
        emulator: EmulatorServer, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """Stream, drainer and consumer deliver every announcement once despite a refused PayPal
    secret; the HTTP function's start fails explaining the refusal, never quoting the secret."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    sm, ddb, streams, sqs = (client(moto_server, s)
                             for s in ("secretsmanager", "dynamodb", "dynamodbstreams", "sqs"))
    stage = "bad" + uuid.uuid4().hex[:10]
    table = f"paywire-{stage}"
    await dynamo.ensure_table(table, client=ddb, stream=True)
    stream_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    queue = make_queue(sqs)
    with running_shop() as shop:
        sm.create_secret(Name=f"paywire/{stage}/paypal", SecretString=json.dumps({
            "environment": "emulator", "client_id": CLIENT_ID, "client_secret": BAD_SECRET,
            "webhook_id": "WH-BAD"}))
        sm.create_secret(Name=f"paywire/{stage}/app", SecretString=json.dumps({
            "api_keys": ["stage-admin-key-0123456789"], "fulfilment_secret": SHOP_SECRET,
            "fulfilment_url": shop.url}))
        # PAYWIRE_PAYPAL_ENV as the template sets it from the stage: the outbox functions read
        # no PayPal secret, so it names their stage's environment.
        for name, value in {"PAYWIRE_STAGE": stage, "PAYWIRE_PAYPAL_ENV": "emulator",
                            "PAYWIRE_PAYPAL_BASE_URL": emulator.url,
                            "PAYWIRE_DATABASE_URL": f"dynamodb://{table}",
                            "PAYWIRE_CATALOG_PATH": str(DEMO_CATALOG),
                            "PAYWIRE_SQS_QUEUE_URL": queue.url}.items():
            monkeypatch.setenv(name, value)
        store = dynamo.DynamoStore.from_url(f"dynamodb://{table}")
        stream, drainer, consumer, http = StreamHandler(), Drainer(), SqsConsumer(), HttpApi()
        try:
            first = await seed_orders(store, 2)
            shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"][
                "Shards"][0]
            iterator = streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            records = streams.get_records(ShardIterator=iterator)["Records"]
            event = stream_event(records, stream_arn)
            assert await asyncio.to_thread(stream, event, LocalContext()) == {
                "batchItemFailures": []}
            later = await seed_orders(store, 1)
            report = await asyncio.to_thread(drainer, {}, LocalContext())
            assert report["claimed"] == 1, report
            answer = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10,
                                         AttributeNames=["All"], MessageAttributeNames=["All"])
            assert len(answer["Messages"]) == 3
            failed = await asyncio.to_thread(consumer, sqs_event(answer, queue.arn),
                                             LocalContext())
            assert failed == {"batchItemFailures": []}
            assert sorted(shop.accepted) == sorted(f"msg_{o}" for o in first + later)
            assert set(shop.accepted.values()) == {1}

            with pytest.raises(ConfigError) as refused:
                await asyncio.to_thread(http, http_event("GET", "/healthz"), LocalContext())
            assert "refused" in refused.value.message and emulator.url in refused.value.message
            assert BAD_SECRET not in str(refused.value.details) + refused.value.message
            assert isinstance(secrets.stage_settings(startup_credentials_check=False), Settings)
        finally:
            for function in (stream, drainer, consumer, http):
                function.close()
            await store.close()
            for c in (sm, ddb, streams, sqs):
                c.close()
