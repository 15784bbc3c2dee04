"""`ports.WebhookVerifier` for PayPal: local verification (default) and postback.

Local: headers, algorithm, transmission age and the cert URL allowlist are checked before any
I/O; only then is the certificate fetched (short timeout, size cap, no redirects), parsed and
cached by URL. What makes it trusted is the trust model (docs/webhook-trust.md): `fetched` (the
default for PayPal) trusts the certificate because it came over verified TLS from an allowlisted
PayPal host and path, and names PayPal's message-verification service, in its dates, with
digital-signature key usage; `bundle` chains it to configured CA certificates instead (the
emulator's CA in dev, or PAYWIRE_WEBHOOK_CA_BUNDLE). Then the signature is checked for our webhook
id over the raw bytes, with no PayPal API call. Postback: the same local header
checks, then `verify-webhook-signature` with the received bytes spliced in unchanged.
Refused for good -> `SignatureError` (4xx, explained); could not check -> transient
`ProviderError` (5xx, PayPal retries).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import ssl
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

import httpx
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from paywire.domain.errors import ConfigError, ProviderError, SignatureError
from paywire.ports import SystemClock, VerifiedDelivery
from paywire.providers.http import lean_client
from paywire.providers.paypal import webhook_signature as sig

log = logging.getLogger("paywire.providers.paypal.webhooks")

MAX_CACHED_CERTS = 32
CertTrust = Literal["fetched", "bundle"]
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


# `clock` below is a `Clock.now`: the verifiers read only the time, so they take just that.
utc_now = SystemClock().now


def load_ca_bundle(pems: Sequence[bytes]) -> list[x509.Certificate]:
    """The trust anchors in the given PEM blobs.

    Certificates this cryptography cannot (or will soon not) load are skipped one by one, so a
    single odd root in a system bundle does not take the whole bundle down.
    """
    certs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for block in (m.group(0) for pem in pems for m in _PEM_BLOCK.finditer(pem)):
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                log.warning("skipping a CA certificate that cannot be parsed")
    if not certs:
        raise ConfigError("webhook verification: the CA bundle holds no certificate")
    return certs


@dataclass(slots=True)
class _Cached:
    certs: list[x509.Certificate]  # leaf first, then whatever intermediates were served
    fetched_at: datetime
    trusted: tuple[datetime, datetime] | None = None  # the chain's valid window, once checked


def _transient(what: str, url: str, cause: str) -> ProviderError:
    return ProviderError(f"PayPal {what} failed: {cause}", provider="paypal", kind="transient",
                         retryable=True, details={"cert_url": url})


class LocalVerifier:
    """Verifies deliveries locally against PayPal's signing certificate (no API call).

    `trust`: "fetched" (the default without `ca_pems`) trusts a certificate fetched over
    verified https from an allowlisted host that names PayPal's message-verification service;
    plain-http cert hosts are refused with it, since nothing authenticates their bytes. The
    `http` client must verify TLS (httpx's default; `verify=False` would void this model).
    "bundle" (the default with `ca_pems`) chains the certificate to the CA certificates in
    `ca_pems` instead, whatever the channel it came over.
    """

    def __init__(self, webhook_ids: Sequence[str], *, http: httpx.AsyncClient | None = None,
                 allowed_hosts: Collection[str] = sig.PAYPAL_CERT_HOSTS,
                 allowed_path_prefix: str = sig.CERT_PATH_PREFIX,
                 allow_http_hosts: Collection[str] = (), ca_pems: Sequence[bytes] | None = None,
                 trust: CertTrust | None = None,
                 clock: Callable[[], datetime] = utc_now,
                 max_age: timedelta = sig.DEFAULT_MAX_AGE,
                 max_future: timedelta = sig.DEFAULT_MAX_FUTURE, fetch_timeout: float = 5.0,
                 max_cert_bytes: int = 64 * 1024, cache_ttl: timedelta = timedelta(hours=24),
                 leaf_names: Collection[str] | None = sig.PAYPAL_LEAF_NAMES) -> None:
        if not webhook_ids or not all(webhook_ids):
            raise ConfigError("webhook verification: a webhook id is required")
        try:
            sig.host_allowlist([*allowed_hosts, *allow_http_hosts], "443")
        except ValueError as exc:
            raise ConfigError(f"webhook verification: cert host allowlist: {exc}") from None
        if not allowed_path_prefix.startswith("/") or not allowed_path_prefix.endswith("/"):
            raise ConfigError("webhook verification: the cert path prefix is /.../")
        self.trust: CertTrust = trust or ("bundle" if ca_pems is not None else "fetched")
        if self.trust == "bundle" and ca_pems is None:
            raise ConfigError("webhook verification: trust 'bundle' needs CA certificates")
        if self.trust == "fetched":
            if ca_pems is not None:
                raise ConfigError("webhook verification: trust 'fetched' takes no CA bundle "
                                  "(it would be ignored); use trust 'bundle'")
            if allow_http_hosts:
                raise ConfigError("webhook verification: a plain-http cert host can never be "
                                  "trusted by fetch alone (nothing authenticates its bytes); "
                                  "use trust 'bundle' with its CA")
            if leaf_names is None:
                raise ConfigError("webhook verification: trust 'fetched' needs the signing "
                                  "certificate's names")
        self.webhook_id, self.other_webhook_ids = webhook_ids[0], list(webhook_ids[1:])
        self._hosts, self._http_hosts = tuple(allowed_hosts), tuple(allow_http_hosts)
        self._prefix = allowed_path_prefix
        self._ca = load_ca_bundle(ca_pems) if ca_pems is not None else []
        self._clock, self._max_age, self._max_future = clock, max_age, max_future
        self._timeout, self._max_bytes, self._ttl = fetch_timeout, max_cert_bytes, cache_ttl
        self._names = leaf_names
        self._owns_http = http is None
        self._http = http if http is not None else lean_client(
            timeout=fetch_timeout, follow_redirects=False, trust_env=False)
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> LocalVerifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this verifier made it (an injected one is the caller's)."""
        if self._owns_http:
            await self._http.aclose()

    async def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedDelivery:
        """Verify one delivery over its raw bytes."""
        tx = sig.transmission_headers(headers)
        sig.check_auth_algo(tx.auth_algo)
        now = self._clock()
        when = sig.check_transmission_time(tx.transmission_time, now, self._max_age,
                                           self._max_future)
        leaf = await self.trusted_leaf(tx.cert_url, now)
        if not sig.verify_signature(leaf, tx.transmission_id, tx.transmission_time,
                                    self.webhook_id, body, tx.transmission_sig):
            cause = sig.explain(leaf, tx.transmission_id, tx.transmission_time,
                                tx.transmission_sig, body, webhook_id=self.webhook_id,
                                other_webhook_ids=self.other_webhook_ids)
            raise SignatureError("the transmission signature does not verify", check="signature",
                                 likely_cause=cause)
        return VerifiedDelivery(tx.transmission_id, when, self.webhook_id)

    async def diagnose(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why a delivery's signature fails for our webhook id (None if that cannot be told)."""
        try:
            tx = sig.transmission_headers(headers)
            leaf = await self.trusted_leaf(tx.cert_url, self._clock())
        except (SignatureError, ProviderError) as exc:
            return getattr(exc, "likely_cause", None)
        if sig.verify_signature(leaf, tx.transmission_id, tx.transmission_time, self.webhook_id,
                                body, tx.transmission_sig):
            return None
        return sig.explain(leaf, tx.transmission_id, tx.transmission_time, tx.transmission_sig,
                           body, webhook_id=self.webhook_id,
                           other_webhook_ids=self.other_webhook_ids)

    async def trusted_leaf(self, cert_url: str, now: datetime) -> x509.Certificate:
        """The signing certificate at an allowlisted URL, fetched or cached, checked under the
        trust model (`fetched`: https only, the leaf's own checks; `bundle`: its chain)."""
        url = sig.check_cert_url(cert_url, self._hosts, self._prefix, self._http_hosts)
        if self.trust == "fetched" and not url.startswith("https://"):
            # Unreachable while the constructor refuses http hosts; kept so that no cache
            # entry fetched over plain http (the key is the URL, scheme included) is trusted.
            raise SignatureError("the cert URL is not https", check="cert_url",
                                 likely_cause="a certificate fetched without verified TLS "
                                              "cannot be trusted", details={"cert_url": url})
        entry = await self._entry(url, now)
        window = entry.trusted
        if window is None or not window[0] <= now <= window[1]:
            if self.trust == "fetched":
                entry.trusted = sig.check_leaf(entry.certs[0], now, names=self._names,
                                               require_key_usage=True)
            else:
                entry.trusted = sig.check_chain(entry.certs[0], self._ca, now,
                                                intermediates=entry.certs[1:], names=self._names)
        return entry.certs[0]

    def _fresh(self, url: str, now: datetime) -> _Cached | None:
        entry = self._cache.get(url)
        if entry is not None and entry.fetched_at <= now < entry.fetched_at + self._ttl:
            return entry
        return None

    async def _entry(self, url: str, now: datetime) -> _Cached:
        """The cached certificates for `url`; concurrent misses share one fetch."""
        entry = self._fresh(url, now)
        if entry is not None:
            return entry
        lock = self._locks.setdefault(url, asyncio.Lock())
        try:
            async with lock:
                entry = self._fresh(url, now)
                if entry is None:
                    entry = _Cached(sig.parse_certificates(await self._fetch(url)), now)
                    self._cache.pop(url, None)
                    while len(self._cache) >= MAX_CACHED_CERTS:
                        del self._cache[next(iter(self._cache))]
                    self._cache[url] = entry
                return entry
        finally:
            if not lock.locked():
                self._locks.pop(url, None)

    async def _fetch(self, url: str) -> bytes:
        """GET the certificate: no redirects, a total deadline and a size cap."""
        log.info("fetching PayPal webhook certificate %s", url)
        try:
            async with asyncio.timeout(self._timeout), self._http.stream(
                    "GET", url, follow_redirects=False, timeout=self._timeout,
                    headers={"Accept": "application/x-pem-file, */*",
                             "Accept-Encoding": "identity"}) as resp:
                status = resp.status_code
                if status >= 500 or status == 429:
                    raise _transient("certificate fetch", url, f"HTTP {status}")
                if status != 200:
                    raise SignatureError(
                        f"the cert URL answered HTTP {status}", check="cert_url",
                        likely_cause="the cert URL names no PayPal certificate: forged "
                                     "(redirects are never followed)",
                        details={"cert_url": url})
                data = bytearray()
                async for chunk in resp.aiter_bytes():
                    data += chunk
                    if len(data) > self._max_bytes:
                        raise SignatureError(
                            f"the certificate is over {self._max_bytes} bytes", check="cert_url",
                            likely_cause="the cert URL does not serve a PayPal certificate",
                            details={"cert_url": url})
                return bytes(data)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise _transient("certificate fetch", url, fetch_failure(exc)) from exc


def fetch_failure(exc: BaseException) -> str:
    """What went wrong reaching a cert host, for logs and doctor: TLS verification apart."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"TLS verification failed ({seen.verify_message})"
        if isinstance(seen, ssl.SSLError):
            return f"TLS handshake failed ({seen.reason or type(seen).__name__})"
        if isinstance(seen, socket.gaierror):
            return "DNS lookup failed"
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


# --- postback ----------------------------------------------------------------------------------


class SignaturePostback(Protocol):
    """What postback needs of the PayPal client (`PayPalClient` has it)."""

    async def verify_webhook_signature(self, *, auth_algo: str, cert_url: str,
                                       transmission_id: str, transmission_sig: str,
                                       transmission_time: str, webhook_id: str,
                                       event_body: bytes) -> bool:
        """PayPal's verdict on one transmission."""
        ...


def postback_cause(webhook_id: str) -> str:
    """What a postback FAILURE usually means, when no local diagnosis is available."""
    return (f"PayPal answered FAILURE for webhook id {webhook_id}: the event was forged or "
            "altered (a proxy or framework rewrote the bytes), signed for another webhook id "
            "(a sandbox/live mix-up), or sent by PayPal's webhook simulator, whose mock events "
            "cannot be verified by postback")


class PostbackVerifier:
    """Verifies deliveries by asking PayPal (`verify-webhook-signature`) about the raw bytes."""

    def __init__(self, client: SignaturePostback, webhook_id: str, *,
                 clock: Callable[[], datetime] = utc_now,
                 max_age: timedelta = sig.DEFAULT_MAX_AGE,
                 max_future: timedelta = sig.DEFAULT_MAX_FUTURE,
                 diagnoser: LocalVerifier | None = None) -> None:
        if not webhook_id:
            raise ConfigError("webhook verification: a webhook id is required")
        self.webhook_id = webhook_id
        self._client, self._clock = client, clock
        self._max_age, self._max_future = max_age, max_future
        self._diagnoser = diagnoser

    async def aclose(self) -> None:
        """Nothing to release: the client belongs to the caller."""

    async def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedDelivery:
        """Verify one delivery by postback, the body spliced in byte for byte."""
        tx = sig.transmission_headers(headers)
        sig.check_auth_algo(tx.auth_algo)
        when = sig.check_transmission_time(tx.transmission_time, self._clock(), self._max_age,
                                           self._max_future)
        try:
            event = json.loads(body)
        except (ValueError, RecursionError):
            event = None
        if not isinstance(event, dict) or not body.lstrip().startswith(b"{"):
            raise SignatureError("the body is not a JSON object", check="json",
                                 likely_cause="not a PayPal event, or a corrupted body")
        try:
            ok = await self._client.verify_webhook_signature(
                auth_algo=tx.auth_algo, cert_url=tx.cert_url, transmission_id=tx.transmission_id,
                transmission_sig=tx.transmission_sig, transmission_time=tx.transmission_time,
                webhook_id=self.webhook_id, event_body=body)
        except ProviderError as exc:
            if exc.kind != "invalid":
                raise
            raise SignatureError(f"PayPal refused the postback: {exc.message}", check="signature",
                                 likely_cause="PayPal found the transmission headers malformed: "
                                              "forged or corrupted headers") from exc
        if not ok:
            cause = await self._diagnoser.diagnose(headers, body) if self._diagnoser else None
            raise SignatureError("PayPal says the transmission signature does not verify",
                                 check="signature",
                                 likely_cause=cause or postback_cause(self.webhook_id))
        return VerifiedDelivery(tx.transmission_id, when, self.webhook_id)
