"""paywire inside a shop's own ASGI app (Starlette, FastAPI): its API and webhook endpoints
mounted under a prefix, its background jobs run by the host's lifespan.

Starlette's `Mount` never runs a mounted app's lifespan, and paywire's lifespan is what builds
its container (store, providers, services) and runs the background jobs (the truth fetcher,
the outbox worker, the reconciler: `paywire.bootstrap.app.background`). So an `Embedded` paywire
is two things the host wires together::

    pw = paywire.embed(settings, fulfil=mark_paid)      # Settings, or a mapping of them
    app = FastAPI(lifespan=pw.lifespan)                  # or: async with pw.running(): ...
    app.mount("/pay", pw.asgi)

or, in one call for an app that already exists (its own lifespan, if any, runs inside
paywire's)::

    pw = paywire.mount(app, "/pay", settings, fulfil=mark_paid)

`pw.asgi` is exactly the app `paywire serve` runs (`create_app`): the same routes, middleware,
container and jobs, wired once. `pw.running()` enters that app's own lifespan, so the container
is built, the jobs started and everything closed the same way; a second entry while it runs
is refused (`AlreadyRunning`), so the jobs run exactly once whatever the host does with
`pw.lifespan` and `pw.asgi` (served directly, `pw.asgi`'s lifespan takes the same guard).

`fulfil` is the shop's own function, called as `fn(message_id, type, payload)` (awaited if it
is a coroutine function, in a worker thread otherwise) for every announcement, at least once:
it must deduplicate on the message id (`paywire.delivery.python_callable`). With a fulfilment
target the outbox worker runs in the host process unless `PAYWIRE_OUTBOX_WORKER_ENABLED` was
set to false explicitly.

Under a prefix the routes answer at `<prefix>/v1/...` and `<prefix>/webhooks/<provider>`:
`pw.path("/webhooks/paypal")` says where (register that URL with PayPal; APS's return URL is
`<prefix>/v1/aps/return`). paywire's routes match the same paths mounted or not (Starlette
routes inside `root_path`, and paywire's own path checks use `api.middleware.route_path`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from paywire.bootstrap.app import create_app
from paywire.bootstrap.container import Container, ProviderWrapper
from paywire.delivery.python_callable import CallableTarget
from paywire.ports import Clock, DeliveryTarget, Metrics
from paywire.settings import Settings

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]
"""A Starlette/FastAPI lifespan: `lifespan(app)` is an async context manager (yielding None or
a state mapping)."""


class AlreadyRunning(RuntimeError):
    """paywire was started a second time while running: its jobs run once per process."""


class Embedded:
    """paywire's API and background jobs for a host ASGI app (see the module's doc)."""

    def __init__(self, settings: Settings | Mapping[str, Any], *,
                 fulfil: Callable[..., Any] | str | None = None, prefix: str = "",
                 wrap_provider: ProviderWrapper | None = None, clock: Clock | None = None,
                 metrics: Metrics | None = None) -> None:
        if not isinstance(settings, Settings):
            settings = Settings.load(**dict(settings))
        targets: list[DeliveryTarget] = []
        if fulfil is not None:
            targets.append(CallableTarget(fulfil, name="fulfil"))
        if (targets or settings.fulfilment_url or settings.fulfilment_callable) and (
                "outbox_worker_enabled" not in settings.model_fields_set):
            # Embedded, the host process is where announcements are delivered from.
            settings = settings.model_copy(update={"outbox_worker_enabled": True})
        self.settings = settings
        self.prefix = _prefix(prefix)
        self.asgi: FastAPI = create_app(settings, wrap_provider=wrap_provider, clock=clock,
                                        metrics=metrics, targets=targets)
        self._paywire_lifespan = self.asgi.router.lifespan_context
        self._running = False
        # Served on its own (not mounted), the app's lifespan takes the same guard.
        self.asgi.router.lifespan_context = self._own_lifespan

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<paywire.Embedded prefix={self.prefix or '/'!r} {state}>"

    @property
    def is_running(self) -> bool:
        """Whether `running()` is entered (the container is built, the jobs run)."""
        return self._running

    @property
    def container(self) -> Container:
        """Everything wired (store, services), while running; RuntimeError otherwise."""
        container: Container | None = getattr(self.asgi.state, "container", None)
        if container is None:
            raise RuntimeError("paywire is not running: enter pw.running() (or give the host "
                               "app lifespan=pw.lifespan) first")
        return container

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client for paywire's API in this process (no network hop: the requests go
        straight to `pw.asgi`, through its middleware, while paywire runs); close it after
        use. `kwargs` go to `httpx.AsyncClient` (`headers` with an API key, say)."""
        kwargs.setdefault("base_url", "http://paywire.internal")
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.asgi), **kwargs)

    def path(self, path: str) -> str:
        """`path` of paywire's (`/webhooks/paypal`) as the host serves it (`/pay/webhooks/...`)."""
        return f"{self.prefix}/{path.lstrip('/')}"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Container]:
        """Build the container, start the background jobs, and stop and close them on exit;
        yields the container. AlreadyRunning if entered again before it exits."""
        if self._running:
            raise AlreadyRunning("paywire is already running in this process: enter "
                                 "pw.running() once (the host app's lifespan), not also "
                                 "the mounted app's")
        self._running = True
        try:
            async with self._paywire_lifespan(self.asgi):
                yield self.container
        finally:
            self._running = False

    def lifespan(self, app: Any) -> AbstractAsyncContextManager[None]:
        """A host app's lifespan that runs paywire (`FastAPI(lifespan=pw.lifespan)`)."""
        return self._none(self.running())

    def around(self, host: Lifespan | None) -> Lifespan:
        """A lifespan that runs paywire around the host's own `host` lifespan (which starts
        after paywire is up, so it may use `pw.container`, and stops before paywire does);
        whatever state `host` yields is passed on."""

        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with self.running():
                if host is None:
                    yield None
                else:
                    async with host(app) as state:
                        yield state

        return lifespan

    @asynccontextmanager
    async def _none(self, cm: AbstractAsyncContextManager[Any]) -> AsyncIterator[None]:
        async with cm:
            yield

    @asynccontextmanager
    async def _own_lifespan(self, app: Any) -> AsyncIterator[None]:
        async with self.running():
            yield


def _prefix(prefix: str) -> str:
    stripped = prefix.strip("/")
    return f"/{stripped}" if stripped else ""


def embed(settings: Settings | Mapping[str, Any], *,
          fulfil: Callable[..., Any] | str | None = None, prefix: str = "",
          wrap_provider: ProviderWrapper | None = None, clock: Clock | None = None,
          metrics: Metrics | None = None) -> Embedded:
    """paywire for a host app to mount (`pw.asgi`) and run in its lifespan (`pw.lifespan`,
    `pw.running()`); `prefix` is only where the host mounts it (for `pw.path`)."""
    return Embedded(settings, fulfil=fulfil, prefix=prefix, wrap_provider=wrap_provider,
                    clock=clock, metrics=metrics)


def mount(app: Any, prefix: str, settings: Settings | Mapping[str, Any], *,
          fulfil: Callable[..., Any] | str | None = None,
          wrap_provider: ProviderWrapper | None = None, clock: Clock | None = None,
          metrics: Metrics | None = None) -> Embedded:
    """Mount paywire into the Starlette/FastAPI `app` under `prefix` and make `app`'s lifespan
    run it (around the lifespan `app` already had: it starts once paywire is up); the
    `Embedded` paywire. Call it before the app serves (its lifespan is read at start-up).
    """
    if not _prefix(prefix):
        raise ValueError("mount paywire under a prefix of its own (\"/pay\"), not at the root "
                         "of the host app")
    pw = embed(settings, fulfil=fulfil, prefix=prefix, wrap_provider=wrap_provider,
               clock=clock, metrics=metrics)
    # The lifespan the app already has (Starlette's default one runs on_startup handlers)
    # runs inside paywire's.
    app.router.lifespan_context = pw.around(app.router.lifespan_context)
    app.mount(pw.prefix, pw.asgi)
    return pw
