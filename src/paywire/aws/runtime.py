"""What every Lambda entry point shares: settings in, a container built once per environment.

A Lambda execution environment runs one invocation at a time and is frozen between them, for
minutes or hours, then reused. So each entry point keeps a `Runtime`: an event loop that
outlives invocations (the store's and HTTP clients' connections belong to it) and a *session*
(the container, plus whatever the function adds) built at the first invocation, on that loop.
Later invocations reuse it; it is rebuilt only when the settings change (a rotated secret, once
the stage's settings cache has re-read it). No background task runs: the worker, the drainer
and the reconciler are functions of their own, on schedules.

Settings come from `default_settings`: the stage's (Secrets Manager and SSM, through
`paywire.aws.secrets.stage_settings`) when `PAYWIRE_STAGE` is set, the environment's
otherwise. The function-only values (queue URL, max receives) come from `AwsConfig`. A function
reads only the stage secrets it needs (`LambdaFunction.secrets`; its role can read no others):
the functions that call a payment provider (the HTTP API, the webhooks, the reconciler) read
both and ask PayPal about the credentials at start; the SQS consumer reads only the app secret
(the shop's URL and signing secret), the drainer and the stream function none, so a bad or
unreadable PayPal secret does not stop the delivery of announcements already made
(`settings_reading`).

Handlers are synchronous (Lambda calls them so): one called from inside a running event loop
raises; a test or a local runner calls it from a thread (`asyncio.to_thread`).

What a session is built from (the settings classes, the composition root and its adapters, an
HTTP app) is imported where it is built, at the environment's first invocation, not when a
handler module is imported: importing one (Lambda's init) loads this machinery (logging,
metrics, tracing) and what every invocation runs, and each function then loads only what its
own session needs — the SQS consumer never loads the web framework, the webhook function never
loads the checkout API. The first invocation pays for those imports, once per environment
(`bench/lambda_webhook.py` reports the import and the first delivery apart); an environment
initialised ahead of its traffic (provisioned concurrency) would rather pay them at init.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from paywire.aws import logs, tracing
from paywire.aws.metrics import EmfMetrics, emf

if TYPE_CHECKING:  # imported where a session is built (see the module's doc)
    from paywire.aws.config import AwsConfig
    from paywire.bootstrap import Container
    from paywire.ports import Clock, Metrics
    from paywire.settings import Settings

log = logging.getLogger("paywire.aws")

T = TypeVar("T")
R = TypeVar("R")
SettingsFactory = Callable[[], "Settings"]
ConfigFactory = Callable[[], "AwsConfig"]
Opener = Callable[["Settings", "AwsConfig"], AbstractAsyncContextManager[T]]


def _environment() -> tuple[tuple[str, str], ...]:
    """The `PAYWIRE_*` and `AWS_*` variables as they are now (what the settings read)."""
    return tuple(sorted((k, v) for k, v in os.environ.items()
                        if k.startswith(("PAYWIRE_", "AWS_"))))


@functools.lru_cache(maxsize=16)
def _env_settings(environment: tuple[tuple[str, str], ...]) -> Settings:
    from paywire.settings import Settings

    return Settings.load()


@functools.lru_cache(maxsize=16)
def _env_config(environment: tuple[tuple[str, str], ...]) -> AwsConfig:
    from paywire.aws.config import AwsConfig

    return AwsConfig.load()


def default_settings() -> Settings:
    """The stage's settings when `PAYWIRE_STAGE` is set (secrets read at run time and cached
    with a TTL by `paywire.aws.secrets`), else `Settings.load()` from the environment — read
    again only if the environment changed (a function's never does; parsing it each request
    would cost milliseconds)."""
    if os.environ.get("PAYWIRE_STAGE", "").strip():
        from paywire.aws.secrets import stage_settings

        return stage_settings()
    return _env_settings(_environment())


def settings_reading(reads: frozenset[str]) -> SettingsFactory:
    """`default_settings` for a function that never calls a payment provider and reads only
    the stage secrets `reads` names (`paywire.aws.secrets`): no start-up credentials check
    (a refused PayPal secret must not stop the delivery of announcements already made)."""

    def load() -> Settings:
        if os.environ.get("PAYWIRE_STAGE", "").strip():
            from paywire.aws.secrets import stage_settings

            return stage_settings(reads=reads, startup_credentials_check=False)
        return _env_settings(_environment())

    return load


def default_config() -> AwsConfig:
    """`AwsConfig.load()`, read again only if the environment changed."""
    return _env_config(_environment())


@asynccontextmanager
async def open_container(settings: Settings, metrics: Metrics | None = None, *,
                         clock: Clock | None = None) -> AsyncIterator[Container]:
    """The container for `settings` (no background tasks; its store and providers counted
    into `metrics`, if given; `clock` replaces the wall clock), closed on exit."""
    from paywire.bootstrap import build

    container = await build(settings, clock=clock, metrics=metrics)
    try:
        yield container
    finally:
        await container.aclose()


class Runtime(Generic[T]):
    """One execution environment's event loop and session, rebuilt when the settings change."""

    def __init__(self, opener: Opener[T], *,
                 settings_factory: SettingsFactory = default_settings,
                 config_factory: ConfigFactory = default_config) -> None:
        self.opener = opener
        self.settings_factory = settings_factory
        self.config_factory = config_factory
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stack: AsyncExitStack | None = None
        self._inputs: tuple[Settings, AwsConfig] | None = None
        self._session: Any = None
        self.builds = 0  # how many sessions this environment built (1 unless settings changed)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The environment's event loop (made on first use)."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    def run(self, work: Callable[[T], Awaitable[R]]) -> R:
        """Run `work(session)` to completion on the environment's loop."""
        with self.session() as session:
            return self.loop.run_until_complete(work(session))

    @contextmanager
    def session(self) -> Iterator[T]:
        """The current session, with the environment's loop set as this thread's event loop
        (for code, such as Mangum, that runs the loop itself). One invocation at a time."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("a Lambda handler is synchronous: call it from a thread "
                               "(asyncio.to_thread), not from a running event loop")
        with self._lock:
            loop = self.loop
            asyncio.set_event_loop(loop)
            settings, config = self.settings_factory(), self.config_factory()
            if self._inputs is None or not self._same(settings, config):
                loop.run_until_complete(self._reopen(settings, config))
            session: T = self._session
            yield session

    def _same(self, settings: Settings, config: AwsConfig) -> bool:
        assert self._inputs is not None  # noqa: S101 - checked by the caller
        old_settings, old_config = self._inputs
        return ((settings is old_settings or settings == old_settings)
                and (config is old_config or config == old_config))

    async def _reopen(self, settings: Settings, config: AwsConfig) -> None:
        if self._stack is not None:
            log.info("settings changed: rebuilding the container")
            await self._shut()
        logs.protect(settings)
        stack = AsyncExitStack()
        try:
            self._session = await stack.enter_async_context(self.opener(settings, config))
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._inputs = stack, (settings, config)
        self.builds += 1

    async def _shut(self) -> None:
        stack, self._stack, self._inputs, self._session = self._stack, None, None, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception:
                log.exception("closing the previous container failed")

    def close(self) -> None:
        """Close the session and the loop (a test's or a local runner's teardown; Lambda
        simply freezes and discards the environment). Called from inside a running loop, the
        closing happens in a thread of its own (this call waits for it)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._close()
            return
        closer = threading.Thread(target=self._close, name="paywire-runtime-close")
        closer.start()
        closer.join()

    def _close(self) -> None:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                return
            loop = self._loop
            try:
                loop.run_until_complete(self._shut())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                asyncio.set_event_loop(None)


class LambdaFunction(ABC, Generic[T]):
    """A Lambda entry point: `handler(event, context)`, over a `Runtime` of its session.

    Subclasses give `open` (the session for some settings) and `handle` (one invocation).
    Every invocation logs with its request id and cold-start flag; one that raises is logged
    with its traceback (then Lambda reports it failed). What it counted into `metrics` (the
    session's sink: `open` hands it to the container) is printed as EMF when it ends. Inside
    Lambda, each invocation is traced (`paywire.aws.tracing`): a subsegment annotated with the
    function's `kind`, its AWS and HTTP calls under it.
    """

    http = False  # API Gateway's request id goes on log lines as the correlation id
    kind = "function"  # the `function` annotation of its traces (http, sqs_consumer, ...)
    handler_name = "handler"  # its name in its module (the template's `Handler`)
    # The stage secrets this function reads: both ("paypal", "app") for a function that calls
    # a payment provider (its credentials are then checked at start); fewer for one that
    # never does, read with no credentials check (`settings_reading`).
    secrets: frozenset[str] = frozenset({"paypal", "app"})

    def __init__(self, *, settings_factory: SettingsFactory | None = None,
                 config_factory: ConfigFactory = default_config,
                 metrics: EmfMetrics | None = None) -> None:
        if settings_factory is None:
            settings_factory = default_settings if self.calls_providers else (
                settings_reading(self.secrets))
        self.runtime: Runtime[T] = Runtime(self.open, settings_factory=settings_factory,
                                           config_factory=config_factory)
        self.metrics = metrics if metrics is not None else emf()
        self._entry: Callable[[dict[str, Any], Any], Any] | None = None

    @property
    def calls_providers(self) -> bool:
        """Whether this function calls a payment provider: it reads the PayPal secret."""
        return "paypal" in self.secrets

    @abstractmethod
    def open(self, settings: Settings, config: AwsConfig) -> AbstractAsyncContextManager[T]:
        """The session this function runs on, for `settings` and `config`."""

    @abstractmethod
    def handle(self, event: dict[str, Any], context: Any) -> Any:
        """Answer one invocation."""

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        """The Lambda handler (traced and logged as an invocation; wrapped at the first call,
        so tracing, if on, patches its libraries before the session makes any client)."""
        if self._entry is None:
            traced = tracing.traced(self._invoke,
                                    name=f"{type(self).__module__}.{self.handler_name}",
                                    kind=self.kind)
            self._entry = logs.invocation(traced, http=self.http)
        return self._entry(event, context)

    def _invoke(self, event: dict[str, Any], context: Any) -> Any:
        try:
            return self.handle(event, context)
        except Exception:
            log.exception("%s invocation failed", type(self).__name__)
            raise
        finally:
            self.metrics.flush()

    def close(self) -> None:
        """Release the session and the loop."""
        self.runtime.close()
