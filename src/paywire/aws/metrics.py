"""paywire's counters as CloudWatch embedded metric format (EMF), through Powertools Metrics.

`EmfMetrics` is the Lambda functions' `Metrics` sink: counts add up in memory during an
invocation and `flush` (every `LambdaFunction` calls it when an invocation ends, failed or not)
prints them as EMF JSON lines on standard output, which Lambda ships to CloudWatch Logs and
CloudWatch turns into metrics — no API call, no extra permission.

One line per distinct set of dimensions (Powertools' `EphemeralMetrics`, which holds no state
between flushes). Each count is published twice: at its own dimensions plus `service`
(`provider`/`outcome`, `provider`/`check`, ...: for dashboards and triage), and summed into one
last line at `service` alone (the rollup the template's alarms watch, since a CloudWatch alarm
matches one exact dimension set). The rollup is a line of its own rather than a second
dimension set of each line: how Powertools' `add_dimensions` treats a second set has changed
between its releases. Latencies (`observe`: the catalogue's histograms) are published as values
of unit Seconds at their own dimensions plus `service` (CloudWatch computes percentiles from
them), at most `MAX_VALUES` per metric and dimensions a flush (EMF's limit per line). Gauges
are not published here: nothing scrapes a Lambda function. The namespace is
`POWERTOOLS_METRICS_NAMESPACE` (the template sets `paywire/<stage>`), the service
`POWERTOOLS_SERVICE_NAME` (`paywire`). docs/metrics.md lists the names
(`paywire.ports.metrics.CATALOGUE`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

log = logging.getLogger("paywire.aws.metrics")

DEFAULT_NAMESPACE = "paywire"
DEFAULT_SERVICE = "paywire"

Dimensions = tuple[tuple[str, str], ...]
MAX_VALUES = 100  # EMF's limit of values per metric in one line


class EmfMetrics:
    """Counts of one invocation, printed as EMF by `flush` (see the module's doc)."""

    def __init__(self, *, namespace: str | None = None, service: str | None = None) -> None:
        self._namespace = namespace
        self._service = service
        self._lock = threading.Lock()
        self._counts: dict[Dimensions, dict[str, int]] = {}
        self._observed: dict[Dimensions, dict[str, list[float]]] = {}

    @property
    def namespace(self) -> str:
        """The CloudWatch namespace (given, else the environment's, else `paywire`)."""
        return (self._namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "").strip()
                or DEFAULT_NAMESPACE)

    @property
    def service(self) -> str:
        """The `service` dimension (given, else the environment's, else `paywire`)."""
        return (self._service or os.environ.get("POWERTOOLS_SERVICE_NAME", "").strip()
                or DEFAULT_SERVICE)

    def count(self, name: str, value: int = 1, /, **dimensions: str) -> None:
        """Add `value` (> 0) to `name` at `dimensions` until the next flush."""
        if value <= 0:
            return
        key = tuple(sorted((k, v) for k, v in dimensions.items() if k != "service" and v))
        with self._lock:
            counts = self._counts.setdefault(key, {})
            counts[name] = counts.get(name, 0) + value

    def observe(self, name: str, seconds: float, /, **dimensions: str) -> None:
        """Keep one latency of `name` at `dimensions` until the next flush (beyond
        `MAX_VALUES` of one metric and dimensions, dropped)."""
        key = tuple(sorted((k, v) for k, v in dimensions.items() if k != "service" and v))
        with self._lock:
            values = self._observed.setdefault(key, {}).setdefault(name, [])
            if len(values) < MAX_VALUES:
                values.append(max(0.0, seconds))

    def observed(self) -> dict[Dimensions, dict[str, list[float]]]:
        """The latencies the next flush would print (a copy)."""
        with self._lock:
            return {key: {n: list(v) for n, v in values.items()}
                    for key, values in self._observed.items()}

    def pending(self) -> dict[Dimensions, dict[str, int]]:
        """What the next flush would print (a copy)."""
        with self._lock:
            return {key: dict(counts) for key, counts in self._counts.items()}

    def flush(self) -> None:
        """Print the counts as EMF lines and start again from zero. Never raises: a metric
        that cannot be written is logged, and the invocation's answer stands."""
        with self._lock:
            pending, self._counts = self._counts, {}
            observed, self._observed = self._observed, {}
        for dimensions, latencies in observed.items():
            try:
                self._print_latencies(dimensions, latencies)
            except Exception:
                log.exception("writing metrics %s failed", sorted(latencies))
        rollup: dict[str, int] = {}
        lines = []
        for dimensions, counts in pending.items():
            for name, total in counts.items():
                rollup[name] = rollup.get(name, 0) + total
            if dimensions:
                lines.append((dimensions, counts))
        if rollup:
            lines.append(((), rollup))
        for dimensions, counts in lines:
            try:
                self._print(dimensions, counts)
            except Exception:
                log.exception("writing metrics %s failed", sorted(counts))

    def _print_latencies(self, dimensions: Dimensions,
                         latencies: dict[str, list[float]]) -> None:
        emf = EphemeralMetrics(namespace=self.namespace, service=self.service)
        for key, value in dimensions:
            emf.add_dimension(name=key, value=value)
        for name, values in sorted(latencies.items()):
            for seconds in values:
                emf.add_metric(name=name, unit=MetricUnit.Seconds, value=seconds)
        emf.flush_metrics()

    def _print(self, dimensions: Dimensions, counts: dict[str, int]) -> None:
        service = self.service
        emf = EphemeralMetrics(namespace=self.namespace, service=service)
        for key, value in dimensions:
            emf.add_dimension(name=key, value=value)
        for name, total in sorted(counts.items()):
            emf.add_metric(name=name, unit=MetricUnit.Count, value=total)
        emf.flush_metrics()


@functools.cache
def emf() -> EmfMetrics:
    """The process's EMF sink (shared by every handler in it)."""
    return EmfMetrics()
