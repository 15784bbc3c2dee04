"""PayPal's webhooks management API (v1/notifications): what the operator CLI registers with.

A small client of its own (not `PayPalClient`): operator commands run once, need no retries or
token cache, and must surface PayPal's answer (404 for an unknown webhook id, `invalid_client`
for credentials of the other environment) as it is. Errors are `ProviderError`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from paywire.domain.errors import ProviderError
from paywire.providers.paypal import refusals

WEBHOOKS = "/v1/notifications/webhooks"
SIMULATE = "/v1/notifications/simulate-event"


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook subscription as PayPal reports it."""

    id: str
    url: str
    event_types: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """Stable machine-readable keys."""
        return {"id": self.id, "url": self.url, "event_types": list(self.event_types)}


def _webhook(data: Any) -> Webhook:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ProviderError("PayPal answered a webhook without an id", provider="paypal")
    types = tuple(str(t.get("name")) for t in data.get("event_types") or []
                  if isinstance(t, dict))
    return Webhook(id=data["id"], url=str(data.get("url") or ""), event_types=types)


class WebhooksApi:
    """Register, list, get, delete and simulate webhooks for one REST app."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, *,
                 timeout: float = 20.0, http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._secret = client_secret
        self._http = http or httpx.AsyncClient(timeout=timeout, trust_env=False)
        self._owns_http = http is None
        self._token: str | None = None

    def __repr__(self) -> str:
        return f"WebhooksApi({self.base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_http:
            await self._http.aclose()

    async def _request(self, method: str, path: str, what: str, *, auth: dict[str, str],
                       content: bytes | None = None, json: Any = None) -> httpx.Response:
        try:
            resp = await self._http.request(method, self.base_url + path, content=content,
                                            json=json, headers={"Accept": "application/json",
                                                                **auth})
        except httpx.HTTPError as exc:
            raise ProviderError(f"PayPal {what} failed: {type(exc).__name__} reaching "
                                f"{self.base_url}", provider="paypal", kind="transient",
                                retryable=True) from exc
        if not resp.is_success:
            try:
                body = resp.json()
            except ValueError:
                body = None
            raise refusals.error_from_response(resp.status_code, body, what=what,
                                              debug_id=resp.headers.get("paypal-debug-id"))
        return resp

    async def token(self) -> str:
        """A fresh access token (ProviderError with name `invalid_client` on bad credentials)."""
        basic = base64.b64encode(f"{self._client_id}:{self._secret}".encode()).decode()
        resp = await self._request(
            "POST", "/v1/oauth2/token", "OAuth token", content=b"grant_type=client_credentials",
            auth={"Authorization": f"Basic {basic}",
                  "Content-Type": "application/x-www-form-urlencoded"})
        value = resp.json().get("access_token")
        if not isinstance(value, str) or not value:
            raise ProviderError("PayPal OAuth token answer lacks access_token", provider="paypal")
        self._token = value
        return value

    async def _call(self, method: str, path: str, what: str, body: Any = None) -> Any:
        token = self._token or await self.token()
        resp = await self._request(method, path, what, json=body,
                                   auth={"Authorization": f"Bearer {token}"})
        return resp.json() if resp.content else None

    async def list_all(self) -> list[Webhook]:
        """This app's webhooks."""
        data = await self._call("GET", WEBHOOKS, "list webhooks")
        return [_webhook(w) for w in (data or {}).get("webhooks") or []]

    async def get(self, webhook_id: str) -> Webhook | None:
        """One webhook, or None when PayPal does not know the id (for this app)."""
        try:
            return _webhook(await self._call("GET", f"{WEBHOOKS}/{quote(webhook_id, safe='')}",
                                             "get webhook"))
        except ProviderError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, url: str, event_types: list[str]) -> Webhook:
        """Subscribe `url` to `event_types` (`["*"]` = all)."""
        body = {"url": url, "event_types": [{"name": t} for t in event_types]}
        return _webhook(await self._call("POST", WEBHOOKS, "create webhook", body))

    async def delete(self, webhook_id: str) -> bool:
        """Delete a webhook; False when PayPal does not know it."""
        try:
            await self._call("DELETE", f"{WEBHOOKS}/{quote(webhook_id, safe='')}",
                             "delete webhook")
        except ProviderError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def simulate(self, event_type: str, *, webhook_id: str | None = None,
                       url: str | None = None) -> dict[str, Any]:
        """Ask PayPal to send a mock event to a webhook or a URL; the event sent."""
        body: dict[str, Any] = {"event_type": event_type}
        if webhook_id is not None:
            body["webhook_id"] = webhook_id
        if url is not None:
            body["url"] = url
        data = await self._call("POST", SIMULATE, "simulate event", body)
        return data if isinstance(data, dict) else {}
