"""Webhook verification as the settings describe it (part of the composition root).

`webhook_verifier(settings, ...)` picks local verification (PayPal's certificate checked here;
the default) or postback (PayPal asked), under the trust model the settings name
(`Settings.cert_trust`, docs/webhook-trust.md): `fetched` (the certificate as fetched over
verified TLS from PayPal's allowlisted hosts; the default for sandbox and live), or `bundle`
chained to a CA bundle file or to the emulator's CA (fetched from the emulator,
`EmulatorCaVerifier`). Without a webhook id every delivery is refused for good (`NoWebhookId`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

import httpx

from paywire.domain.errors import ConfigError, ProviderError, SignatureError
from paywire.ports import Clock, VerifiedDelivery, WebhookVerifier
from paywire.providers.paypal.client import PayPalClient
from paywire.providers.paypal.webhook_verifier import LocalVerifier, PostbackVerifier
from paywire.settings import Settings

log = logging.getLogger("paywire")


class NoWebhookId:
    """The verifier while PAYWIRE_PAYPAL_WEBHOOK_ID is unset (emulator mode only): every
    delivery is refused for good, and the rejection log says what to set."""

    async def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedDelivery:
        """Refuse: nothing can be verified without our webhook id."""
        raise SignatureError("paywire has no webhook id to verify against", check="webhook_id",
                             likely_cause="PAYWIRE_PAYPAL_WEBHOOK_ID is not set: set it to the "
                                          "id of this URL's webhook subscription", status=403)


class EmulatorCaVerifier:
    """Local verification that trusts the emulator's CA, fetched from the emulator: at
    start-up (`prime`), or at the first delivery if the emulator was not up yet (until then a
    delivery is answered 503 and PayPal's retry comes back)."""

    def __init__(self, ca_url: str, http: httpx.AsyncClient,
                 make: Callable[[list[bytes]], WebhookVerifier]) -> None:
        self.ca_url = ca_url
        self.http = http
        self.make = make
        self._inner: WebhookVerifier | None = None
        self._lock = asyncio.Lock()

    async def prime(self) -> None:
        """Fetch the CA unless already held; ProviderError(transient) if the emulator is down."""
        async with self._lock:
            if self._inner is not None:
                return
            try:
                response = await self.http.get(self.ca_url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise ProviderError(f"cannot fetch the emulator's webhook CA from {self.ca_url}: "
                                    f"{type(exc).__name__}", provider="paypal",
                                    kind="transient") from exc
            try:
                self._inner = self.make([response.content])
            except ValueError as exc:  # not PEM: no CA to trust
                raise ConfigError(f"the emulator's webhook CA at {self.ca_url} is not a PEM "
                                  "certificate (set PAYWIRE_WEBHOOK_CA_BUNDLE)") from exc

    async def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedDelivery:
        """Verify against the emulator's CA (fetched now if need be)."""
        await self.prime()
        assert self._inner is not None  # noqa: S101 - set by prime() or it raised
        return await self._inner.verify(headers, body)


def webhook_verifier(settings: Settings, client: PayPalClient, clock: Clock,
                     http: httpx.AsyncClient) -> WebhookVerifier:
    """Local (default) or postback verification, as `settings` say.

    Postback keeps a local verifier beside it, never to accept anything, only to explain a
    FAILURE (another environment's webhook id, the simulator, a re-serialised body).
    """
    webhook_id = settings.paypal.webhook_id
    if webhook_id is None:
        log.warning("PAYWIRE_PAYPAL_WEBHOOK_ID is not set: every webhook delivery is refused")
        return NoWebhookId()
    max_age = timedelta(seconds=settings.webhook_max_age_seconds)
    https_hosts, http_hosts = settings.cert_hosts

    def local(ca_pems: list[bytes] | None) -> LocalVerifier:
        return LocalVerifier(
            [webhook_id, *settings.paypal.other_webhook_ids], http=http,
            allowed_hosts=https_hosts, allow_http_hosts=http_hosts, ca_pems=ca_pems,
            trust="bundle" if ca_pems is not None else "fetched", clock=clock.now, max_age=max_age,
            fetch_timeout=settings.webhook_cert_timeout_seconds,
            max_cert_bytes=settings.webhook_cert_max_bytes,
            cache_ttl=timedelta(seconds=settings.webhook_cert_cache_seconds))

    def verifier(ca_pems: list[bytes] | None) -> WebhookVerifier:
        if settings.webhook_verification == "postback":
            return PostbackVerifier(client, webhook_id, clock=clock.now, max_age=max_age,
                                    diagnoser=local(ca_pems))
        return local(ca_pems)

    if settings.cert_trust == "fetched":
        return verifier(None)  # trusted as fetched over verified TLS (http is the caller's)
    if settings.webhook_ca_bundle is not None:
        try:
            bundle = settings.webhook_ca_bundle.read_bytes()
        except OSError as exc:
            raise ConfigError(f"PAYWIRE_WEBHOOK_CA_BUNDLE: cannot read "
                              f"{settings.webhook_ca_bundle} ({exc.strerror or exc})") from exc
        return verifier([bundle])
    ca_url = settings.paypal.emulator_ca_url
    if ca_url is None:  # Settings refuse bundle trust without a bundle here
        raise ConfigError("PAYWIRE_WEBHOOK_CERT_TRUST=bundle needs PAYWIRE_WEBHOOK_CA_BUNDLE")
    return EmulatorCaVerifier(ca_url, http, verifier)
