"""Does a PayPal host take a client id and secret? One client-credentials token request.

PayPal keeps sandbox and live apps apart by host: each host answers the other environment's
client id and secret with 401 `invalid_client`, exactly as it answers a wrong secret. The probe
therefore reports which environment a host belongs to (`host_environment`) beside the refusal,
so its callers (the start-up check in `paywire.bootstrap.credentials`, `paywire doctor`) can
explain a refusal as the likely sandbox/live mix-up. Synchronous on purpose: it runs once, before
an event loop exists (a Lambda cold start) or in a worker thread (the doctor).
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import httpx

from paywire.domain.errors import ProviderError
from paywire.providers.paypal import refusals

OAUTH_PATH = "/v1/oauth2/token"
LIVE_HOSTS = ("api-m.paypal.com", "api.paypal.com")
SANDBOX_SUFFIX = ".sandbox.paypal.com"


def host_environment(url: str) -> str | None:
    """`live` or `sandbox` for PayPal's own hosts; None for any other (the emulator, a proxy)."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host.endswith(SANDBOX_SUFFIX):
        return "sandbox"
    return "live" if host in LIVE_HOSTS else None


def request_token(base_url: str, client_id: str, client_secret: str, *, timeout: float,
                  http: httpx.Client | None = None) -> None:
    """Ask `base_url` for a client-credentials token (and drop it).

    ProviderError on any refusal (`name="invalid_client"` for unknown credentials) or when the
    host cannot be reached (`kind="transient"`).
    """
    pair = f"{client_id}:{client_secret}"
    headers = {"Authorization": f"Basic {base64.b64encode(pair.encode()).decode()}",
               "Content-Type": "application/x-www-form-urlencoded",
               "Accept": "application/json"}
    client = http or httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
    try:
        resp = client.post(base_url + OAUTH_PATH, content=b"grant_type=client_credentials",
                           headers=headers)
    except httpx.HTTPError as exc:
        raise ProviderError(f"PayPal OAuth token failed: {type(exc).__name__} reaching "
                            f"{base_url}", provider="paypal", kind="transient",
                            retryable=True) from exc
    finally:
        if http is None:
            client.close()
    if resp.is_success:
        return
    try:
        body = resp.json()
    except ValueError:
        body = None
    raise refusals.error_from_response(resp.status_code, body, what="OAuth token",
                                      debug_id=resp.headers.get("paypal-debug-id"))
