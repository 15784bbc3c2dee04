"""`POST /v1/oauth2/token`: client credentials over HTTP Basic, answered in OAuth's shape."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.emulator.http import state_of

SCOPES = " ".join([
    "https://uri.paypal.com/services/payments/payment",
    "https://uri.paypal.com/services/payments/refund",
    "https://uri.paypal.com/services/payments/orders/client-side-integration",
    "https://uri.paypal.com/services/applications/webhooks",
    "https://uri.paypal.com/services/disputes/read-seller",
    "openid",
])


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
