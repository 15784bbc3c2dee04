"""The SQS consumer as a Lambda function: outbox messages from the queue, delivered to the shop.

Lambda's SQS event source mapping hands over a batch; each record's body is an outbox envelope
(`paywire.delivery.sqs`). `QueueDelivery` deduplicates on the message id (the outbox row),
delivers through the shop's own targets (the Standard Webhooks callback and/or the Python
callable the settings name, built as `paywire serve` builds them) and settles the row; a
message of a `dead` row (redriven from the dead-letter queue, say) is acknowledged undelivered
until `paywire outbox retry` revives the row. The answer lists the records that failed
(`{"batchItemFailures": [{"itemIdentifier": id}]}`; the function's mapping sets
`FunctionResponseTypes: [ReportBatchItemFailures]`), so only those come back. Before
answering, the handler extends each failed message's visibility by its backoff
(`ChangeMessageVisibility`, one `ChangeMessageVisibilityBatch` call per batch), so a message
comes back after 5 s, 10 s, 20 s, ... 1 h (the outbox settings `PAYWIRE_OUTBOX_BASE_DELAY_SECONDS`
and `PAYWIRE_OUTBOX_MAX_DELAY_SECONDS`) until its row is `PAYWIRE_OUTBOX_MAX_AGE_SECONDS` old
and goes dead: the outbox worker's retry rules. A visibility change SQS refuses is logged; the
message then comes back after the queue's own visibility timeout.

`PAYWIRE_SQS_MAX_RECEIVES` must equal the queue's redrive `maxReceiveCount`, which must lie
above the receives a row can take to reach its maximum age (a WARNING at start says when it
does not): on that receive a failure is final (row dead, order flagged, ERROR logged) and the
queue moves the message to its dead-letter queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from paywire.aws import tracing
from paywire.aws.metrics import EmfMetrics
from paywire.aws.runtime import (
    ConfigFactory,
    LambdaFunction,
    SettingsFactory,
    default_config,
)
from paywire.delivery.sqs import read_envelope, sqs_client
from paywire.domain.errors import ConfigError, ValidationError
from paywire.ports import Clock, SystemClock
from paywire.services.queue_delivery import Failure, QueueDelivery, QueueRecord

if TYPE_CHECKING:  # imported where the session is built (`paywire.aws.runtime`)
    from paywire.aws.config import AwsConfig
    from paywire.settings import Settings

log = logging.getLogger("paywire.aws.sqs")


def queue_record(record: Mapping[str, Any]) -> QueueRecord:
    """One SQS event record as the consumer sees it (an unreadable body is kept, with why)."""
    attributes = record.get("attributes") or {}
    try:
        receives = int(attributes.get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        receives = 1
    group = attributes.get("MessageGroupId") or None
    item_id = str(record.get("messageId", ""))
    try:
        message_id: str | None = read_envelope(str(record.get("body", ""))).id
        problem = None
    except ValidationError as exc:
        message_id, problem = None, exc.message
    return QueueRecord(item_id=item_id, message_id=message_id, receive_count=max(1, receives),
                       group=group, problem=problem)


def queue_url_for(arn: str, endpoint_url: str, configured: str | None = None) -> str | None:
    """The URL of the queue with `arn` (`arn:aws:sqs:<region>:<account>:<name>`): the configured
    outbox queue's URL if it names that queue, else `<endpoint>/<account>/<name>` on the
    client's endpoint; None for an ARN that is not an SQS queue's."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs" or not parts[4] or not parts[5]:
        return None
    account, name = parts[4], parts[5]
    if configured is not None and configured.rstrip("/").split("/")[-1] == name:
        return configured
    return f"{endpoint_url.rstrip('/')}/{account}/{name}"


class Session:
    """What one consumer environment keeps: the delivery use case and an SQS client."""

    def __init__(self, delivery: QueueDelivery, sqs: Any, queue_url: str | None) -> None:
        self.delivery = delivery
        self.sqs = sqs
        self.queue_url = queue_url

    def defer(self, records: Sequence[Mapping[str, Any]], failures: Sequence[Failure]) -> None:
        """Extend each failed message's visibility by its `retry_in` (those that have one)."""
        by_item = {str(r.get("messageId", "")): r for r in records}
        by_queue: dict[str, list[dict[str, Any]]] = {}
        for failure in failures:
            record = by_item.get(failure.item_id)
            if failure.retry_in is None or record is None:
                continue
            url = queue_url_for(str(record.get("eventSourceARN", "")),
                                self.sqs.meta.endpoint_url, self.queue_url)
            if url is None or not record.get("receiptHandle"):
                log.warning("queue message %s: no queue or receipt to extend its visibility",
                            failure.item_id)
                continue
            by_queue.setdefault(url, []).append({
                "Id": str(len(by_queue.get(url, []))), "ReceiptHandle": record["receiptHandle"],
                "VisibilityTimeout": failure.retry_in, "item": failure.item_id})
        for url, entries in by_queue.items():
            for start in range(0, len(entries), 10):  # the batch call takes 10 at most
                chunk = entries[start:start + 10]
                self._change(url, chunk)

    def _change(self, url: str, entries: list[dict[str, Any]]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        items = {e["Id"]: e["item"] for e in entries}
        try:
            answer = self.sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                {k: v for k, v in e.items() if k != "item"} for e in entries])
        except (BotoCoreError, ClientError) as exc:  # back after the queue's own timeout
            log.warning("cannot extend the visibility of %d queue messages: %s", len(entries),
                        type(exc).__name__, extra={"items": list(items.values())})
            return
        for failed in answer.get("Failed", []):
            log.warning("queue message %s keeps the queue's visibility timeout: %s",
                        items.get(str(failed.get("Id")), "?"), failed.get("Code"),
                        extra={"item_id": items.get(str(failed.get("Id")))})


class SqsConsumer(LambdaFunction[Session]):
    """The consumer handler: partial batch failures, never a whole-batch retry for one
    record; failed records back off. `clock` replaces the wall clock (tests)."""

    def __init__(self, *, settings_factory: SettingsFactory | None = None,
                 config_factory: ConfigFactory = default_config,
                 metrics: EmfMetrics | None = None, clock: Clock | None = None) -> None:
        self.clock = clock
        super().__init__(settings_factory=settings_factory, config_factory=config_factory,
                         metrics=metrics)

    kind = "sqs_consumer"
    # No provider call: it reads only the app secret (the shop's URL and signing secret), so
    # a bad PayPal secret does not stop it and its role cannot read that secret.
    secrets: frozenset[str] = frozenset({"app"})

    @asynccontextmanager
    async def open(self, settings: Settings, config: AwsConfig) -> AsyncIterator[Session]:
        """The container, a `QueueDelivery` over the shop's targets and an SQS client."""
        from paywire.bootstrap import fulfilment_targets, open_store

        targets = fulfilment_targets(settings)
        if not targets:
            raise ConfigError("the SQS consumer delivers to the shop: set "
                              "PAYWIRE_FULFILMENT_URL (with its secret) or "
                              "PAYWIRE_FULFILMENT_CALLABLE")
        async with AsyncExitStack() as stack:
            for target in targets:
                close = getattr(target, "aclose", None)
                if close is not None:
                    stack.push_async_callback(close)
            store = await stack.enter_async_context(open_store(settings, self.metrics))
            delivery = QueueDelivery(
                store, targets, self.clock or SystemClock(),
                max_receives=config.sqs_max_receives,
                concurrency=config.sqs_consumer_concurrency,
                base_delay=timedelta(seconds=settings.outbox_base_delay_seconds),
                max_delay=timedelta(seconds=settings.outbox_max_delay_seconds),
                max_age=timedelta(seconds=settings.outbox_max_age_seconds))
            needed = delivery.needed_receives()
            if needed is not None and config.sqs_max_receives <= needed:
                log.warning("PAYWIRE_SQS_MAX_RECEIVES (%d) is not above the %d receives a "
                            "message may take to reach PAYWIRE_OUTBOX_MAX_AGE_SECONDS: SQS may "
                            "move a message to the dead-letter queue before its row's maximum "
                            "age", config.sqs_max_receives, needed)
            sqs = sqs_client()
            try:
                yield Session(delivery, sqs, config.sqs_queue_url)
            finally:
                sqs.close()

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Deliver a batch; the records that failed (their visibility extended first). The
        trace is annotated with the batch's size, outbox message ids and failures."""
        raw = event.get("Records", [])
        records = [queue_record(r) for r in raw]
        tracing.annotate(records=len(records), outbox_message_id=",".join(
            r.message_id for r in records if r.message_id) or None)
        if not records:
            return {"batchItemFailures": []}

        async def deliver(session: Session) -> list[Failure]:
            return await session.delivery.process(records)

        failed = self.runtime.run(deliver)
        tracing.annotate(failed=len(failed))
        if failed:
            self.runtime.run(lambda session: _defer(session, raw, failed))
        log.info("SQS batch: %d records, %d failed", len(records), len(failed),
                 extra={"records": len(records), "failed": len(failed)})
        return {"batchItemFailures": [{"itemIdentifier": f.item_id} for f in failed]}


async def _defer(session: Session, records: Sequence[Mapping[str, Any]],
                 failed: Sequence[Failure]) -> None:
    """`Session.defer` in a worker thread (boto3 is synchronous)."""
    await asyncio.to_thread(session.defer, records, failed)


handler = SqsConsumer()
