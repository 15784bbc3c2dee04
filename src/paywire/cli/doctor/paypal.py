"""`paywire doctor`'s checks of PayPal, when `paypal` is in PAYWIRE_PROVIDERS: PayPal takes the
credentials (`paywire.bootstrap.credentials`, a refusal explained as a sandbox/live mix-up); the
configured webhook id exists at PayPal with our URL and the event types paywire acts on; the
webhook certificate trust model in use (docs/webhook-trust.md) and whether the certificate host
answers over verified TLS (only hosts on the allowlist are contacted; a short deadline, so an
offline machine gets its answer at once)."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

import httpx

from paywire.bootstrap.credentials import check_credentials
from paywire.cli.doctor.checks import Check
from paywire.cli.webhooks import WEBHOOK_ID_VAR, webhooks_api
from paywire.domain.errors import ProviderError
from paywire.providers.paypal.webhook_signature import CERT_PATH_PREFIX

if TYPE_CHECKING:
    from paywire.providers.paypal.webhooks_api import WebhooksApi
    from paywire.settings import Settings

REGISTER = "paywire webhooks register --url https://<your-host>/webhooks/paypal --env-file .env"
CERT_PROBE_SECONDS = 5.0  # the certificate host check's cap, whatever the fetch timeout


async def paypal_checks(settings: Settings, url: str | None) -> list[Check]:
    """The credentials, then the webhook subscription (skipped when PayPal refused)."""
    if settings.paypal.client_id is None or settings.paypal.client_secret is None:
        return [Check("credentials", "fail", "no PayPal client id/secret configured",
                      "set PAYWIRE_PAYPAL_CLIENT_ID and PAYWIRE_PAYPAL_CLIENT_SECRET"),
                Check("webhook", "skip", "no credentials to ask PayPal with")]
    verdict = await asyncio.to_thread(check_credentials, settings)
    if verdict.outcome != "ok":
        return [Check("credentials", "fail", verdict.detail, verdict.fix),
                Check("webhook", "skip", "PayPal did not take the credentials")]
    creds = Check("credentials", "ok", verdict.detail)
    api = webhooks_api(settings)
    try:
        return [creds, await _webhook(settings, api, url)]
    except ProviderError as exc:
        return [creds, Check("webhook", "fail", exc.message, "retry; check PayPal status")]
    finally:
        await api.aclose()


async def _webhook(settings: Settings, api: WebhooksApi, url: str | None) -> Check:
    from paywire.providers.paypal.events import EVENTS

    ours = settings.paypal.webhook_id
    var = (WEBHOOK_ID_VAR if settings.stage is None
           else f"webhook_id of the secret {settings.paypal_secret_name}")
    if ours is None:
        return Check("webhook", "fail", f"{var} is not set: every delivery is refused",
                     REGISTER)
    hook = await api.get(ours)
    if hook is None:
        return Check("webhook", "fail", f"{var}={ours} is not a webhook of this app "
                     f"at PayPal ({settings.paypal.env}); every delivery is refused",
                     f"{REGISTER} (or, if it belongs to the other environment, use this "
                     "environment's webhook id)")
    problems: list[str] = []
    if url is not None and hook.url.rstrip("/") != url.rstrip("/"):
        problems.append(f"it delivers to {hook.url}, not {url}")
    elif not hook.url.rstrip("/").endswith("/webhooks/paypal"):
        problems.append(f"its URL {hook.url} is not a paywire webhook endpoint "
                        "(…/webhooks/paypal)")
    missing = [] if "*" in hook.event_types else sorted(set(EVENTS) - set(hook.event_types))
    if missing:
        problems.append(f"it does not subscribe to {', '.join(missing)}")
    if problems:
        return Check("webhook", "fail", f"webhook {ours}: " + "; ".join(problems),
                     f"`paywire webhooks delete {ours}`, then {REGISTER} --events '*'")
    return Check("webhook", "ok", f"{ours} delivers to {hook.url} "
                 f"({', '.join(hook.event_types)})")


def trust_model(settings: Settings) -> str:
    """How webhook signing certificates are trusted under `settings`, in a phrase."""
    if settings.cert_trust == "fetched":
        return ("trust fetched: PayPal's signing certificate is trusted as fetched over verified "
                "TLS from its allowlisted hosts (names, dates and key usage checked)")
    if settings.webhook_ca_bundle is not None:
        return (f"trust bundle: the signing certificate must chain to PAYWIRE_WEBHOOK_CA_BUNDLE="
                f"{settings.webhook_ca_bundle}")
    return f"trust bundle: the emulator's CA from {settings.paypal.emulator_ca_url}"


async def probe_cert_host(url: str, seconds: float, *,
                          verify: ssl.SSLContext | bool = True) -> str | None:
    """None when `url` answers at all (any status) over verified TLS, else what went wrong:
    "TLS verification failed (...)", "unreachable: DNS lookup failed", ... within `seconds`."""
    from paywire.providers.paypal.webhook_verifier import fetch_failure

    try:
        async with asyncio.timeout(seconds), httpx.AsyncClient(
                timeout=seconds, trust_env=False, follow_redirects=False,
                verify=verify) as http:
            await http.get(url)
    except TimeoutError:
        return f"unreachable: no answer within {seconds:g} s"
    except httpx.HTTPError as exc:
        why = fetch_failure(exc)
        return why if why.startswith("TLS") else f"unreachable: {why}"
    return None


async def certs_check(settings: Settings) -> Check:
    """The trust model, and whether the certificate host (the emulator's CA URL in emulator
    mode) can be reached the way deliveries will need it."""
    model = trust_model(settings)
    timeout = min(settings.webhook_cert_timeout_seconds, CERT_PROBE_SECONDS)
    if settings.paypal.emulator_ca_url is not None:
        target = settings.paypal.emulator_ca_url
        try:
            async with httpx.AsyncClient(timeout=timeout, trust_env=False,
                                         follow_redirects=False) as http:
                resp = await http.get(target)
        except httpx.HTTPError as exc:
            return Check("certs", "fail", f"{model}; {target} unreachable: "
                         f"{type(exc).__name__}", "start the emulator, or correct "
                         "PAYWIRE_PAYPAL_BASE_URL")
        if resp.status_code != 200:
            return Check("certs", "fail", f"{model}; {target} answered {resp.status_code}",
                         "start the emulator, or correct PAYWIRE_PAYPAL_BASE_URL")
        return Check("certs", "ok", f"{model}; {target} reachable")
    https_hosts, _ = settings.cert_hosts
    sandbox = settings.paypal.env == "sandbox"
    hosts = [h for h in https_hosts if ("sandbox" in h) == sandbox] or https_hosts
    if not hosts:
        return Check("certs", "fail", f"{model}; no certificate host is allowed",
                     "set PAYWIRE_WEBHOOK_CERT_HOSTS")
    target = f"https://{hosts[0]}{CERT_PATH_PREFIX}"
    problem = await probe_cert_host(target, timeout)
    if problem is None:
        return Check("certs", "ok", f"{model}; {target} reachable over verified TLS")
    if problem.startswith("TLS"):
        fix = ("something on the way presents a certificate this machine's CA roots (certifi) "
               "do not trust -- a TLS-intercepting proxy or firewall, or an outdated certifi: "
               f"let paywire reach {hosts[0]} directly or upgrade certifi. Until then every "
               "delivery is answered 503 (PayPal retries for 3 days)")
    else:
        fix = (f"allow outbound DNS and HTTPS (443) to {hosts[0]} from this host (firewall, "
               "egress rules, DNS). Until then every delivery is answered 503 and PayPal "
               "retries it for 3 days")
    return Check("certs", "fail", f"{model}; {target} {problem}", fix)
