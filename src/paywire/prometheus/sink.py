"""`PrometheusMetrics`: the catalogue (`paywire.ports.metrics.CATALOGUE`) as prometheus_client
counters and histograms, and the exposition text with gauges added at scrape time."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as mp
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from paywire.ports.metrics import CATALOGUE, DEFINITIONS, MetricDef

log = logging.getLogger("paywire.prometheus")

PREFIX = "paywire_"
CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# One gauge value: its catalogue name, its labels, its value.
Gauge = tuple[str, dict[str, str], float]


def multiprocess_dir() -> str | None:
    """The multiprocess directory this process writes its counts to, if any (`serve` sets it
    for several workers before they start; prometheus_client reads it at import)."""
    return os.environ.get(MULTIPROC_ENV) or None


class PrometheusMetrics:
    """The counters and histograms of the catalogue, counted in this process (or, in multiprocess
    mode, in its file of the shared directory); `render` answers a scrape.

    Each sink has a registry of its own (several apps in one process, as in the tests, never
    collide in prometheus_client's global one). A name the catalogue does not define, or of the
    wrong kind, is logged and dropped: counting never raises inside a request.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._warned: set[str] = set()
        for metric in CATALOGUE:
            name = PREFIX + metric.name
            if metric.kind == "counter":
                self._counters[metric.name] = Counter(
                    name, metric.help, metric.labels, registry=self.registry)
            elif metric.kind == "histogram":
                self._histograms[metric.name] = Histogram(
                    name, metric.help, metric.labels, registry=self.registry,
                    buckets=(*metric.buckets, float("inf")))

    def count(self, name: str, value: int = 1, /, **dimensions: str) -> None:
        """Add `value` to the counter `name` at `dimensions` (a missing label is `none`)."""
        counter = self._counters.get(name)
        if counter is None:
            self._unknown(name, "counter")
            return
        if value > 0:
            counter.labels(*self._labels(DEFINITIONS[name], dimensions)).inc(value)

    def observe(self, name: str, seconds: float, /, **dimensions: str) -> None:
        """Record one latency in the histogram `name` at `dimensions`."""
        histogram = self._histograms.get(name)
        if histogram is None:
            self._unknown(name, "histogram")
            return
        histogram.labels(*self._labels(DEFINITIONS[name], dimensions)).observe(max(0.0, seconds))

    def render(self, gauges: Iterable[Gauge] = ()) -> bytes:
        """The exposition text: every process's counters and histograms (multiprocess mode) or
        this one's, then `gauges` (read by the caller from the store, once)."""
        if self.multiprocess:
            counted = CollectorRegistry()
            mp.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
        else:
            counted = self.registry
        levels = CollectorRegistry(auto_describe=False)
        levels.register(_Levels(list(gauges)))
        return generate_latest(counted) + generate_latest(levels)

    def close(self) -> None:
        """This process is going away: in multiprocess mode, its live gauges are dropped from
        the shared directory (paywire keeps none there, but a library's might)."""
        if self.multiprocess:
            try:
                mp.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
            except OSError as exc:  # the directory went first (serve removes it at its end)
                log.debug("marking this process dead in the metrics directory: %s", exc)

    @staticmethod
    def _labels(metric: MetricDef, dimensions: dict[str, str]) -> list[str]:
        return [dimensions.get(name) or "none" for name in metric.labels]

    def _unknown(self, name: str, kind: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning("metric %s is not a %s of the catalogue: dropped", name, kind)


class _Levels(Collector):
    """Gauges given at scrape time, by catalogue name (every gauge of the catalogue present)."""

    def __init__(self, gauges: Sequence[Gauge]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        given: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, labels, value in self.gauges:
            given.setdefault(name, []).append((labels, value))
        for metric in CATALOGUE:
            if metric.kind != "gauge" or metric.name not in given:
                continue
            family = GaugeMetricFamily(PREFIX + metric.name, metric.help,
                                       labels=list(metric.labels))
            for labels, value in given[metric.name]:
                family.add_metric([labels.get(n) or "none" for n in metric.labels], value)
            yield family
