"""The outbox drainer as a Lambda function (an EventBridge schedule): due rows handed to SQS.

It runs the same `OutboxWorker` as `paywire serve --worker`, with the SQS target instead of the
shop's: rows are claimed with a lease, sent, and marked `queued` (the SQS consumer delivers
them). Rounds continue while a round claimed a full batch and the function has time left
(`PAYWIRE_DRAIN_RESERVE_SECONDS` before its timeout stops it starting another). The drainer is
compulsory even beside the DynamoDB Streams handler: stream records expire after 24 hours and
a failing batch blocks its shard, so a row the stream missed is still sent here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paywire.aws import tracing
from paywire.aws.runtime import LambdaFunction

if TYPE_CHECKING:  # imported where the session is built (`paywire.aws.runtime`)
    from paywire.aws.config import AwsConfig
    from paywire.ports import DeliveryTarget, Metrics
    from paywire.services.fulfilment import OutboxWorker
    from paywire.settings import Settings

log = logging.getLogger("paywire.aws.drainer")


async def drain(worker: OutboxWorker, remaining_ms: Callable[[], int],
                reserve_ms: int) -> dict[str, int]:
    """Rounds of `worker` until one claims less than a full batch or time runs low; what
    happened (rounds, claimed, and the worker's outcome counters for these rounds)."""
    before = dict(worker.counters)
    rounds = claimed = 0
    while remaining_ms() > reserve_ms:
        rounds += 1
        got = await worker.run_once()
        claimed += got
        if got < worker.batch:
            break
    report = {"rounds": rounds, "claimed": claimed}
    for key in ("queued", "delivered", "retried", "dead", "lease_lost"):
        report[key] = worker.counters[key] - before.get(key, 0)
    return report


@dataclass(frozen=True)
class DrainSession:
    """The SQS outbox worker and how much time a drain leaves unused."""

    worker: OutboxWorker
    reserve_ms: int

    async def drain(self, remaining_ms: Callable[[], int]) -> dict[str, int]:
        """Drain what is due (see `drain`)."""
        return await drain(self.worker, remaining_ms, self.reserve_ms)


@asynccontextmanager
async def sqs_worker(settings: Settings, config: AwsConfig, metrics: Metrics | None = None
                     ) -> AsyncIterator[DrainSession]:
    """An outbox worker over the store whose one target is the outbox queue (dead messages
    counted into `metrics`): the store alone, no provider (nor its secret) wired."""
    from paywire.bootstrap import open_store, outbox_worker
    from paywire.delivery.sqs import SqsTarget
    from paywire.ports import SystemClock

    async with open_store(settings, metrics) as store:
        targets: list[DeliveryTarget] = [SqsTarget(config.queue_url())]
        worker = outbox_worker(settings, store, SystemClock(), targets=targets)
        assert worker is not None  # noqa: S101 - it has a target
        try:
            yield DrainSession(worker, int(config.drain_reserve_seconds * 1000))
        finally:
            await worker.aclose()


class Drainer(LambdaFunction[DrainSession]):
    """The scheduled drainer handler."""

    kind = "drainer"
    # No provider call and nothing to sign: it reads no stage secret (a bad PayPal secret
    # must not stop it, and its role may read none).
    secrets: frozenset[str] = frozenset()

    def open(self, settings: Settings, config: AwsConfig
             ) -> AbstractAsyncContextManager[DrainSession]:
        """The SQS outbox worker."""
        return sqs_worker(settings, config, self.metrics)

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, int]:
        """Drain what is due now."""
        report = self.runtime.run(
            lambda session: session.drain(context.get_remaining_time_in_millis))
        tracing.annotate(claimed=report.get("claimed", 0))
        log.log(logging.INFO if report.get("claimed") else logging.DEBUG,
                "outbox drained to SQS: %s", report, extra=report)
        return report


handler = Drainer()
