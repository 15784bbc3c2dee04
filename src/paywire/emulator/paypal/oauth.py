"""`POST /v1/oauth2/token`: client credentials over HTTP Basic, answered in OAuth's shape.

PayPal keeps sandbox and live apps apart by host: `api-m.sandbox.paypal.com` refuses a live
app's credentials with 401 `invalid_client`, and `api-m.paypal.com` a sandbox app's. The
emulator does the same when a request names one of those hosts (its `Host` header); on any
other host (loopback, a test server) it serves both kinds of app.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.emulator.paypal.http import state_of

SCOPES = " ".join([
    "https://uri.paypal.com/services/payments/payment",
    "https://uri.paypal.com/services/payments/refund",
    "https://uri.paypal.com/services/payments/orders/client-side-integration",
    "https://uri.paypal.com/services/applications/webhooks",
    "https://uri.paypal.com/services/disputes/read-seller",
    "openid",
])


LIVE_HOSTS = ("api-m.paypal.com", "api.paypal.com")
SANDBOX_SUFFIX = ".sandbox.paypal.com"


def host_environment(host: str) -> Literal["sandbox", "live"] | None:
    """The PayPal environment a `Host` header names (None: neither, both kinds of app served)."""
    name = (urlsplit(f"//{host.strip()}").hostname or "").rstrip(".")
    if name.endswith(SANDBOX_SUFFIX):
        return "sandbox"
    if name in LIVE_HOSTS:
        return "live"
    return None


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


async def token(request: Request) -> Response:
    """Issue a bearer token for valid client credentials."""
    emu = state_of(request)
    body = await request.body()
    if len(body) > 10_000:
        return _oauth_error(400, "invalid_request", "Request body too large")
    creds = _basic_credentials(request.headers.get("authorization", ""))
    if creds is None:
        return _oauth_error(401, "invalid_client", "Client Authentication failed")
    app = emu.apps.get(creds[0])
    if app is None or not hmac.compare_digest(app.client_secret.encode(), creds[1].encode()):
        return _oauth_error(401, "invalid_client", "Client Authentication failed")
    environment = host_environment(request.headers.get("host", ""))
    if environment is not None and app.environment != environment:
        # The other environment's app: PayPal answers exactly as for unknown credentials.
        return _oauth_error(401, "invalid_client", "Client Authentication failed")
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
    except UnicodeDecodeError:
        form = {}
    grant = form.get("grant_type", [""])[0]
    if grant != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type",
                            "Grant Type is NULL" if not grant else f"{grant} is not supported")
    tok = emu.issue_token(app.client_id)
    return JSONResponse({
        "scope": SCOPES,
        "access_token": tok.value,
        "token_type": "Bearer",
        "app_id": app.app_id or "APP-80W284485P519543T",
        "expires_in": emu.config.token_ttl_seconds,
        "nonce": f"{emu.clock.now_dt().strftime('%Y-%m-%dT%H:%M:%SZ')}{secrets.token_urlsafe(32)}",
    })


routes = [Route("/v1/oauth2/token", token, methods=["POST"])]
