"""The health read model: what an operator on call wants to see at a glance, in one reading.

`HealthGauges.read()` answers a `HealthSnapshot`: the outbox backlog (messages due and not
delivered) and how long the earliest of them has been due, the dead messages, the truth queue's
depth, the orders flagged needs-attention, the orders sitting in a status past its maximum age
(the reconciler's own limits, so "stuck" means what it flags), and the webhook deliveries of the
last hour (stored in the inbox, and refused by check).

Everything is read in one `snapshot()` unit through `HealthReadings`, each reading one index
range (fast at a million orders). Readings are cached for `max_staleness` seconds (five by
default) and concurrent callers share one read: a dashboard refreshing, or every Prometheus
scrape of every worker process, costs the database one set of queries per period.

Webhook deliveries by outcome: the store keeps the events it stored (the inbox, at most once per
event) and the deliveries refused for good (the rejection log, once per transmission), not every
delivery's answer; so the last hour shows `webhooks_received` (events first stored) and
`webhook_rejections` by check. Duplicates, and deliveries answered 503, leave no row: the
Prometheus counter `webhook_deliveries_total` counts every delivery by outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from paywire.domain.order import OrderStatus
from paywire.ports import Clock, HealthReadings, Transactions
from paywire.ports.metrics import (
    NEEDS_ATTENTION,
    ORDERS_STUCK,
    OUTBOX_BACKLOG,
    OUTBOX_DEAD,
    OUTBOX_OLDEST_DUE_AGE,
    TRUTH_QUEUE_DEPTH,
)
from paywire.services.reconcile import CREATED_MARGIN, DEFAULT_MAX_AGE

S = OrderStatus
# The window of the recent-webhooks figures.
WEBHOOK_WINDOW = timedelta(hours=1)
DEFAULT_STALENESS = 5.0
# The reconciler's defaults (approval window 3 h): `reconciler.max_age` is what to pass.
DEFAULT_STUCK_AFTER: Mapping[OrderStatus, timedelta] = {
    S.CREATED: timedelta(hours=3) + CREATED_MARGIN, **DEFAULT_MAX_AGE}


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """One reading of paywire's health (see the module's doc); counts are exact as of `at`."""

    at: datetime
    outbox_backlog: int  # pending messages due now, not held by a delivery in progress
    outbox_oldest_due_seconds: float  # how long the earliest of them has been due (0: none)
    outbox_dead: int  # given up on; `paywire outbox retry` sends one again
    truth_queue_depth: int  # truth tasks pending (due or waiting for their retry)
    needs_attention: int  # orders flagged for a person
    stuck_orders: Mapping[str, int] = field(default_factory=dict)  # status -> past max age
    webhooks_received: int = 0  # events first stored in the last hour
    webhook_rejections: Mapping[str, int] = field(default_factory=dict)  # check -> last hour

    @property
    def stuck_total(self) -> int:
        """Orders past their status's maximum age, all statuses."""
        return sum(self.stuck_orders.values())

    @property
    def rejections_total(self) -> int:
        """Deliveries refused in the last hour, all checks."""
        return sum(self.webhook_rejections.values())

    def gauges(self) -> list[tuple[str, dict[str, str], float]]:
        """The snapshot as the catalogue's gauges (`paywire.ports.metrics`): (name, labels,
        value), what a Prometheus scrape shows."""
        return [(OUTBOX_BACKLOG, {}, self.outbox_backlog),
                (OUTBOX_OLDEST_DUE_AGE, {}, self.outbox_oldest_due_seconds),
                (OUTBOX_DEAD, {}, self.outbox_dead),
                (TRUTH_QUEUE_DEPTH, {}, self.truth_queue_depth),
                (NEEDS_ATTENTION, {}, self.needs_attention),
                *((ORDERS_STUCK, {"status": status}, n)
                  for status, n in self.stuck_orders.items())]

    def as_json(self) -> dict[str, object]:
        """The snapshot as plain JSON (for an API or a page)."""
        return {"at": self.at.isoformat(), "outbox_backlog": self.outbox_backlog,
                "outbox_oldest_due_seconds": self.outbox_oldest_due_seconds,
                "outbox_dead": self.outbox_dead, "truth_queue_depth": self.truth_queue_depth,
                "needs_attention": self.needs_attention,
                "stuck_orders": dict(self.stuck_orders), "stuck_total": self.stuck_total,
                "webhooks_last_hour": {"received": self.webhooks_received,
                                       "rejected": dict(self.webhook_rejections),
                                       "rejected_total": self.rejections_total}}


class HealthGauges:
    """Reads `HealthSnapshot`s from the store, cached for `max_staleness` seconds.

    `stuck_after`: each status's maximum age (the reconciler's `max_age`; a status not in it is
    never stuck). `monotonic` times the cache (not the clock: a frozen test clock must not
    freeze it)."""

    def __init__(self, store: Transactions[HealthReadings], clock: Clock, *,
                 stuck_after: Mapping[OrderStatus, timedelta] | None = None,
                 max_staleness: float = DEFAULT_STALENESS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.stuck_after = dict(DEFAULT_STUCK_AFTER if stuck_after is None else stuck_after)
        self.max_staleness = max_staleness
        self._monotonic = monotonic
        self._cached: tuple[float, HealthSnapshot] | None = None
        self._lock = asyncio.Lock()

    async def read(self, *, fresh: bool = False) -> HealthSnapshot:
        """The latest snapshot, read again when older than `max_staleness` (or `fresh`)."""
        async with self._lock:  # concurrent callers wait for one read, then share it
            cached = self._cached
            if (not fresh and cached is not None
                    and self._monotonic() - cached[0] < self.max_staleness):
                return cached[1]
            snapshot = await self._read()
            self._cached = (self._monotonic(), snapshot)
            return snapshot

    async def _read(self) -> HealthSnapshot:
        now = self.clock.now()
        async with self.store.snapshot() as view:
            backlog, first_due = await view.outbox_due(now)
            dead = await view.outbox_dead_count()
            depth = await view.truth_queue_depth()
            flagged = await view.needs_attention_count()
            stuck = {str(status): await view.orders_in_status_since(str(status), now - age)
                     for status, age in sorted(self.stuck_after.items())}
            received = await view.webhooks_received_since(now - WEBHOOK_WINDOW)
            rejections = await view.webhook_rejections_since(now - WEBHOOK_WINDOW)
        return HealthSnapshot(
            at=now, outbox_backlog=backlog,
            outbox_oldest_due_seconds=_seconds_since(first_due, now),
            outbox_dead=dead, truth_queue_depth=depth, needs_attention=flagged,
            stuck_orders=stuck, webhooks_received=received,
            webhook_rejections=dict(sorted(rejections.items())))


def _seconds_since(when: datetime | None, now: datetime) -> float:
    return 0.0 if when is None else max(0.0, (now - when).total_seconds())
