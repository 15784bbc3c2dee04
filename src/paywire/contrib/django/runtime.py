"""paywire running beside Django: once per process, on an event loop of its own.

Django gives no lifespan to hang paywire's start-up on (its ASGI handler refuses lifespan
events, and WSGI has none), and Django may run a view in any thread and, under WSGI, in a
fresh event loop per request; paywire's container (its store's connections, its HTTP clients)
and background jobs need one loop for their whole life. So the `Runtime` owns a daemon thread
running one event loop, where `paywire.embed(settings).running()` builds the container and
runs the background jobs (the truth fetcher, the outbox worker, the reconciler) until
`stop()`. The views hand each request to that loop (`call`), from an async view under ASGI or
a sync one under WSGI alike.

It starts on the first request to paywire's URLs, or at server start-up with
`paywire.contrib.django.asgi.get_asgi_application()` (the ASGI server's lifespan: the
background jobs then run from the start); `start()` does it by hand (a WSGI entry point).
Never in `AppConfig.ready()`: every management command and runserver's reloader process would
start one too. It stops at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from paywire.bootstrap.embed import Embedded, embed
from paywire.contrib.django import conf
from paywire.settings import Settings

log = logging.getLogger("paywire.django")
T = TypeVar("T")
# How long start-up (the container: catalog, store, SQLite migrations) and shutdown may take.
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


class Runtime:
    """paywire's app and background jobs on an event loop thread of their own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paywire: Embedded = embed(settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="paywire", daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<paywire Django runtime {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        """Whether the container is built and the jobs run."""
        return self._started.is_set() and self._error is None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread and wait until paywire is up; its start-up error if it failed."""
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError(f"paywire did not start within {START_TIMEOUT_SECONDS:.0f} s")
        if self._error is not None:
            raise self._error

    def call(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coro` on paywire's loop (from any thread); its future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Stop the jobs, close the container, end the thread (waits a bounded time)."""
        if not self._thread.is_alive():
            return
        stop = self._stop
        if stop is not None:
            self.loop.call_soon_threadsafe(stop.set)
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            log.warning("paywire's runtime did not stop within %.0f s", STOP_TIMEOUT_SECONDS)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with self.paywire.running():
                self._started.set()
                await self._stop.wait()
        except BaseException as exc:  # handed to start()'s caller
            self._error = exc
            if not self._started.is_set():
                self._started.set()
                return
            log.exception("paywire's runtime failed")


_lock = threading.Lock()
_runtime: Runtime | None = None


def get() -> Runtime:
    """This process's runtime, started on first use from `settings.PAYWIRE` (ConfigError, or
    paywire's start-up error, if it cannot start; the next call tries again)."""
    global _runtime
    with _lock:
        if _runtime is None or not _runtime.running:
            runtime = Runtime(conf.paywire_settings())
            runtime.start()
            _runtime = runtime
        return _runtime


def start() -> Runtime:
    """Start paywire in this process now (a server's start-up); the running runtime."""
    return get()


def stop() -> None:
    """Stop this process's runtime, if one runs (the next request starts a fresh one, from the
    settings as they are then: tests that change `settings.PAYWIRE` call this)."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.stop()


atexit.register(stop)
