"""The reconciler as a Lambda function (an EventBridge schedule): one pass per invocation.

A pass asks PayPal about orders whose webhooks never came and pending refunds (due ones only:
each order backs off on its own), then works the truth-fetch queue once — the same
`Reconciler` as `paywire reconcile`, wired by the composition root. Orders it flags are logged
at ERROR by the reconciler and announced `order.needs_attention`; the answer is the pass's
summary. The pass is counted (`metering.count_reconcile`) by the container's reconciler, which
the composition root wires to this function's metrics.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from paywire.aws.runtime import LambdaFunction, open_container

if TYPE_CHECKING:  # imported where the session is built (`paywire.aws.runtime`)
    from paywire.aws.config import AwsConfig
    from paywire.bootstrap import Container
    from paywire.services.reconcile import ReconcileReport
    from paywire.settings import Settings

log = logging.getLogger("paywire.aws.reconciler")


async def reconcile_pass(container: Container) -> ReconcileReport:
    """One reconcile pass plus one truth-queue pass."""
    return await container.reconciler.run_once()


class ReconcilerFunction(LambdaFunction["Container"]):
    """The scheduled reconciler handler."""

    kind = "reconciler"

    def open(self, settings: Settings, config: AwsConfig
             ) -> AbstractAsyncContextManager[Container]:
        """The container."""
        return open_container(settings, self.metrics)

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, object]:
        """One pass; its summary."""
        report = self.runtime.run(reconcile_pass)  # counted by the container's reconciler
        summary = report.as_json()
        log.info("reconcile pass: %s", summary)
        return summary


handler = ReconcilerFunction()
