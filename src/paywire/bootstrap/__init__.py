"""The composition root: settings in, wired adapters, services and the HTTP app out.

Nothing else instantiates adapters. The entry points (`paywire.cli`, `paywire.dev`,
`paywire.aws`) import what they need from here:

- `container`: `build(settings)` wires everything into a `Container`;
- `adapters`: one adapter from settings (the store, provider clients, delivery targets, the
  outbox worker, the reconciler);
- `app`: `create_app(settings)`, the FastAPI app whose lifespan builds the container and runs
  the background work;
- `webhooks`: the webhook verifier the settings describe (local or postback, and its trust);
- `catalog`: the shop's catalog file, refused at start-up if a price cannot be sold;
- `credentials`: does PayPal take the configured credentials (the start-up and doctor check).

`create_app` is imported on first use (PEP 562): it brings the web framework, which the
processes that serve no HTTP (the SQS consumer, the drainer, the stream and reconciler
functions, most CLI commands) never need.
"""

from typing import TYPE_CHECKING, Any

from paywire.bootstrap.adapters import (
    fulfilment_targets,
    migrate_embedded,
    open_store,
    outbox_worker,
    paypal_client,
    store_for,
    worker_id,
)
from paywire.bootstrap.container import Container, ProviderWrapper, build
from paywire.bootstrap.webhooks import NoWebhookId
from paywire.ports import SystemClock

if TYPE_CHECKING:
    from paywire.bootstrap.app import create_app

__all__ = ["Container", "NoWebhookId", "ProviderWrapper", "SystemClock", "build", "create_app",
           "fulfilment_targets", "migrate_embedded", "open_store", "outbox_worker",
           "paypal_client", "store_for", "worker_id"]


def __getattr__(name: str) -> Any:
    """`create_app`, imported when first asked for (see the module's doc)."""
    if name == "create_app":
        from paywire.bootstrap.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
