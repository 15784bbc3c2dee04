"""`paywire dev --aws`: the same demo, served the serverless way against a local moto server.

What runs, all on loopback, in this process unless said otherwise:

- a **moto server process** (`moto_server`, AWS over real HTTP) holding what the SAM template
  (`deploy/aws/template.yaml`) creates: the DynamoDB table (`paywire.store.dynamo.ensure_table`:
  indexes, TTL checked), the outbox queue with its dead-letter queue (redrive after
  `MAX_RECEIVES` receives, as the template), and the stage's two secrets in Secrets Manager
  (`paywire/<stage>/paypal` with `"environment": "emulator"`, `paywire/<stage>/app`);
- the PayPal emulator, with a webhook registered for paywire's `/webhooks/paypal`;
- paywire's HTTP API as the **Lambda handler** `paywire.aws.http.handler`, behind a local API
  Gateway (`paywire.aws.local.ApiGateway`: each request becomes an HTTP API v2 event, bodies of
  non-text requests base64-encoded as API Gateway does), with the demo shop in front;
- the scheduled functions, invoked the way their triggers would: the outbox **drainer** every
  `DRAIN_SECONDS`, the **SQS consumer** by a poller standing in for Lambda's event source
  mapping (`poll_queue`: `ReceiveMessage` with all attributes, the handler, `DeleteMessageBatch`
  of what it did not report failed), the **reconciler** every `RECONCILE_SECONDS`.

The handlers read their configuration as in Lambda: `PAYWIRE_STAGE`, `PAYWIRE_DATABASE_URL`,
`PAYWIRE_SQS_QUEUE_URL`, `PAYWIRE_SQS_MAX_RECEIVES` and the standard `AWS_*` variables, which this
process sets for itself (pointing at moto, with dummy credentials); secrets come from moto's
Secrets Manager through `paywire.aws.secrets.stage_settings`, never from the environment.
moto keeps everything in memory: the data is gone when the stack stops.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
from collections.abc import Callable

from starlette.types import ASGIApp

from paywire.dev.stack import (
    DEV_CLIENT_ID,
    DEV_CLIENT_SECRET,
    SHOP_PREFIX,
    DevFront,
    DevOptions,
    DevStack,
    DevStackError,
)
from paywire.web.shop import ShopConfig, create_shop_app

log = logging.getLogger("paywire.dev.aws")

STAGE = "dev"
TABLE = "paywire-dev"
QUEUE = "paywire-dev-outbox"
DLQ = "paywire-dev-outbox-dlq"
MAX_RECEIVES = 200  # the template's MaxReceiveCount default
VISIBILITY_SECONDS = 30
DRAIN_SECONDS = 1.0
POLL_SECONDS = 0.5
RECONCILE_SECONDS = 60.0


class AwsDevStack(DevStack):
    """`DevStack` with paywire served through its Lambda handlers against moto."""

    def __init__(self, options: DevOptions | None = None) -> None:
        missing = [name for name in ("boto3", "mangum", "aws_lambda_powertools", "moto")
                   if importlib.util.find_spec(name) is None]
        if missing:
            raise DevStackError(f"paywire dev --aws needs {', '.join(missing)}: "
                                "pip install 'paywire[aws]' 'moto[server]'")
        from paywire.testing import MotoServer

        super().__init__(options)
        self.moto = MotoServer()
        self.queue_url: str | None = None
        self.dlq_url: str | None = None
        self._jobs: list[asyncio.Task[None]] = []
        self.counters = {"drains": 0, "polls": 0, "delivered": 0, "reconciles": 0}

    # -- AWS resources

    async def provision(self) -> None:
        """Start moto and create the template's resources and the stage's secrets in it."""
        try:
            await asyncio.to_thread(self.moto.start)
        except (RuntimeError, OSError) as exc:
            raise DevStackError(f"could not start the moto server: {exc}") from exc
        from botocore.exceptions import BotoCoreError, ClientError

        from paywire.domain.errors import PaywireError
        from paywire.store.dynamo import ensure_table

        try:
            await ensure_table(TABLE, client=self.moto.client("dynamodb"))
            await asyncio.to_thread(self._create_queues_and_secrets)
        except (PaywireError, BotoCoreError, ClientError) as exc:
            raise DevStackError(f"could not create the AWS resources in moto: {exc}") from exc

    def _create_queues_and_secrets(self) -> None:
        sqs = self.moto.client("sqs")
        self.dlq_url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        self.queue_url = sqs.create_queue(QueueName=QUEUE, Attributes={
            "VisibilityTimeout": str(VISIBILITY_SECONDS),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": str(MAX_RECEIVES)})})["QueueUrl"]
        secrets = self.moto.client("secretsmanager")
        secrets.create_secret(Name=f"paywire/{STAGE}/paypal", SecretString=json.dumps({
            "environment": "emulator", "client_id": DEV_CLIENT_ID,
            "client_secret": DEV_CLIENT_SECRET, "webhook_id": self.webhook_id}))
        secrets.create_secret(Name=f"paywire/{STAGE}/app", SecretString=json.dumps({
            "fulfilment_secret": self.fulfilment_secret,
            "fulfilment_url": f"{self.url}{SHOP_PREFIX}/fulfilment"}))

    def function_environment(self) -> dict[str, str]:
        """What the template gives every function, pointed at moto and the emulator."""
        assert self.queue_url is not None  # noqa: S101 - provisioned first
        return {
            **self.moto.env,
            "PAYWIRE_STAGE": STAGE,
            "PAYWIRE_DATABASE_URL": f"dynamodb://{TABLE}",
            "PAYWIRE_SQS_QUEUE_URL": self.queue_url,
            "PAYWIRE_SQS_MAX_RECEIVES": str(MAX_RECEIVES),
            "PAYWIRE_PAYPAL_ENV": "emulator",
            "PAYWIRE_PAYPAL_BASE_URL": self.emulator_url,
            "PAYWIRE_RETURN_URL": f"{self.url}{SHOP_PREFIX}/return",
            "PAYWIRE_CANCEL_URL": f"{self.url}{SHOP_PREFIX}/cancel",
            "PAYWIRE_CORS_ORIGINS": self.url,
            "PAYWIRE_DATA_DIR": str(self.options.data_dir.resolve()),
        }

    # -- the front and the scheduled functions

    def _paywire_front(self) -> ASGIApp:
        from paywire.aws.http import handler as http_handler
        from paywire.aws.http import webhook_handler
        from paywire.aws.local import ApiGateway

        # The handlers read their configuration from the process environment, as in Lambda
        # (so this stack runs as a process of its own: `paywire dev --aws`).
        os.environ.update(self.function_environment())
        shop = create_shop_app(ShopConfig(paypal_sdk_base=self.emulator_url,
                                          client_id=DEV_CLIENT_ID, currency=self.currency,
                                          prefix=SHOP_PREFIX,
                                          fulfilment_secret=self.fulfilment_secret))
        return DevFront(ApiGateway(http_handler, function_name="paywire-http",
                                   webhooks=webhook_handler,
                                   webhooks_function_name="paywire-webhooks"), shop)

    async def before_paywire(self) -> None:
        """moto and its resources, once the emulator's webhook id is known."""
        await self.provision()

    async def after_paywire(self) -> None:
        """The drainer, the queue poller and the reconciler, on their schedules."""
        from paywire.aws import drainer, reconciler, sqs_consumer
        from paywire.aws.events import LocalContext
        from paywire.aws.local import invoke, poll_queue, queue_arn

        sqs = self.moto.client("sqs")
        assert self.queue_url is not None  # noqa: S101 - provisioned first
        queue_url = self.queue_url
        arn = await asyncio.to_thread(queue_arn, sqs, queue_url)
        scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}

        def drain() -> None:
            invoke(drainer.handler, scheduled, LocalContext(function_name="paywire-drainer",
                                                            timeout_seconds=60))
            self.counters["drains"] += 1

        def poll() -> None:
            done = poll_queue(sqs, queue_url, sqs_consumer.handler, arn=arn,
                              context=LocalContext(function_name="paywire-consumer",
                                                   timeout_seconds=VISIBILITY_SECONDS / 6))
            self.counters["polls"] += 1
            self.counters["delivered"] += len(done.deleted)

        def reconcile() -> None:
            invoke(reconciler.handler, scheduled,
                   LocalContext(function_name="paywire-reconciler", timeout_seconds=300))
            self.counters["reconciles"] += 1

        self._jobs = [asyncio.create_task(self._every(name, seconds, job), name=name)
                      for name, seconds, job in (("drainer", DRAIN_SECONDS, drain),
                                                 ("sqs consumer", POLL_SECONDS, poll),
                                                 ("reconciler", RECONCILE_SECONDS, reconcile))]

    async def _every(self, name: str, seconds: float, job: Callable[[], None]) -> None:
        while not self._stopping:
            try:
                await asyncio.to_thread(job)
            except Exception:  # logged as Lambda would; the schedule goes on
                log.exception("paywire dev --aws: the %s invocation failed", name)
            await asyncio.sleep(seconds)

    def banner(self) -> list[str]:
        """What `paywire dev --aws` prints once everything is up."""
        return banner(self)

    async def cleanup(self) -> None:
        """Stop the schedules, then moto."""
        for job in self._jobs:
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        await asyncio.to_thread(self.moto.stop)


def banner(stack: AwsDevStack) -> list[str]:
    """What `paywire dev --aws` prints once everything is up."""
    return [
        "paywire dev --aws: the demo served by paywire's Lambda handlers against a local moto "
        "server",
        f"  demo shop        {stack.shop_url}",
        f"  paywire API      {stack.url}/v1   (paywire.aws.http.handler behind a local "
        "API Gateway)",
        f"  PayPal emulator  {stack.emulator_url}   (control API: {stack.emulator_url}/_emulator/)",
        f"  moto (AWS)       {stack.moto.endpoint_url}   (region {stack.moto.REGION}, "
        "dummy credentials)",
        f"  DynamoDB         table {TABLE} (in moto's memory: gone when this stops)",
        f"  SQS              {stack.queue_url} -> consumer; dead letters: {stack.dlq_url}",
        f"  secrets          paywire/{STAGE}/paypal, paywire/{STAGE}/app in Secrets Manager",
        f"  schedules        drainer every {DRAIN_SECONDS:g} s, queue polled every "
        f"{POLL_SECONDS:g} s, reconciler every {RECONCILE_SECONDS:g} s",
        "Press Ctrl-C to stop.",
    ]
