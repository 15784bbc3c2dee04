"""The HTTP app a serving process runs: the API over a container its lifespan builds, with the
background work (the truth fetcher, the outbox worker, the reconciler) beside the requests.

Each background job runs behind its setting, in the one loop of `paywire.services.loop` (a
failed round is logged and retried, never the end of the job); none runs in a Lambda function,
where they are functions of their own. The container and the jobs are closed at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from paywire.api.app import Surface, create_api
from paywire.bootstrap.container import Container, ProviderWrapper, build
from paywire.bootstrap.webhooks import EmulatorCaVerifier
from paywire.domain.errors import ProviderError
from paywire.ports import Clock, DeliveryTarget, Metrics
from paywire.settings import Settings

log = logging.getLogger("paywire")


@asynccontextmanager
async def background(container: Container) -> AsyncIterator[None]:
    """What a serving process runs beside its requests: the emulator's CA fetched up front
    for each provider whose webhooks are verified against it, and the truth fetcher, stopped
    cleanly on exit."""
    settings = container.settings
    for ingest in container.webhook_ingests.values():
        if isinstance(ingest.verifier, EmulatorCaVerifier):
            try:
                await ingest.verifier.prime()
            except ProviderError as exc:  # not fatal: fetched again at the first delivery
                log.warning("%s; %s webhooks answer 503 until it can be fetched", exc.message,
                            ingest.provider)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    if settings.truth_fetch_enabled:
        tasks.append(asyncio.create_task(
            container.truth.run(stop, settings.truth_fetch_interval_seconds),
            name="paywire truth fetcher"))
    if settings.outbox_worker_enabled and container.outbox is not None:
        tasks.append(asyncio.create_task(
            container.outbox.run(stop, settings.outbox_interval_seconds),
            name="paywire outbox worker"))
    elif settings.outbox_worker_enabled:
        log.warning("the outbox worker is on but no fulfilment target is configured "
                    "(PAYWIRE_FULFILMENT_URL / PAYWIRE_FULFILMENT_CALLABLE): nothing delivered")
    if settings.reconcile_enabled:
        tasks.append(asyncio.create_task(
            # The truth queue keeps its own loop and switch here (`reconcile` one-shots run it).
            container.reconciler.without_truth_queue().run(stop,
                                                           settings.reconcile_interval_seconds),
            name="paywire reconciler"))
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            try:
                # A round in flight finishes (its claims released) unless it takes too long.
                await asyncio.wait_for(task, timeout=5)
            except TimeoutError:
                log.warning("%s did not stop within 5 s; cancelled", task.get_name())


def create_app(settings: Settings, *, wrap_provider: ProviderWrapper | None = None,
               clock: Clock | None = None, background_tasks: bool = True,
               metrics: Metrics | None = None, surface: Surface = "all",
               targets: Sequence[DeliveryTarget] = ()) -> FastAPI:
    """The paywire HTTP API for `settings`; its lifespan builds the container (counted into
    `metrics`, if given; `targets` beside the settings' fulfilment targets), runs the background
    work (`background`, unless `background_tasks` is False: a Lambda function, frozen between
    requests, runs none) and closes both. `surface` chooses the routes (`create_api`)."""

    @asynccontextmanager
    async def open_container() -> AsyncIterator[Container]:
        container = await build(settings, wrap_provider=wrap_provider, clock=clock,
                                metrics=metrics, targets=targets)
        try:
            if background_tasks:
                async with background(container):
                    yield container
            else:
                yield container
        finally:
            await container.aclose()

    return create_api(settings, open_container, surface=surface)
