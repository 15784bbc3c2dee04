"""The composition root's heart: settings in, a wired `Container` out.

Nothing else instantiates adapters. `build(settings)` loads the catalog (refusing prices the
default provider cannot take), migrates an embedded SQLite database, and wires the store, the
offered providers (PayPal, APS) in one `ProviderRegistry`, a UTC clock, the order services
(`OrderQueries`, `Checkout`, `Refunds`, sharing one `TruthApplier`), webhook ingest (the verifier
`paywire.bootstrap.webhooks` chooses, each provider's event parser), the truth fetcher, the
reconciler and the outbox worker. No network call is made here (`paywire.bootstrap.app` runs
the background work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from paywire.bootstrap.adapters import (
    aps_parts,
    migrate_embedded,
    outbox_worker,
    paypal_client,
    reconciler_for,
    store_for,
    worker_id,
)
from paywire.bootstrap.catalog import load_catalog
from paywire.bootstrap.webhooks import webhook_verifier
from paywire.domain.catalog import Catalog
from paywire.ports import (
    Clock,
    Metrics,
    NoMetrics,
    PaymentProvider,
    Store,
    SystemClock,
    WebhookVerifier,
)
from paywire.providers.aps.events import ApsEventParser, ApsWebhookVerifier
from paywire.providers.paypal.client import PayPalClient
from paywire.providers.paypal.events import PayPalEventParser
from paywire.services.checkout import Checkout
from paywire.services.fulfilment import OutboxWorker
from paywire.services.metering import MeteredProvider, MeteredStore
from paywire.services.operations import OperationRunner
from paywire.services.orders import OrderQueries
from paywire.services.provider_truth import TruthApplier
from paywire.services.reconcile import Reconciler
from paywire.services.refunds import Refunds
from paywire.services.registry import ProviderRegistry
from paywire.services.truth import TruthFetcher
from paywire.services.webhooks import WebhookIngest
from paywire.settings import Settings

log = logging.getLogger("paywire")

ProviderWrapper = Callable[[PaymentProvider], PaymentProvider]


@dataclass
class Container:
    """Everything wired: what the API, the CLI and the dev server run on."""

    settings: Settings
    store: Store
    provider: PaymentProvider  # the default provider (the first PAYWIRE_PROVIDERS names)
    providers: ProviderRegistry  # every offered provider by name, the default first
    clock: Clock
    catalog: Catalog
    orders: OrderQueries
    checkout: Checkout
    refunds: Refunds
    # PayPal's webhook ingest and verifier (None when the shop does not offer PayPal).
    webhooks: WebhookIngest | None
    truth: TruthFetcher
    verifier: WebhookVerifier | None
    http: httpx.AsyncClient  # certificate and CA fetches (never the PayPal API's client)
    reconciler: Reconciler
    outbox: OutboxWorker | None = None  # None when no fulfilment target is configured
    # Each offered provider (None when not offered); APS's feedback ingest.
    aps: PaymentProvider | None = None
    aps_webhooks: WebhookIngest | None = None
    paypal: PaymentProvider | None = None
    # Where operational counters go (`services.metering`); counts nothing unless a deployment
    # gives a sink (the Lambda functions: CloudWatch EMF).
    metrics: Metrics = field(default_factory=NoMetrics)

    async def aclose(self) -> None:
        """Release the HTTP clients and the store's connections."""
        try:
            if self.outbox is not None:
                await self.outbox.aclose()
            await self.http.aclose()
            for provider in (self.paypal, self.aps):
                if provider is not None:
                    await provider.aclose()
        finally:
            await self.store.close()


async def build(settings: Settings, *, wrap_provider: ProviderWrapper | None = None,
                clock: Clock | None = None, metrics: Metrics | None = None) -> Container:
    """Wire the adapters `settings` name into the services.

    `wrap_provider` lets a test put a fake around the real PayPal client (the provider seam);
    `clock` replaces the wall clock. With `metrics`, the store and the providers are counted
    (`services.metering`) and the container carries the sink. No network call is made here
    (see `background`).
    """
    clock = clock or SystemClock()

    def wrap(provider: PaymentProvider) -> PaymentProvider:
        wrapped = provider if wrap_provider is None else wrap_provider(provider)
        return wrapped if metrics is None else MeteredProvider(wrapped, metrics)

    async with contextlib.AsyncExitStack() as undo:  # on a refusal, close what was opened
        providers: list[PaymentProvider] = []
        paypal: PayPalClient | None = None
        offered_paypal: PaymentProvider | None = None
        if "paypal" in settings.providers:
            paypal = paypal_client(settings)
            undo.push_async_callback(paypal.aclose)
            offered_paypal = wrap(paypal)
            providers.append(offered_paypal)
        aps: PaymentProvider | None = None
        aps_verifier: ApsWebhookVerifier | None = None
        if "aps" in settings.providers:
            aps_provider, aps_verifier = aps_parts(settings, clock)
            undo.push_async_callback(aps_provider.aclose)
            aps = wrap(aps_provider)
            providers.append(aps)
        # The first provider the settings name is the default for new orders; the catalog's
        # prices must suit it (each order's amount is checked by its own provider too).
        named: list[str] = list(settings.providers)
        providers.sort(key=lambda p: named.index(p.name))
        default = providers[0]
        catalog = load_catalog(settings.catalog_file, default.check_amount)
        if settings.is_sqlite:
            await asyncio.to_thread(migrate_embedded, settings)
        # trust_env=False: a proxy from the environment must not sit between us and the cert
        # host.
        http = httpx.AsyncClient(timeout=settings.webhook_cert_timeout_seconds,
                                 follow_redirects=False, trust_env=False)
        undo.push_async_callback(http.aclose)
        store = store_for(settings)
        undo.push_async_callback(store.close)
        if metrics is not None:
            store = MeteredStore(store, metrics)
        runner = OperationRunner(store, clock,
                                 lease=timedelta(seconds=settings.operation_lease_seconds))
        registry = ProviderRegistry(default, *providers[1:])
        orders = OrderQueries(store, registry)
        applier = TruthApplier(store, clock)
        checkout = Checkout(store, registry, clock, orders=orders, truth=applier, runner=runner,
                            return_url=settings.return_url, cancel_url=settings.cancel_url,
                            approval_window=timedelta(
                                seconds=settings.paypal_approval_window_seconds))
        refunds = Refunds(store, registry, clock, orders=orders, runner=runner)
        verifier: WebhookVerifier | None = None
        webhooks: WebhookIngest | None = None
        if paypal is not None:
            verifier = webhook_verifier(settings, paypal, clock, http)
            # PayPal signs a CRC-32 of the body only: its claims are confirmed with its API.
            webhooks = WebhookIngest(store, verifier, PayPalEventParser(), clock,
                                     provider=paypal.name,
                                     max_rejections=settings.max_rejections, confirm=True)
        aps_webhooks = None if aps_verifier is None else WebhookIngest(
            store, aps_verifier, ApsEventParser(), clock, provider="aps",
            max_rejections=settings.max_rejections)
        truth = TruthFetcher(
            store, registry, applier, clock, owner=worker_id(),
            lease=timedelta(seconds=settings.truth_fetch_lease_seconds),
            base_delay=timedelta(seconds=settings.truth_fetch_base_delay_seconds),
            max_delay=timedelta(seconds=settings.truth_fetch_max_delay_seconds),
            max_attempts=settings.truth_fetch_max_attempts, batch=settings.truth_fetch_batch)
        reconciler = reconciler_for(settings, store, registry, applier, truth, clock)
        outbox = outbox_worker(settings, store, clock)
        container = Container(settings=settings, store=store, provider=default,
                              providers=registry, clock=clock, catalog=catalog, orders=orders,
                              checkout=checkout, refunds=refunds, webhooks=webhooks,
                              truth=truth, verifier=verifier, http=http, reconciler=reconciler,
                              outbox=outbox, aps=aps, aps_webhooks=aps_webhooks,
                              paypal=offered_paypal, metrics=metrics or NoMetrics())
        undo.pop_all()
    log.info("paywire wired: providers %s (PayPal %s, APS %s), store %s, %d products, "
             "webhooks verified %s", ",".join(settings.providers), settings.paypal_env,
             settings.aps_env, settings.database_url_redacted, len(catalog.products),
             settings.webhook_verification)
    return container
