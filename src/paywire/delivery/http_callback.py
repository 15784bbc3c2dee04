"""The shop's signed HTTP callback, following the Standard Webhooks spec.

Each message is POSTed as JSON::

    {"id": <message id>, "type": "order.completed", "order_id": ..., "created_at": ...,
     "data": <the announcement's payload>}

with `webhook-id` (the message id: the same on every redelivery, so the shop deduplicates on
it), `webhook-timestamp` (this attempt's Unix time) and `webhook-signature: v1,<base64>`
(HMAC-SHA256 over `id.timestamp.body` with the `whsec_` secret), signed by the
`standardwebhooks` package. The body of one message is byte-identical on every attempt.

Beside them, `traceparent` (W3C Trace Context) names the trace the message was written in
(`paywire.domain.trace`: the order's, as a rule), so the shop's logs of the callback join the
story of the order. It is not signed, deliberately: the Standard Webhooks signature covers
`id.timestamp.body` and nothing else, so every standard verifier checks it as is; its parent id
is this attempt's span, so it changes per attempt where the signed content must not; and it is
a label for logs, never a reason to act (a forged one can only mislabel a log line, while
everything that moves money stays under the signature). `verify_delivery` reads it
(`Delivery.trace_id`) only once the signature holds.

A 2xx answer is delivered. Standard Webhooks receivers answer 2xx for anything they accept, so
every other answer is retried, except 410 Gone (the endpoint is gone for good: the message goes
dead at once). Connection errors and timeouts are retried; the timeout bounds each attempt.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr
from standardwebhooks import Webhook

from paywire.domain import trace
from paywire.domain.errors import ConfigError, DeliveryError
from paywire.ports import Clock, OutboxMessage, SystemClock

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# Answers that mean "never send this again" (everything else non-2xx is retried).
GONE = frozenset({410})
USER_AGENT = "paywire-outbox/1"


def delivery_body(message: OutboxMessage) -> bytes:
    """The JSON body the shop receives for `message` (stable across attempts)."""
    envelope: dict[str, Any] = {
        "id": message.id, "type": message.type, "order_id": message.order_id,
        "created_at": message.created_at.astimezone(UTC).isoformat(),
        "data": message.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True, default=str).encode()


def signer(secret: SecretStr | str) -> Webhook:
    """A Standard Webhooks signer for a `whsec_` secret (ConfigError naming the problem)."""
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not raw.startswith(SECRET_PREFIX):
        raise ConfigError("the fulfilment secret must be a Standard Webhooks secret starting "
                          "with 'whsec_' (base64 after the prefix)")
    try:
        return Webhook(raw)
    except Exception as exc:
        raise ConfigError("the fulfilment secret is not valid base64 after 'whsec_'") from exc


class HttpCallbackTarget:
    """POSTs signed messages to the shop's fulfilment URL.

    `clock` stamps each attempt (`webhook-timestamp`, inside the signature). It is the system
    clock unless a test injects one: the shop checks the stamp against its own wall clock, so
    the composition root leaves a service's (possibly stopped) clock out of it."""

    def __init__(self, url: str, secret: SecretStr | str, *,
                 http: httpx.AsyncClient | None = None, timeout: float = 10.0,
                 name: str = "http", clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        self.name = name
        self._webhook = signer(secret)  # the secret itself is not kept in an attribute
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HttpCallbackTarget(url={self.url!r}, secret='whsec_***')"

    def headers(self, message: OutboxMessage, body: bytes, now: datetime) -> dict[str, str]:
        """The Standard Webhooks headers for one attempt at `now`, and the message's trace
        (`traceparent`, unsigned: see the module's docstring)."""
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(message.id, now, body.decode()),
        }
        traceparent = trace.header_for(message.trace_id)
        if traceparent is not None:
            headers[trace.TRACEPARENT] = traceparent
        return headers

    async def deliver(self, message: OutboxMessage) -> None:
        """POST the message; DeliveryError unless the shop answered 2xx."""
        body = delivery_body(message)
        headers = self.headers(message, body, self.clock.now())
        try:
            response = await self._http.post(self.url, content=body, headers=headers,
                                             timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"no answer within {self.timeout:g} s", target=self.name,
                                details={"url": self.url}) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"cannot reach the shop: {type(exc).__name__}",
                                target=self.name, details={"url": self.url}) from exc
        if 200 <= response.status_code < 300:
            return
        raise DeliveryError(f"the shop answered {response.status_code}", target=self.name,
                            status=response.status_code,
                            retryable=response.status_code not in GONE,
                            details={"url": self.url})

    async def aclose(self) -> None:
        """Close the HTTP client if this target made it."""
        if self._own_http:
            await self._http.aclose()
