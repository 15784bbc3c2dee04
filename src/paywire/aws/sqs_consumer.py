"""The SQS consumer as a Lambda function: outbox messages from the queue, delivered to the shop.

Lambda's SQS event source mapping hands over a batch; each record's body is an outbox envelope
(`paywire.delivery.sqs`). `QueueDelivery` deduplicates on the message id (the outbox row),
delivers through the shop's own targets (the Standard Webhooks callback and/or the Python
callable the settings name, built as `paywire serve` builds them) and settles the row. The
answer lists the records that failed (`{"batchItemFailures": [{"itemIdentifier": id}]}`; the
function's mapping sets `FunctionResponseTypes: [ReportBatchItemFailures]`), so only those come
back after the visibility timeout. `PAYWIRE_SQS_MAX_RECEIVES` must equal the queue's redrive
`maxReceiveCount`: on that receive a failure is final (row dead, order flagged, ERROR logged)
and the queue moves the message to its dead-letter queue.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from paywire.aws.config import AwsConfig
from paywire.aws.runtime import LambdaFunction, open_container
from paywire.delivery.sqs import read_envelope
from paywire.domain.errors import ConfigError, ValidationError
from paywire.services.queue_delivery import QueueDelivery, QueueRecord
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


class SqsConsumer(LambdaFunction[QueueDelivery]):
    """The consumer handler: partial batch failures, never a whole-batch retry for one
    record."""

    @asynccontextmanager
    async def open(self, settings: Settings, config: AwsConfig) -> AsyncIterator[QueueDelivery]:
        """The container and a `QueueDelivery` over the shop's targets."""
        async with open_container(settings, self.metrics) as container:
            targets = container.outbox.targets if container.outbox is not None else []
            if not targets:
                raise ConfigError("the SQS consumer delivers to the shop: set "
                                  "PAYWIRE_FULFILMENT_URL (with its secret) or "
                                  "PAYWIRE_FULFILMENT_CALLABLE")
            yield QueueDelivery(container.store, targets, container.clock,
                                max_receives=config.sqs_max_receives,
                                concurrency=config.sqs_consumer_concurrency)

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Deliver a batch; the records that failed."""
        records = [queue_record(r) for r in event.get("Records", [])]
        if not records:
            return {"batchItemFailures": []}
        failed = self.runtime.run(lambda delivery: delivery.process(records))
        log.info("SQS batch: %d records, %d failed", len(records), len(failed),
                 extra={"records": len(records), "failed": len(failed)})
        return {"batchItemFailures": [{"itemIdentifier": item} for item in failed]}


handler = SqsConsumer()
