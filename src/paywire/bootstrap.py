"""The composition root: settings in, a wired container (and the HTTP app) out.

Nothing else instantiates adapters. `build(settings)` loads the catalog (refusing prices PayPal
cannot take), migrates an embedded SQLite database, and wires `SqlStore`, `PayPalClient`, a UTC
clock and `CheckoutService`. `create_app(settings)` is the FastAPI app whose lifespan builds the
container and closes it at shutdown. A PostgreSQL database is never migrated here: run
`paywire migrate` (a deploy step, so replicas never race on DDL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI

from paywire.api.app import create_api
from paywire.catalog_file import load_catalog
from paywire.domain.catalog import Catalog
from paywire.domain.errors import ConfigError
from paywire.ports import Clock, PaymentProvider, Store
from paywire.providers.paypal import mapping
from paywire.providers.paypal.client import PayPalClient
from paywire.services.checkout import CheckoutService
from paywire.services.operations import OperationRunner
from paywire.settings import Settings
from paywire.store import migrate
from paywire.store.sql import SqlStore, sync_url

log = logging.getLogger("paywire")

ProviderWrapper = Callable[[PaymentProvider], PaymentProvider]


class SystemClock:
    """The wall clock, timezone-aware UTC."""

    def now(self) -> datetime:
        """The current instant."""
        return datetime.now(UTC)


@dataclass
class Container:
    """Everything wired: what the API, the CLI and the dev server run on."""

    settings: Settings
    store: Store
    provider: PaymentProvider
    clock: Clock
    catalog: Catalog
    checkout: CheckoutService

    async def aclose(self) -> None:
        """Release the provider's HTTP client and the store's connections."""
        try:
            await self.provider.aclose()
        finally:
            await self.store.close()


def sqlite_path(settings: Settings) -> Path | None:
    """The embedded SQLite file of `settings.database_url` (None for other databases)."""
    if not settings.is_sqlite:
        return None
    database = sync_url(settings.database_url).database
    return Path(database) if database else None


def migrate_embedded(settings: Settings) -> None:
    """Create the SQLite file's directory and migrate it to head (never PostgreSQL)."""
    path = sqlite_path(settings)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"PAYWIRE_DATA_DIR / PAYWIRE_DATABASE_URL: cannot create "
                          f"{path.parent} ({exc.strerror or exc})") from exc
    migrate.upgrade(settings.database_url)


def paypal_client(settings: Settings) -> PayPalClient:
    """The PayPal client for `settings` (sandbox, live or the emulator)."""
    if settings.paypal_client_id is None or settings.paypal_client_secret is None:
        raise ConfigError("PAYWIRE_PAYPAL_CLIENT_ID and PAYWIRE_PAYPAL_CLIENT_SECRET must be set "
                          "(`paywire emulator` prints the credentials it accepts)")
    return PayPalClient(settings.paypal_url, settings.paypal_client_id,
                        settings.paypal_client_secret,
                        timeout=settings.paypal_timeout_seconds,
                        max_attempts=settings.paypal_max_retries + 1,
                        backoff_base=settings.paypal_retry_backoff_seconds)


async def build(settings: Settings, *, wrap_provider: ProviderWrapper | None = None,
                clock: Clock | None = None) -> Container:
    """Wire the adapters `settings` name into the services.

    `wrap_provider` lets a test put a fake around the real PayPal client (the provider seam);
    `clock` replaces the wall clock.
    """
    catalog = load_catalog(settings.catalog_file, mapping.check_amount)
    if settings.is_sqlite:
        await asyncio.to_thread(migrate_embedded, settings)
    clock = clock or SystemClock()
    provider: PaymentProvider = paypal_client(settings)
    if wrap_provider is not None:
        provider = wrap_provider(provider)
    store = SqlStore(settings.database_url)
    runner = OperationRunner(store, clock,
                             lease=timedelta(seconds=settings.operation_lease_seconds))
    checkout = CheckoutService(store, provider, clock, return_url=settings.return_url,
                               cancel_url=settings.cancel_url, runner=runner,
                               approval_window=timedelta(
                                   seconds=settings.paypal_approval_window_seconds))
    log.info("paywire wired: PayPal %s at %s, store %s, %d products",
             settings.paypal_env, settings.paypal_url, settings.database_url_redacted,
             len(catalog.products))
    return Container(settings=settings, store=store, provider=provider, clock=clock,
                     catalog=catalog, checkout=checkout)


def create_app(settings: Settings, *, wrap_provider: ProviderWrapper | None = None,
               clock: Clock | None = None) -> FastAPI:
    """The paywire HTTP API for `settings`; its lifespan builds and closes the container."""

    @asynccontextmanager
    async def open_container() -> AsyncIterator[Container]:
        container = await build(settings, wrap_provider=wrap_provider, clock=clock)
        try:
            yield container
        finally:
            await container.aclose()

    return create_api(settings, open_container)


def app_from_env() -> FastAPI:
    """`paywire serve`'s app factory (uvicorn workers import it): settings from the environment."""
    return create_app(Settings.load())
