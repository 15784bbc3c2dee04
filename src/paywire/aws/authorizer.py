"""API Gateway's Lambda authorizer for the admin routes: refused keys never reach the HTTP function.

The HTTP API (payload format 2.0, simple responses, identity source
`$request.header.Authorization`) calls `handler` before an admin route's integration. It
answers `{"isAuthorized": true, "context": {"caller": "key_<16 hex>"}}` for `Authorization:
Bearer <key>` naming one of the stage's API keys, and `{"isAuthorized": false}` (API Gateway
answers 403) for anything else: another scheme, no key, a key not in the list, an empty list.
The header is parsed and the key looked up exactly as the app does (`paywire.api.keys`: the
same parser, the same constant-time comparison against every key); `caller` is the id the app
itself uses for that key (a digest prefix, never the key), which the access log can record as
`$context.authorizer.caller`. The app still checks the key itself: the authorizer keeps
unauthenticated traffic away from the function that holds the table's write access, it does
not replace the app's check.

The keys come from the stage's app secret alone (`paywire.aws.api_keys.StageApiKeys`: the
`api_keys` of `paywire/<stage>/app`, cached for `PAYWIRE_SECRETS_TTL_SECONDS`, 300 s by
default, stale keys served through a failed re-read for the grace period). Nothing else is
read: no PayPal secret, no SSM parameter, no table, so the function's role needs only
`secretsmanager:GetSecretValue` on `paywire/<stage>/app-??????` and its log group. This module
imports no web framework and no store: a cold start is a few imports and one secret read.

When the keys cannot be read (no secret, access denied, a malformed secret, past the grace
period), the invocation *fails* (an ERROR line naming the secret id and AWS's error code, never
a value; then Lambda reports the error) and API Gateway answers the client 500. It never
authorizes. A deny would refuse too, but API Gateway caches an authorizer's answer per identity
source for the TTL, so a deny given during a brief Secrets Manager fault would lock a valid key
out for minutes after the fault ends, and a 403 tells the caller (and the API's 4xx metrics)
that the key is wrong when the fault is ours. A failed invocation leaves nothing in the cache,
counts as the API's 5xx (its alarm) and shows as `$context.authorizer.error` in the access log.

Caching, for the template: `AuthorizerResultTtlInSeconds` 300 (API Gateway's default; the
decision depends on the header only, never on the route, so one cached answer serves every admin
route). API Gateway then does not invoke the authorizer again for the same header value until
the TTL runs out, allow or deny alike. Key rotation follows from the two caches in a row (the
authorizer's keys, then API Gateway's answers):

- a *new* key works at the authorizer at most `PAYWIRE_SECRETS_TTL_SECONDS` after it is added to
  the secret, and a deny cached for it before then lasts up to the authorizer TTL: add a key,
  wait 600 s (both TTLs), then hand it out;
- a *revoked* key is refused by the app itself within `PAYWIRE_SECRETS_TTL_SECONDS` of its
  removal (the HTTP function re-reads the same secret), while API Gateway may keep letting it
  through to the function for up to both TTLs (600 s): the authorizer does not lengthen a
  revocation, but does not shorten it either. `aws apigatewayv2 reset-authorizers-cache
  --api-id <id> --stage-name '$default'` empties API Gateway's cache at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from paywire.api.keys import ApiKeys, bearer_token
from paywire.aws import logs
from paywire.aws.api_keys import StageApiKeys
from paywire.domain.errors import ConfigError

log = logging.getLogger("paywire.aws.authorizer")

PAYLOAD_VERSION = "2.0"
DENY: dict[str, Any] = {"isAuthorized": False}


def authorization(event: Mapping[str, Any]) -> str | None:
    """The request's `Authorization` header value (payload 2.0 lower-cases header names and
    joins repeated headers with commas, as the app then sees them), or None."""
    headers = event.get("headers")
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "authorization" and isinstance(value, str):
            return value
    return None


class Authorizer:
    """The authorizer's handler: the stage's API keys (`keys`, the seam tests replace with a
    loader on their own clock) and the digests made from them, remade when they change."""

    def __init__(self, keys: StageApiKeys | None = None) -> None:
        self.keys = keys if keys is not None else StageApiKeys()
        self._loaded: tuple[SecretStr, ...] | None = None
        self._api_keys = ApiKeys([])

    def __repr__(self) -> str:
        return f"Authorizer({self._api_keys!r})"

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The Lambda handler."""
        return logs.invocation(self.handle, http=True)(event, context)

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Answer one authorization request (API Gateway's simple response)."""
        if event.get("version") != PAYLOAD_VERSION or event.get("type") != "REQUEST":
            # A template wired for payload 1.0 or IAM policy answers: fail loudly (500).
            raise ConfigError("the authorizer takes HTTP API REQUEST events of payload format "
                              f"{PAYLOAD_VERSION} with simple responses; got version "
                              f"{event.get('version')!r}, type {event.get('type')!r}")
        route = event.get("routeKey")
        header = authorization(event)
        token = bearer_token(header) if header is not None else None
        if token is None:
            log.info("refused %s: no `Authorization: Bearer <key>`", route)
            return DENY
        caller = self._current().identify(token)
        if caller is None:
            log.info("refused %s: not one of the stage's API keys", route)
            return DENY
        return {"isAuthorized": True, "context": {"caller": caller}}

    def _current(self) -> ApiKeys:
        """The stage's keys as digests; ConfigError (after an ERROR line) when unreadable."""
        try:
            keys = self.keys.keys()
        except ConfigError as exc:
            log.error("cannot check API keys, so API Gateway answers 500: %s", exc.message)
            raise
        if keys is not self._loaded:
            logs.formatter().add_secrets(key.get_secret_value() for key in keys)
            self._loaded, self._api_keys = keys, ApiKeys(keys)
            if not keys:
                log.warning("the stage's app secret lists no api_keys: every admin request is "
                            "refused")
        return self._api_keys


handler = Authorizer()
