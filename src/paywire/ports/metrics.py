"""The metrics port: operational counters, and the sink that drops them when none is set up."""

from __future__ import annotations

from typing import Protocol


class Metrics(Protocol):
    """Where operational counters go (CloudWatch EMF on Lambda; a Prometheus endpoint later).

    `name` is one of `paywire.services.metering`'s names (snake_case, `_total` for counters);
    `dimensions` are low-cardinality labels only (provider, outcome, check, ...): never an order,
    event or message id. `count` must not raise and must not block (it is called inside request
    handling); an implementation that ships counts does so on its own flush.
    """

    def count(self, name: str, value: int = 1, /, **dimensions: str) -> None:
        """Add `value` to the counter `name` at `dimensions`."""
        ...


class NoMetrics:
    """The default `Metrics`: counts nothing (deployments without a metrics sink)."""

    def count(self, name: str, value: int = 1, /, **dimensions: str) -> None:
        """Drop the count."""
