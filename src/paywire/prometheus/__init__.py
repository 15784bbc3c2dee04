"""Prometheus for `paywire serve`: the catalogue's counters and histograms as `paywire_<name>`,
the health gauges rendered at scrape time, and a small listener for a metrics port of its own.

`PrometheusMetrics` is a `Metrics` sink (`paywire.ports.metrics`); it renders the exposition
text with the gauges a caller read (the composition root reads `services.health`). Under
`paywire serve --workers N` it runs in `prometheus_client`'s multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`, set by `serve`): counts from every worker process add up in any
worker's scrape, while gauges, read from the store, are added by the scraped process alone, so
they are never multiplied by the number of workers. docs/metrics.md is the operator's guide.

Imported only where Prometheus is switched on (`PAYWIRE_METRICS`): never on Lambda.
"""

from paywire.prometheus.listener import MetricsListener
from paywire.prometheus.sink import CONTENT_TYPE, Gauge, PrometheusMetrics, multiprocess_dir

__all__ = ["CONTENT_TYPE", "Gauge", "MetricsListener", "PrometheusMetrics", "multiprocess_dir"]
