"""The composition root: settings in, a wired container (and the HTTP app) out.

Nothing else instantiates adapters. `build(settings)` loads the catalog (refusing prices PayPal
cannot take), migrates an embedded SQLite database, and wires `SqlStore`, `PayPalClient`, a UTC
clock, `CheckoutService`, webhook ingest (local or postback verification, PayPal's event
parser; `bootstrap_webhooks` chooses the verifier), the truth fetcher and the reconciler.
`create_app(settings)` is the FastAPI app whose
lifespan builds the container, runs the truth fetcher and the reconciler as background tasks
(each behind its setting; none in a Lambda function, where they run as functions of their own),
and closes both at shutdown. The store is chosen by URL: `dynamodb://<table>` is the DynamoDB
store (imported only then: it needs `paywire[aws]`), anything else SQL (SQLAlchemy and Alembic
are likewise imported only when used: a Lambda cold start on DynamoDB skips them). PostgreSQL
is never migrated here: run `paywire migrate` (a deploy step, so replicas never race on DDL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from paywire.api.app import Surface, create_api
from paywire.bootstrap_webhooks import EmulatorCaVerifier, webhook_verifier
from paywire.bootstrap_webhooks import NoWebhookId as NoWebhookId  # re-exported
from paywire.catalog_file import load_catalog
from paywire.delivery.http_callback import HttpCallbackTarget
from paywire.delivery.python_callable import CallableTarget
from paywire.domain.catalog import Catalog
from paywire.domain.errors import ConfigError, ProviderError
from paywire.domain.order import OrderStatus
from paywire.ports import (
    Clock,
    DeliveryTarget,
    Metrics,
    NoMetrics,
    PaymentProvider,
    Store,
    WebhookVerifier,
)
from paywire.providers.aps.client import ApsClient
from paywire.providers.aps.events import ApsEventParser, ApsWebhookVerifier
from paywire.providers.aps.forms import Merchant
from paywire.providers.aps.provider import ApsProvider
from paywire.providers.aps.signature import Signer
from paywire.providers.paypal.client import PayPalClient
from paywire.providers.paypal.events import PayPalEventParser
from paywire.services.checkout import CheckoutService
from paywire.services.fulfilment import OutboxWorker
from paywire.services.metering import MeteredProvider, MeteredStore
from paywire.services.operations import OperationRunner
from paywire.services.reconcile import Reconciler
from paywire.services.truth import TruthFetcher
from paywire.services.webhooks import WebhookIngest
from paywire.settings import Settings

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
    provider: PaymentProvider  # the default provider (the first PAYWIRE_PROVIDERS names)
    clock: Clock
    catalog: Catalog
    checkout: CheckoutService
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


def sqlite_path(settings: Settings) -> Path | None:
    """The embedded SQLite file of `settings.database_url` (None for other databases)."""
    if not settings.is_sqlite:
        return None
    from paywire.store.sql import sync_url

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
    from paywire.store import migrate

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


def aps_parts(settings: Settings, clock: Clock) -> tuple[ApsProvider, ApsWebhookVerifier]:
    """The APS provider and feedback verifier for `settings` (which checked they are set)."""
    s = settings
    if s.aps_access_code is None or s.aps_request_phrase is None or (
            s.aps_response_phrase is None or s.aps_merchant_identifier is None
            or s.aps_return_url is None):
        raise ConfigError("APS is not configured: set PAYWIRE_APS_ACCESS_CODE, "
                          "PAYWIRE_APS_MERCHANT_IDENTIFIER, both PAYWIRE_APS_*_PHRASE and "
                          "PAYWIRE_APS_RETURN_URL")
    merchant = Merchant(access_code=s.aps_access_code.get_secret_value(),
                        merchant_identifier=s.aps_merchant_identifier,
                        signer=Signer(s.aps_sha_type, s.aps_request_phrase,
                                      s.aps_response_phrase),
                        language=s.aps_language)
    api_url, page_url = s.aps_urls
    client = ApsClient(api_url, merchant, page_url=page_url, timeout=s.aps_timeout_seconds)
    return (ApsProvider(client, return_url=s.aps_return_url, flow=s.aps_checkout),
            ApsWebhookVerifier(client.verifier, clock))


def store_for(settings: Settings) -> Store:
    """The store `settings.database_url` names: DynamoDB for `dynamodb://<table>` (region and
    endpoint from the standard AWS environment), SQL otherwise."""
    if settings.is_dynamodb:
        try:
            from paywire.store.dynamo import DynamoStore
        except ImportError as exc:
            raise ConfigError("PAYWIRE_DATABASE_URL names DynamoDB, which needs the AWS extra: "
                              "pip install 'paywire[aws]'") from exc
        store: Store = DynamoStore.from_url(settings.database_url)
        return store
    from paywire.store.sql import SqlStore

    return SqlStore(settings.database_url)


def worker_id() -> str:
    """This process's lease owner name (host, pid and a random tag)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


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
        checkout = CheckoutService(store, default, clock, return_url=settings.return_url,
                                   cancel_url=settings.cancel_url, runner=runner,
                                   approval_window=timedelta(
                                       seconds=settings.paypal_approval_window_seconds),
                                   others=tuple(providers[1:]))
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
            store, default, checkout, clock, owner=worker_id(),
            lease=timedelta(seconds=settings.truth_fetch_lease_seconds),
            base_delay=timedelta(seconds=settings.truth_fetch_base_delay_seconds),
            max_delay=timedelta(seconds=settings.truth_fetch_max_delay_seconds),
            max_attempts=settings.truth_fetch_max_attempts, batch=settings.truth_fetch_batch)
        reconciler = reconciler_for(settings, store, default, checkout, truth, clock)
        outbox = outbox_worker(settings, store, clock)
        container = Container(settings=settings, store=store, provider=default, clock=clock,
                              catalog=catalog, checkout=checkout, webhooks=webhooks,
                              truth=truth, verifier=verifier, http=http, reconciler=reconciler,
                              outbox=outbox, aps=aps, aps_webhooks=aps_webhooks,
                              paypal=offered_paypal, metrics=metrics or NoMetrics())
        undo.pop_all()
    log.info("paywire wired: providers %s (PayPal %s, APS %s), store %s, %d products, "
             "webhooks verified %s", ",".join(settings.providers), settings.paypal_env,
             settings.aps_env, settings.database_url_redacted, len(catalog.products),
             settings.webhook_verification)
    return container


@contextlib.asynccontextmanager
async def open_store(settings: Settings, metrics: Metrics | None = None) -> AsyncIterator[Store]:
    """The store `settings` name, alone (counted into `metrics`, if given), closed on exit: for
    a process that only moves the outbox (the AWS consumer, drainer and stream function), which
    needs no provider, catalog or webhook verifier and may have no credentials for them."""
    if settings.is_sqlite:
        await asyncio.to_thread(migrate_embedded, settings)
    store = store_for(settings)
    try:
        yield store if metrics is None else MeteredStore(store, metrics)
    finally:
        await store.close()


def fulfilment_targets(settings: Settings) -> list[DeliveryTarget]:
    """The shop's own delivery targets `settings` name (signed HTTP callback, Python callable),
    possibly none."""
    targets: list[DeliveryTarget] = []
    if settings.fulfilment_url:
        if settings.fulfilment_secret is None:
            raise ConfigError("PAYWIRE_FULFILMENT_SECRET must be set with PAYWIRE_FULFILMENT_URL "
                              "(a Standard Webhooks secret, whsec_...)")
        targets.append(HttpCallbackTarget(settings.fulfilment_url, settings.fulfilment_secret,
                                          timeout=settings.fulfilment_timeout_seconds))
    if settings.fulfilment_callable:
        targets.append(CallableTarget(settings.fulfilment_callable))
    return targets


def outbox_worker(settings: Settings, store: Store, clock: Clock,
                  targets: list[DeliveryTarget] | None = None) -> OutboxWorker | None:
    """The outbox worker for `targets` (default: the fulfilment targets `settings` name); None
    if there are none. Lease, batch, backoff and maximum age come from `settings`."""
    if targets is None:
        targets = fulfilment_targets(settings)
    if not targets:
        return None
    sec = settings
    return OutboxWorker(
        store, targets, clock, owner=worker_id(),
        lease=timedelta(seconds=max(sec.outbox_lease_seconds,
                                    2 * sec.fulfilment_timeout_seconds)),
        batch=sec.outbox_batch, concurrency=sec.outbox_concurrency,
        base_delay=timedelta(seconds=sec.outbox_base_delay_seconds),
        max_delay=timedelta(seconds=sec.outbox_max_delay_seconds),
        max_age=timedelta(seconds=sec.outbox_max_age_seconds))


def reconciler_for(settings: Settings, store: Store, provider: PaymentProvider,
                   checkout: CheckoutService, truth: TruthFetcher | None,
                   clock: Clock) -> Reconciler:
    """The reconciler `settings` describe (thresholds, maximum ages, backoff, batch)."""
    s, st = settings, OrderStatus
    after = {st.CREATED: s.reconcile_created_after_seconds,
             st.APPROVED: s.reconcile_approved_after_seconds,
             st.PENDING: s.reconcile_pending_after_seconds,
             st.AUTHORIZED: s.reconcile_authorized_after_seconds}
    ages = {st.CREATED: s.reconcile_created_max_age_seconds,  # unset: approval window + 1 h
            st.APPROVED: s.reconcile_approved_max_age_seconds,
            st.PENDING: s.reconcile_pending_max_age_seconds,
            st.AUTHORIZED: s.reconcile_authorized_max_age_seconds}
    seconds = {"base_delay": s.reconcile_backoff_base_seconds,
               "max_delay": s.reconcile_backoff_max_seconds,
               "refund_pending_threshold": s.reconcile_refund_pending_after_seconds}
    return Reconciler(
        store, provider, checkout, truth, clock, batch=s.reconcile_batch,
        thresholds={k: timedelta(seconds=v) for k, v in after.items()},
        max_age={k: timedelta(seconds=v) for k, v in ages.items() if v is not None},
        **{k: timedelta(seconds=v) for k, v in seconds.items()})


async def run_truth_fetcher(truth: TruthFetcher | Reconciler | OutboxWorker,
                            stop: asyncio.Event, interval: float) -> None:
    """The truth fetcher (or the reconciler) until `stop`, restarted (after `interval`) if it
    ever crashes."""
    name = ("reconciler" if isinstance(truth, Reconciler) else
            "outbox worker" if isinstance(truth, OutboxWorker) else "truth fetcher")
    while not stop.is_set():
        try:
            await truth.run(stop, interval)
        except Exception:
            log.exception("the %s crashed; restarting in %.1f s", name, interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


@asynccontextmanager
async def background(container: Container) -> AsyncIterator[None]:
    """What a serving process runs beside its requests: the emulator CA fetched up front (if
    that is how webhooks are verified) and the truth fetcher, stopped cleanly on exit."""
    settings = container.settings
    if isinstance(container.verifier, EmulatorCaVerifier):
        try:
            await container.verifier.prime()
        except ProviderError as exc:  # not fatal: fetched again at the first delivery
            log.warning("%s; webhooks answer 503 until it can be fetched", exc.message)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    if settings.truth_fetch_enabled:
        tasks.append(asyncio.create_task(
            run_truth_fetcher(container.truth, stop, settings.truth_fetch_interval_seconds),
            name="paywire truth fetcher"))
    if settings.outbox_worker_enabled and container.outbox is not None:
        tasks.append(asyncio.create_task(
            run_truth_fetcher(container.outbox, stop, settings.outbox_interval_seconds),
            name="paywire outbox worker"))
    elif settings.outbox_worker_enabled:
        log.warning("the outbox worker is on but no fulfilment target is configured "
                    "(PAYWIRE_FULFILMENT_URL / PAYWIRE_FULFILMENT_CALLABLE): nothing delivered")
    if settings.reconcile_enabled:
        tasks.append(asyncio.create_task(
            # The truth queue keeps its own loop and switch here (`reconcile` one-shots run it).
            run_truth_fetcher(container.reconciler.without_truth_queue(), stop,
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
               metrics: Metrics | None = None, surface: Surface = "all") -> FastAPI:
    """The paywire HTTP API for `settings`; its lifespan builds the container (counted into
    `metrics`, if given), runs the background work (`background`, unless `background_tasks` is
    False: a Lambda function, frozen between requests, runs none) and closes both. `surface`
    chooses the routes (`create_api`)."""

    @asynccontextmanager
    async def open_container() -> AsyncIterator[Container]:
        container = await build(settings, wrap_provider=wrap_provider, clock=clock,
                                metrics=metrics)
        try:
            if background_tasks:
                async with background(container):
                    yield container
            else:
                yield container
        finally:
            await container.aclose()

    return create_api(settings, open_container, surface=surface)


def app_from_env() -> FastAPI:
    """`paywire serve`'s app factory (uvicorn workers import it): settings from the environment,
    or the stage's (Secrets Manager and SSM) when `PAYWIRE_STAGE` is set."""
    from paywire.aws.secrets import load_settings  # imports boto3 only for a stage

    return create_app(load_settings())
