"""Does PayPal take the configured credentials? One token request to the configured host,
explained in terms of the configuration (part of the composition root).

PayPal keeps sandbox and live apps apart by host: each host answers the other environment's
client id and secret with 401 `invalid_client`, exactly as it answers a wrong secret. So a
refused token is explained as the likely sandbox/live mix-up, naming the host that was asked and
the environment the configuration (a stage's secret, or `PAYWIRE_PAYPAL_ENV`) claims: never the
secret itself. The request is PayPal's (`paywire.providers.paypal.oauth_probe`); this module
reads the settings into it and names the settings to fix. A stage's start-up
(`paywire.aws.secrets`) fails on a refusal; `paywire doctor` reports it with the fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import httpx

from paywire.domain.errors import ConfigError, ProviderError
from paywire.providers.paypal import oauth_probe
from paywire.providers.paypal.oauth_probe import host_environment
from paywire.settings import Settings

log = logging.getLogger("paywire.credentials")

STARTUP_TIMEOUT_SECONDS = 10.0

Outcome = Literal["ok", "refused", "failed"]


@dataclass(frozen=True, slots=True)
class CredentialsVerdict:
    """What PayPal said to a token request: ok, refused (`invalid_client`: the explanation in
    `detail`) or failed (unreachable, another error); `fix` says what to do."""

    outcome: Outcome
    detail: str
    fix: str = ""


def claimed_environment(settings: Settings) -> str:
    """Which environment the configuration says these credentials are for, and who says so."""
    if settings.stage is not None:
        return (f"the stage secret {settings.paypal_secret_name} claims environment "
                f"{settings.stage_environment}")
    return f"PAYWIRE_PAYPAL_ENV is {settings.paypal.env}"


def explain_refusal(exc: ProviderError, settings: Settings) -> str:
    """A refused token (`invalid_client`) as the likely sandbox/live mix-up; other errors as
    they are. Names the host asked and the claimed environment, never a credential."""
    if exc.name != "invalid_client":
        return exc.message
    url = settings.paypal.url
    asked = host_environment(url)
    if asked is None:
        host = f"the {settings.paypal.env} host" if settings.paypal.env == "emulator" else "host"
        said = f"these credentials were refused by {host} {url}"
        guess = "the client id/secret is not an app there (wrong app, or a rotated secret?)"
    else:
        other = "sandbox" if asked == "live" else "live"
        said = f"these credentials were refused by the {asked} host {url}"
        guess = (f"a {other} app's credentials? (or the {asked} app's secret was rotated at "
                 "PayPal)")
    if settings.stage is not None:
        where = (f"put the {settings.stage_environment} app's client id and secret into the "
                 f"secret {settings.paypal_secret_name} (client_id, client_secret), or, if they "
                 "are the other environment's, set the secret's environment to match them")
    else:
        where = ("copy the matching app's client id and secret into PAYWIRE_PAYPAL_CLIENT_ID and "
                 "PAYWIRE_PAYPAL_CLIENT_SECRET, or set PAYWIRE_PAYPAL_ENV to the credentials' "
                 "environment")
    return (f"{exc.message}: {said}; {claimed_environment(settings)}: {guess}. Fix: {where} "
            "(developer.paypal.com, Apps & Credentials, the Sandbox or Live tab)")


def request_token(settings: Settings, *, http: httpx.Client | None = None,
                  timeout: float | None = None) -> None:
    """Ask the configured PayPal host for a client-credentials token (and drop it).

    ProviderError on any refusal (`name="invalid_client"` for unknown credentials) or when the
    host cannot be reached (`kind="transient"`); ConfigError without credentials.
    """
    if settings.paypal.client_id is None or settings.paypal.client_secret is None:
        raise ConfigError("PAYWIRE_PAYPAL_CLIENT_ID and PAYWIRE_PAYPAL_CLIENT_SECRET must be set")
    oauth_probe.request_token(settings.paypal.url, settings.paypal.client_id,
                              settings.paypal.client_secret.get_secret_value(),
                              timeout=timeout or settings.paypal.timeout_seconds, http=http)


def check_credentials(settings: Settings, *, http: httpx.Client | None = None,
                      timeout: float | None = None) -> CredentialsVerdict:
    """One token request to the configured host, as a verdict (never raises ProviderError)."""
    try:
        request_token(settings, http=http, timeout=timeout)
    except ConfigError as exc:
        return CredentialsVerdict("failed", exc.message,
                                  "set the PayPal client id and secret (or the stage's secret)")
    except ProviderError as exc:
        if exc.name == "invalid_client":
            return CredentialsVerdict("refused", explain_refusal(exc, settings),
                                      "see the explanation")
        fix = ("correct PAYWIRE_PAYPAL_BASE_URL / PAYWIRE_PAYPAL_ENV, or the network"
               if exc.kind == "transient" else "see PayPal's answer; retry later")
        return CredentialsVerdict("failed", exc.message, fix)
    return CredentialsVerdict("ok", f"PayPal issued a token at {settings.paypal.url}")


def require_credentials(settings: Settings, *, http: httpx.Client | None = None) -> bool:
    """The start-up check: True when PayPal issued a token; ConfigError (explained) when it
    refused the credentials; False, with a WARNING, when it could not be asked (a PayPal
    outage must not stop start-up: webhooks still arrive and are stored)."""
    verdict = check_credentials(settings, http=http, timeout=min(
        settings.paypal.timeout_seconds, STARTUP_TIMEOUT_SECONDS))
    if verdict.outcome == "refused":
        raise ConfigError(verdict.detail, details={"check": "paypal_credentials",
                                                   "host": settings.paypal.url})
    if verdict.outcome == "failed":
        log.warning("start-up credentials check: %s (%s)", verdict.detail, verdict.fix)
        return False
    log.info("start-up credentials check: %s", verdict.detail)
    return True
