"""Settings in, one adapter out: the store, the provider clients, the shop's delivery targets,
the outbox worker and the reconciler, each as the settings describe it.

The store is chosen by URL: `dynamodb://<table>` is the DynamoDB store (imported only then: it
needs `paywire[aws]`), anything else SQL (SQLAlchemy and Alembic are likewise imported only when
used: a Lambda cold start on DynamoDB skips them). PostgreSQL is never migrated here: run
`paywire migrate` (a deploy step, so replicas never race on DDL).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from paywire.delivery.http_callback import HttpCallbackTarget
from paywire.delivery.python_callable import CallableTarget
from paywire.domain.errors import ConfigError
from paywire.domain.order import OrderStatus
from paywire.ports import Clock, DeliveryTarget, Metrics, Store
from paywire.providers.aps.client import ApsClient
from paywire.providers.aps.events import ApsWebhookVerifier
from paywire.providers.aps.forms import Merchant
from paywire.providers.aps.provider import ApsProvider
from paywire.providers.aps.signature import Signer
from paywire.providers.paypal.client import PayPalClient
from paywire.services.fulfilment import OutboxWorker
from paywire.services.metering import MeteredStore
from paywire.services.provider_truth import TruthApplier
from paywire.services.reconcile import CREATED_MARGIN, Reconciler
from paywire.services.registry import ProviderRegistry
from paywire.services.truth import TruthFetcher
from paywire.settings import Settings


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
    if settings.paypal.client_id is None or settings.paypal.client_secret is None:
        raise ConfigError("PAYWIRE_PAYPAL_CLIENT_ID and PAYWIRE_PAYPAL_CLIENT_SECRET must be set "
                          "(`paywire emulator` prints the credentials it accepts)")
    return PayPalClient(settings.paypal.url, settings.paypal.client_id,
                        settings.paypal.client_secret,
                        timeout=settings.paypal.timeout_seconds,
                        max_attempts=settings.paypal.max_retries + 1,
                        backoff_base=settings.paypal.retry_backoff_seconds)


def aps_parts(settings: Settings, clock: Clock) -> tuple[ApsProvider, ApsWebhookVerifier]:
    """The APS provider and feedback verifier for `settings` (which checked they are set)."""
    s = settings
    if s.aps.access_code is None or s.aps.request_phrase is None or (
            s.aps.response_phrase is None or s.aps.merchant_identifier is None
            or s.aps.return_url is None):
        raise ConfigError("APS is not configured: set PAYWIRE_APS_ACCESS_CODE, "
                          "PAYWIRE_APS_MERCHANT_IDENTIFIER, both PAYWIRE_APS_*_PHRASE and "
                          "PAYWIRE_APS_RETURN_URL")
    merchant = Merchant(access_code=s.aps.access_code.get_secret_value(),
                        merchant_identifier=s.aps.merchant_identifier,
                        signer=Signer(s.aps.sha_type, s.aps.request_phrase,
                                      s.aps.response_phrase),
                        language=s.aps.language)
    api_url, page_url = s.aps.urls(s.paypal)
    client = ApsClient(api_url, merchant, page_url=page_url, timeout=s.aps.timeout_seconds)
    return (ApsProvider(client, return_url=s.aps.return_url, flow=s.aps.checkout),
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


def stuck_after(settings: Settings) -> dict[OrderStatus, timedelta]:
    """Each status's maximum age `settings` give the reconciler (CREATED unset: the approval
    window plus the reconciler's margin): what it flags as stuck, and the health gauges
    count."""
    s, st = settings, OrderStatus
    created = s.reconcile_created_max_age_seconds
    return {st.CREATED: (timedelta(seconds=created) if created is not None else
                         timedelta(seconds=s.paypal.approval_window_seconds) + CREATED_MARGIN),
            st.APPROVED: timedelta(seconds=s.reconcile_approved_max_age_seconds),
            st.PENDING: timedelta(seconds=s.reconcile_pending_max_age_seconds),
            st.AUTHORIZED: timedelta(seconds=s.reconcile_authorized_max_age_seconds)}


def reconciler_for(settings: Settings, store: Store, providers: ProviderRegistry,
                   applier: TruthApplier, truth: TruthFetcher | None,
                   clock: Clock) -> Reconciler:
    """The reconciler `settings` describe (thresholds, maximum ages, backoff, batch)."""
    s, st = settings, OrderStatus
    after = {st.CREATED: s.reconcile_created_after_seconds,
             st.APPROVED: s.reconcile_approved_after_seconds,
             st.PENDING: s.reconcile_pending_after_seconds,
             st.AUTHORIZED: s.reconcile_authorized_after_seconds}
    seconds = {"base_delay": s.reconcile_backoff_base_seconds,
               "max_delay": s.reconcile_backoff_max_seconds,
               "refund_pending_threshold": s.reconcile_refund_pending_after_seconds}
    return Reconciler(
        store, providers, applier, truth, clock, batch=s.reconcile_batch,
        approval_window=timedelta(seconds=s.paypal.approval_window_seconds),
        thresholds={k: timedelta(seconds=v) for k, v in after.items()},
        max_age=stuck_after(settings),
        **{k: timedelta(seconds=v) for k, v in seconds.items()})
