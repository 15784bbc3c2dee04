"""DynamoDB Streams → SQS at once: new outbox rows handed over without waiting for the drainer.

The table's stream sends every change; this handler looks only for INSERTs of outbox items (a
new announcement) and, if a batch has any, runs the drainer's worker round (`drainer.drain`):
due rows are claimed with a lease, sent to the queue and marked `queued`, exactly as the
scheduled drainer does, so the two never send one row twice at once. The scheduled drainer
stays compulsory: stream records expire after 24 hours, and a batch that fails is retried
until it succeeds, blocking its shard. So this handler never fails a batch: anything that goes
wrong is logged and left to the drainer's next run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from paywire.aws import tracing
from paywire.aws.drainer import DrainSession, sqs_worker
from paywire.aws.runtime import LambdaFunction
from paywire.store.dynamo.items import outbox_key

if TYPE_CHECKING:  # imported where the session is built (`paywire.aws.runtime`)
    from paywire.aws.config import AwsConfig
    from paywire.settings import Settings

log = logging.getLogger("paywire.aws.stream")

OUTBOX_SORT_KEY = outbox_key("any")[1]  # every outbox item's sort key


def is_new_outbox_item(record: Mapping[str, Any]) -> bool:
    """True for a stream record of an outbox item's creation."""
    if record.get("eventName") != "INSERT":
        return False
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    return bool((keys.get("sk") or {}).get("S") == OUTBOX_SORT_KEY)


class StreamHandler(LambdaFunction[DrainSession]):
    """The DynamoDB Streams handler."""

    kind = "stream"
    # No provider call and nothing to sign: it reads no stage secret (a bad PayPal secret
    # must not stop it, and its role may read none).
    secrets: frozenset[str] = frozenset()

    def open(self, settings: Settings, config: AwsConfig
             ) -> AbstractAsyncContextManager[DrainSession]:
        """The SQS outbox worker (the drainer's)."""
        return sqs_worker(settings, config, self.metrics)

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Hand new outbox rows to SQS; never reports a failure (see the module's doc)."""
        new = sum(1 for record in event.get("Records", []) if is_new_outbox_item(record))
        tracing.annotate(new_rows=new)
        if not new:
            return {"batchItemFailures": []}
        try:
            report = self.runtime.run(
                lambda session: session.drain(context.get_remaining_time_in_millis))
        except Exception:
            log.exception("handing %d new outbox rows to SQS failed; the scheduled drainer "
                          "will send them", new)
        else:
            log.info("stream: %d new outbox rows; %s", new, report,
                     extra={"new_rows": new, **report})
        return {"batchItemFailures": []}


handler = StreamHandler()
