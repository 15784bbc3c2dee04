"""The metrics port: paywire's one catalogue of metrics, the sink protocol, and the sink that drops
everything when none is set up.

`CATALOGUE` defines every metric once (name, kind, labels, help, histogram buckets); each sink
renders it its own way and none invents a name: CloudWatch EMF on Lambda (`paywire.aws.metrics`)
publishes the counters and histograms under these names, Prometheus (`paywire.prometheus`)
exposes all of them as `paywire_<name>`. docs/metrics.md explains each one (a test holds the
page to this list). Extend the list; never fork a name.

- counters (`_total`, unit Count): added to by the wrappers at the composition root's seams
  (`paywire.services.metering`);
- histograms (`_seconds`): latencies, observed by the same wrappers;
- gauges: levels read from the store at scrape time (`paywire.services.health`), never counted
  by a process, so several worker processes never add theirs up.

Labels are low-cardinality by construction: a provider, an outcome, a check, an operation, a
status, the kind of a reason; never an order, event, message or refund id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["counter", "histogram", "gauge"]

# Latency buckets in seconds: a webhook's signature check (a certificate fetch or a postback at
# worst) and its ingest (a few statements), and a provider's API call (retries included).
FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CALL_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric: its name (snake_case; `_total` for counters, `_seconds` for latencies), kind,
    label names, one-line help, and (histograms) bucket upper bounds in seconds."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()


# --- counters ---------------------------------------------------------------------------------
WEBHOOK_DELIVERIES = "webhook_deliveries_total"
WEBHOOK_REJECTIONS = "webhook_rejections_total"
NEEDS_ATTENTION_FLAGGED = "needs_attention_flagged_total"
OUTBOX_MESSAGES_DEAD = "outbox_messages_dead_total"
OUTBOX_DELIVERIES = "outbox_deliveries_total"
RECONCILE_ERRORS = "reconcile_errors_total"
RECONCILE_PASSES = "reconcile_passes_total"
RECONCILE_ORDERS = "reconcile_orders_total"
PROVIDER_CALL_FAILURES = "provider_call_failures_total"
PROVIDER_CALLS = "provider_calls_total"
IDEMPOTENCY_REPLAYS = "idempotency_replays_total"
# --- histograms -------------------------------------------------------------------------------
WEBHOOK_VERIFY_SECONDS = "webhook_verify_seconds"
WEBHOOK_INGEST_SECONDS = "webhook_ingest_seconds"
PROVIDER_CALL_SECONDS = "provider_call_seconds"
# --- gauges (the health read model, at scrape time) -------------------------------------------
OUTBOX_BACKLOG = "outbox_backlog"
OUTBOX_OLDEST_DUE_AGE = "outbox_oldest_due_age_seconds"
OUTBOX_DEAD = "outbox_dead_messages"
TRUTH_QUEUE_DEPTH = "truth_queue_depth"
NEEDS_ATTENTION = "needs_attention_orders"
ORDERS_STUCK = "orders_stuck"

CATALOGUE: tuple[MetricDef, ...] = (
    MetricDef(WEBHOOK_DELIVERIES, "counter", ("provider", "outcome"),
              "Webhook deliveries received, by how they were answered."),
    MetricDef(WEBHOOK_REJECTIONS, "counter", ("provider", "check"),
              "Webhook deliveries refused for good, by the check that failed."),
    MetricDef(NEEDS_ATTENTION_FLAGGED, "counter", ("reason",),
              "Orders flagged needs-attention, by the reason's kind."),
    MetricDef(OUTBOX_MESSAGES_DEAD, "counter", (),
              "Announcements to the shop given up on (dead)."),
    MetricDef(OUTBOX_DELIVERIES, "counter", ("result",),
              "Outbox delivery attempts recorded, by result (delivered, retry, queued, dead)."),
    MetricDef(RECONCILE_ERRORS, "counter", (),
              "Orders or refunds a reconcile pass could not check this time."),
    MetricDef(RECONCILE_PASSES, "counter", ("outcome",),
              "Reconcile passes, by outcome (clean, flagged, errors)."),
    MetricDef(RECONCILE_ORDERS, "counter", ("result",),
              "What reconcile passes did to orders and refunds, by result."),
    MetricDef(PROVIDER_CALL_FAILURES, "counter", ("provider", "operation", "kind"),
              "Payment provider calls that failed (unreachable, credentials, unreadable)."),
    MetricDef(PROVIDER_CALLS, "counter", ("provider", "operation", "outcome"),
              "Payment provider calls, by operation and outcome (ok, refused, or the failure)."),
    MetricDef(IDEMPOTENCY_REPLAYS, "counter", ("endpoint",),
              "Requests answered from a stored Idempotency-Key answer (replayed)."),
    MetricDef(WEBHOOK_VERIFY_SECONDS, "histogram", ("provider",),
              "Time to verify a webhook delivery's signature, in seconds.", FAST_BUCKETS),
    MetricDef(WEBHOOK_INGEST_SECONDS, "histogram", ("provider",),
              "Time to ingest a webhook delivery (verify, store, apply), in seconds.",
              FAST_BUCKETS),
    MetricDef(PROVIDER_CALL_SECONDS, "histogram", ("provider", "operation"),
              "Time of a payment provider call (its client's retries included), in seconds.",
              CALL_BUCKETS),
    MetricDef(OUTBOX_BACKLOG, "gauge", (),
              "Outbox messages due for delivery and not delivered yet."),
    MetricDef(OUTBOX_OLDEST_DUE_AGE, "gauge", (),
              "Seconds since the earliest due outbox message became due (0: none due)."),
    MetricDef(OUTBOX_DEAD, "gauge", (),
              "Outbox messages dead now (until revived with paywire outbox retry)."),
    MetricDef(TRUTH_QUEUE_DEPTH, "gauge", (), "Truth-fetch tasks pending."),
    MetricDef(NEEDS_ATTENTION, "gauge", (), "Orders flagged needs-attention now."),
    MetricDef(ORDERS_STUCK, "gauge", ("status",),
              "Orders in a status longer than its maximum age (what the reconciler flags)."),
)

DEFINITIONS: dict[str, MetricDef] = {m.name: m for m in CATALOGUE}


class Metrics(Protocol):
    """Where counts and latencies go (CloudWatch EMF on Lambda; Prometheus for `serve`).

    `name` is one of `CATALOGUE`'s (a counter for `count`, a histogram for `observe`);
    `dimensions` are its labels, low-cardinality values only. Neither method may raise or block
    (they are called inside request handling); a sink that ships them does so on its own flush
    or scrape.
    """

    def count(self, name: str, value: int = 1, /, **dimensions: str) -> None:
        """Add `value` to the counter `name` at `dimensions`."""
        ...

    def observe(self, name: str, seconds: float, /, **dimensions: str) -> None:
        """Record one latency of `seconds` in the histogram `name` at `dimensions`."""
        ...


class NoMetrics:
    """The default `Metrics`: records nothing (deployments without a metrics sink)."""

    def count(self, name: str, value: int = 1, /, **dimensions: str) -> None:
        """Drop the count."""

    def observe(self, name: str, seconds: float, /, **dimensions: str) -> None:
        """Drop the latency."""
