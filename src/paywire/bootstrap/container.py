"""The composition root's heart: settings in, a wired `Container` out.

Nothing else instantiates adapters. `build(settings)` loads the catalog (refusing prices the
default provider cannot take), migrates an embedded SQLite database, and wires the store, the
offered providers in one `ProviderRegistry`, a UTC clock, the order services (`OrderQueries`,
`Checkout`, `Refunds`, sharing one `TruthApplier`), one webhook ingest per provider, the truth
fetcher, the reconciler and the outbox worker. Each provider, its webhook verifier and event
parser come from its kit (`paywire.bootstrap.kits`), one per name PAYWIRE_PROVIDERS lists, so
adding a provider touches nothing here. No network call is made here (`paywire.bootstrap.app`
runs the background work).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from paywire.bootstrap.adapters import (
    fulfilment_targets,
    migrate_embedded,
    outbox_worker,
    reconciler_for,
    store_for,
    worker_id,
)
from paywire.bootstrap.catalog import load_catalog
from paywire.bootstrap.kits import KitContext, ProviderKit, ProviderParts, kit_named
from paywire.domain.catalog import Catalog
from paywire.domain.errors import ConfigError
from paywire.ports import (
    Clock,
    DeliveryTarget,
    Metrics,
    NoMetrics,
    PaymentProvider,
    Store,
    SystemClock,
    WebhookVerifier,
)
from paywire.providers.http import lean_client
from paywire.services.checkout import Checkout
from paywire.services.dashboard import Dashboard
from paywire.services.fulfilment import OutboxWorker
from paywire.services.health import HealthGauges
from paywire.services.metering import MeteredProvider, MeteredStore, count_reconcile
from paywire.services.operations import OperationRunner
from paywire.services.orders import OrderQueries
from paywire.services.provider_truth import TruthApplier
from paywire.services.reconcile import Reconciler
from paywire.services.refunds import Refunds
from paywire.services.registry import ProviderRegistry
from paywire.services.truth import TruthFetcher
from paywire.services.webhooks import InlineClaim, WebhookIngest
from paywire.settings import Settings

log = logging.getLogger("paywire")

ProviderWrapper = Callable[[PaymentProvider], PaymentProvider]

# What the inline lease adds to the inline timeout: the delivery's own transaction (the lease
# runs from its start), the answer's bytes written and the background task scheduled, behind
# other requests under load.
INLINE_START_SECONDS = 2.0


def inline_claim(settings: Settings, owner: str) -> InlineClaim | None:
    """The lease a delivery's confirmation is queued under when this process runs it at once
    (None when it does not: PAYWIRE_WEBHOOK_CONFIRM_INLINE off).

    The inline attempt is cancelled after PAYWIRE_WEBHOOK_CONFIRM_INLINE_TIMEOUT_SECONDS (or the
    request's deadline, if sooner), so a lease past that, plus the time the attempt takes to
    start, protects nothing and only delays the queue when this process dies after its commit:
    the lease is that bound, and never longer than the truth fetcher's own claims (its lease,
    which the inline attempt claimed under before; an operator's short lease stays short).
    The lease runs from the start of the delivery's transaction, so the 2 s also cover that
    transaction and the answer's sending. Overrunning it is safe: another worker may then claim
    the task and GET PayPal's object a second time; both answers are PayPal's and are applied
    through the state machine (the task itself is closed only by its current owner).
    """
    if not settings.webhook_confirm_inline:
        return None
    seconds = min(settings.truth_fetch_lease_seconds,
                  settings.webhook_confirm_inline_timeout_seconds + INLINE_START_SECONDS)
    return InlineClaim(owner, timedelta(seconds=seconds))


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
    dashboard: Dashboard  # the operator's dashboard at /admin (`paywire.admin`)
    outbox: OutboxWorker | None = None  # None when no fulfilment target is configured
    # Each offered provider (None when not offered); APS's feedback ingest.
    aps: PaymentProvider | None = None
    aps_webhooks: WebhookIngest | None = None
    paypal: PaymentProvider | None = None
    # Every offered provider's webhook ingest by name (`POST /webhooks/{name}`); `webhooks` and
    # `aps_webhooks` are two of them, kept for their readers.
    webhook_ingests: dict[str, WebhookIngest] = field(default_factory=dict)
    # Where operational counters go (`services.metering`); counts nothing unless a deployment
    # gives a sink (the Lambda functions: CloudWatch EMF).
    metrics: Metrics = field(default_factory=NoMetrics)
    # The health read model (`services.health`), one per process: the dashboard's strip.
    health: HealthGauges | None = None

    async def aclose(self) -> None:
        """Release the HTTP clients and the store's connections."""
        try:
            if self.outbox is not None:
                await self.outbox.aclose()
            await self.http.aclose()
            for provider in self.providers:
                await provider.aclose()
        finally:
            await self.store.close()


async def build(settings: Settings, *, wrap_provider: ProviderWrapper | None = None,
                clock: Clock | None = None, metrics: Metrics | None = None,
                targets: Sequence[DeliveryTarget] = ()) -> Container:
    """Wire the adapters `settings` name into the services.

    `wrap_provider` lets a test put a fake around the real PayPal client (the provider seam);
    `clock` replaces the wall clock. With `metrics`, the store and the providers are counted
    (`services.metering`) and the container carries the sink. `targets` are delivery targets
    beside the fulfilment targets `settings` name (an embedding shop's own function:
    `paywire.bootstrap.embed`). No network call is made here (see `background`).
    """
    clock = clock or SystemClock()

    def wrap(provider: PaymentProvider) -> PaymentProvider:
        wrapped = provider if wrap_provider is None else wrap_provider(provider)
        return wrapped if metrics is None else MeteredProvider(wrapped, metrics)

    async with contextlib.AsyncExitStack() as undo:  # on a refusal, close what was opened
        # trust_env=False: a proxy from the environment must not sit between us and the cert
        # host.
        http = lean_client(timeout=settings.webhook_cert_timeout_seconds,
                           follow_redirects=False, trust_env=False)
        undo.push_async_callback(http.aclose)
        context = KitContext(settings, clock, http)
        # Each provider the settings name, in their order: the first is the default for new
        # orders, and the catalog's prices must suit it (each order's amount is checked by its
        # own provider too).
        kits: dict[str, ProviderKit] = {}
        parts: dict[str, ProviderParts] = {}
        offered: dict[str, PaymentProvider] = {}
        for name in settings.providers:
            kits[name] = kit_named(name)
            parts[name] = kits[name].build(context)
            undo.push_async_callback(parts[name].provider.aclose)
            if parts[name].provider.name != name:
                raise ConfigError(f"the provider kit {name!r} built a provider named "
                                  f"{parts[name].provider.name!r}: a kit's provider carries its "
                                  "name (orders record it)")
            offered[name] = wrap(parts[name].provider)
        default, *others = offered.values()
        catalog = load_catalog(settings.catalog_file, default.check_amount)
        if settings.is_sqlite:
            await asyncio.to_thread(migrate_embedded, settings)
        store = store_for(settings)
        undo.push_async_callback(store.close)
        if metrics is not None:
            store = MeteredStore(store, metrics)
        runner = OperationRunner(store, clock,
                                 lease=timedelta(seconds=settings.operation_lease_seconds))
        registry = ProviderRegistry(default, *others)
        orders = OrderQueries(store, registry)
        applier = TruthApplier(store, clock)
        checkout = Checkout(store, registry, clock, orders=orders, truth=applier, runner=runner,
                            return_url=settings.return_url, cancel_url=settings.cancel_url,
                            approval_window=timedelta(
                                seconds=settings.paypal.approval_window_seconds))
        refunds = Refunds(store, registry, clock, orders=orders, runner=runner)
        truth = TruthFetcher(
            store, registry, applier, clock, owner=worker_id(),
            lease=timedelta(seconds=settings.truth_fetch_lease_seconds),
            base_delay=timedelta(seconds=settings.truth_fetch_base_delay_seconds),
            max_delay=timedelta(seconds=settings.truth_fetch_max_delay_seconds),
            max_attempts=settings.truth_fetch_max_attempts, batch=settings.truth_fetch_batch)
        inline = inline_claim(settings, truth.owner)
        ingests = {name: WebhookIngest(store, p.verifier, p.parser, clock, provider=name,
                                       max_rejections=settings.max_rejections,
                                       confirm=kits[name].confirm_claims, metrics=metrics,
                                       inline=inline)
                   for name, p in parts.items()}
        reconciler = reconciler_for(settings, store, registry, applier, truth, clock)
        if metrics is not None:
            reconciler.on_pass = functools.partial(count_reconcile, metrics)
        outbox = outbox_worker(settings, store, clock,
                               [*fulfilment_targets(settings), *targets])
        paypal = parts.get("paypal")
        container = Container(settings=settings, store=store, provider=default,
                              providers=registry, clock=clock, catalog=catalog, orders=orders,
                              checkout=checkout, refunds=refunds, webhooks=ingests.get("paypal"),
                              truth=truth, verifier=None if paypal is None else paypal.verifier,
                              http=http, reconciler=reconciler,
                              dashboard=Dashboard(store, registry, clock, refunds, reconciler),
                              outbox=outbox,
                              aps=offered.get("aps"), aps_webhooks=ingests.get("aps"),
                              paypal=offered.get("paypal"), webhook_ingests=ingests,
                              metrics=metrics or NoMetrics(),
                              health=HealthGauges(
                                  store, clock, stuck_after=reconciler.max_age,
                                  max_staleness=settings.metrics_gauge_cache_seconds))
        undo.pop_all()
    log.info("paywire wired: providers %s, store %s, %d products, webhooks verified %s",
             ", ".join(f"{name} ({kit.environment(settings)})" for name, kit in kits.items()),
             settings.database_url_redacted, len(catalog.products),
             settings.webhook_verification)
    return container
