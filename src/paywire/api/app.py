"""The ASGI application factory (the composition root, `paywire.bootstrap`, calls it).

`create_api(settings, open_container)` builds a FastAPI app whose lifespan enters
`open_container()` (the composition root's wiring of store, provider, clock, catalog and
services) and exits it at shutdown. The container is `app.state.container` while the app runs;
entry points that add routes (the demo shop) read it there.

The checkout, admin and APS return routes are imported for the whole surface alone: an app
serving only the providers' deliveries (the AWS webhook function) never loads them, nor pays
FastAPI's work of declaring them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Literal, Protocol

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import paywire
from paywire.api import errors, webhooks
from paywire.api.idempotency import HEADER, IdempotencyGate
from paywire.api.keys import ApiKeys
from paywire.api.middleware import DeadlineMiddleware, RequestContextMiddleware
from paywire.api.tracing import TraceMiddleware
from paywire.settings import Settings

if TYPE_CHECKING:
    from paywire.api.routes import ApiContainer
    from paywire.ports import Clock, Metrics

    class ServedContainer(ApiContainer, Protocol):
        """What the lifespan needs from the container beyond the routes' needs."""

        clock: Clock
        metrics: Metrics

# Which routes an app serves: all of them, or only the providers' deliveries.
Surface = Literal["all", "webhooks"]


DESCRIPTION = """\
Server-priced, crash-proof PayPal payments.

Browsers send catalog skus and quantities (`POST /v1/checkout/orders`); paywire prices the order
itself, creates it at PayPal and captures it once approved. Admin endpoints take
`Authorization: Bearer <API key>`. `GET /v1/orders/{id}` and the checkout's capture and
authorize answer the whole order only with a key, and without one only what the buyer's pages
need (a wrong key is 401). Every error is
`{"error": {"code", "message", "details", "request_id"}}`; every response carries
`X-Request-Id`. Mutating POSTs accept an `Idempotency-Key` (replayed answers carry
`Idempotent-Replayed: true`). A W3C `traceparent` is continued (a missing or invalid one starts a
new trace, never an error); `traceresponse` names the trace the request was recorded under.
"""


def create_api(settings: Settings,
               open_container: Callable[[], AbstractAsyncContextManager[ServedContainer]],
               *, surface: Surface = "all") -> FastAPI:
    """The paywire HTTP API, served from the container `open_container` yields: every route,
    or (`surface="webhooks"`) only the providers' deliveries, for a process of their own (the
    AWS webhook function) that serves nothing else."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_container() as container:
            app.state.container = container
            app.state.gate = IdempotencyGate(container.store, container.clock,
                                             ttl_seconds=settings.idempotency_ttl_seconds,
                                             lock_seconds=settings.request_timeout_seconds,
                                             metrics=container.metrics)
            try:
                yield
            finally:
                del app.state.container

    app = FastAPI(title="paywire", version=paywire.__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url="/docs" if settings.api_docs else None,
                  openapi_url="/openapi.json" if settings.api_docs else None, redoc_url=None)
    app.state.api_keys = ApiKeys(settings.api_keys)
    errors.install(app)
    if surface == "all":  # see the module's doc
        from paywire.api import aps_return, routes, webhook_admin
        from paywire.api.lane import CheckoutLane

        app.include_router(routes.router)
        app.include_router(webhooks.router)
        app.include_router(webhook_admin.router)
        app.include_router(aps_return.router)
        # Innermost: inside the body limit, straight to the checkout's create and capture.
        app.add_middleware(CheckoutLane)
    else:
        app.include_router(webhooks.router)
    # Added innermost first: the trace wraps everything (the crash log line included), then
    # the request id; CORS wraps the 413s. Webhooks
    # read their raw bytes under their own limit, so the general one routes around them.
    app.add_middleware(webhooks.BodyLimitExcept, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", HEADER, "X-Request-Id",
                           "traceparent", "tracestate"],
            expose_headers=["X-Request-Id", "Idempotent-Replayed", "Retry-After",
                            "traceresponse"],
            max_age=600)
    app.add_middleware(DeadlineMiddleware, budget_seconds=settings.request_budget_seconds,
                       reserve_seconds=settings.request_deadline_reserve_seconds)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(TraceMiddleware)
    return app
