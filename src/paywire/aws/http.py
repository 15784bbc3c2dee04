"""The HTTP API as a Lambda function: API Gateway (HTTP API, payload 2.0) → Mangum → FastAPI.

`handler` serves the checkout API and the admin API; `webhook_handler` (a function of its own,
with its own concurrency, alarms and role) serves only the providers' deliveries,
`POST /webhooks/paypal` and `POST /webhooks/aps`, from an app that has no other route, so a
flood of checkouts cannot starve PayPal's deliveries nor a flood of deliveries the buyers.
API Gateway may base64-encode a request body (`isBase64Encoded`); Mangum decodes it, so the
webhook routes verify the signature over exactly the bytes the provider sent.

Mangum's own lifespan handling would build (and close) the container on *every* invocation, so
it runs with `lifespan="off"` and the app's lifespan is entered here instead, once per
execution environment (`Runtime`), and kept open while the environment lives. No background
loop runs in the function: the truth fetcher, reconciler and outbox run as functions of their
own on schedules.

Importing this module (Lambda's init) loads no web framework, settings or adapter: the app
(FastAPI, its routes, the container) is imported where it is built, in `open`, at the
environment's first invocation (`paywire.aws.runtime`), and each handler imports only its own
app's modules, so the webhook function never loads the checkout API's routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from paywire.aws import tracing
from paywire.aws.metrics import EmfMetrics
from paywire.aws.runtime import (
    ConfigFactory,
    LambdaFunction,
    SettingsFactory,
    default_config,
)

if TYPE_CHECKING:  # imported at the first invocation, where the app is built
    from fastapi import FastAPI
    from mangum import Mangum

    from paywire.aws.config import AwsConfig
    from paywire.ports import Metrics
    from paywire.settings import Settings

AppFactory = Callable[["Settings", "Metrics"], "FastAPI"]


def lambda_app(settings: Settings, metrics: Metrics | None = None) -> FastAPI:
    """The paywire API for a Lambda function: no background tasks; counted into `metrics`."""
    from paywire.bootstrap import create_app

    return create_app(settings, background_tasks=False, metrics=metrics)


def webhook_app(settings: Settings, metrics: Metrics | None = None) -> FastAPI:
    """`lambda_app` serving only the providers' deliveries (the webhook function's app)."""
    from paywire.bootstrap import create_app

    return create_app(settings, background_tasks=False, metrics=metrics, surface="webhooks")


class HttpApi(LambdaFunction["Mangum"]):
    """The HTTP API handler: one FastAPI app (and container) per execution environment."""

    http = True
    kind = "http"

    def __init__(self, *, settings_factory: SettingsFactory | None = None,
                 config_factory: ConfigFactory = default_config,
                 app_factory: AppFactory = lambda_app,
                 metrics: EmfMetrics | None = None, kind: str = "http",
                 handler_name: str = "handler") -> None:
        super().__init__(settings_factory=settings_factory, config_factory=config_factory,
                         metrics=metrics)
        self.app_factory = app_factory
        self.kind, self.handler_name = kind, handler_name

    @asynccontextmanager
    async def open(self, settings: Settings, config: AwsConfig) -> AsyncIterator[Mangum]:
        """The app with its lifespan entered (the container built), behind Mangum."""
        from mangum import Mangum

        app = self.app_factory(settings, self.metrics)
        async with app.router.lifespan_context(app):
            yield Mangum(app, lifespan="off", api_gateway_base_path=config.api_base_path)

    def handle(self, event: dict[str, Any], context: Any) -> Any:
        """Serve one API Gateway request (its route and order id annotate the trace)."""
        tracing.annotate(**tracing.http_annotations(event))
        with self.runtime.session() as adapter:
            # Mangum runs the environment's loop (set as this thread's loop by `session`).
            return adapter(event, context)


handler = HttpApi()
webhook_handler = HttpApi(app_factory=webhook_app, kind="webhooks",
                          handler_name="webhook_handler")
