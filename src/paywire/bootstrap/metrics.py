"""Prometheus wired into a serving app (`PAYWIRE_METRICS`): the sink the container counts into,
the health gauges read at scrape time, and where `/metrics` is served — on the API's port behind
a bearer token (`app`), or on a port of its own (`port`).

Imported by `create_app` only when the setting is on and no other sink was given (Lambda passes
its EMF sink, so prometheus_client is never imported there), and by `paywire worker`, which has
no API port and serves `/metrics` on the metrics port whenever the setting is on.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request, Response

from paywire.api.errors import error_response, request_id_of
from paywire.domain.errors import PaywireError
from paywire.domain.order import OrderStatus
from paywire.ports import Clock, HealthReadings, Transactions
from paywire.prometheus import CONTENT_TYPE, MetricsListener, PrometheusMetrics
from paywire.services.health import HealthGauges
from paywire.settings import Settings

log = logging.getLogger("paywire.metrics")
METRICS_PATH = "/metrics"


class Scrapes:
    """One serving process's Prometheus: its sink, and (once the container is built) the
    health gauges a scrape adds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sink = PrometheusMetrics()
        self.gauges: HealthGauges | None = None
        token = settings.metrics_token
        self.token = token.get_secret_value() if token is not None else None

    async def render(self) -> bytes:
        """The exposition text: the counts, then the health gauges (left out, with a warning,
        when the store cannot be read: the counts still tell what happened)."""
        levels = []
        if self.gauges is not None:
            try:
                levels = (await self.gauges.read()).gauges()
            except PaywireError as exc:
                log.warning("metrics scrape without the health gauges: %s", exc.message)
        return self.sink.render(levels)

    @asynccontextmanager
    async def serving(self, store: Transactions[HealthReadings], clock: Clock, *,
                      stuck_after: Mapping[OrderStatus, timedelta],
                      listen: bool | None = None,
                      gauges: HealthGauges | None = None) -> AsyncIterator[None]:
        """While the process serves: gauges from `store` (`stuck_after`: the reconciler's
        maximum ages, so "stuck" is what it flags; or the process's own `gauges`, the ones the
        dashboard's health strip reads), and the metrics port's listener (`listen`; by default
        with `PAYWIRE_METRICS=port`)."""
        self.gauges = gauges or HealthGauges(
            store, clock, stuck_after=stuck_after,
            max_staleness=self.settings.metrics_gauge_cache_seconds)
        listener = None
        if self.settings.metrics == "port" if listen is None else listen:
            listener = MetricsListener(self.settings.metrics_host, self.settings.metrics_port,
                                       self.render, CONTENT_TYPE, self.token)
            await listener.start()
        try:
            yield
        finally:
            if listener is not None:
                await listener.close()
            self.gauges = None
            self.sink.close()

    def install(self, app: FastAPI) -> None:
        """`GET /metrics` on the app (`app`), behind `Authorization: Bearer <token>`."""
        if self.settings.metrics != "app":
            return

        async def metrics(request: Request) -> Response:
            given = request.headers.get("authorization", "")
            if self.token is None or not hmac.compare_digest(
                    given.encode(), f"Bearer {self.token}".encode()):
                return error_response(
                    401, "unauthorized", "GET /metrics needs Authorization: Bearer <metrics "
                    "token> (PAYWIRE_METRICS_TOKEN)", request_id=request_id_of(request),
                    headers={"WWW-Authenticate": "Bearer"})
            return Response(await self.render(), media_type=CONTENT_TYPE)

        app.add_api_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)
