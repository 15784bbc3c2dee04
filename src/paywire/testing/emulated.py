"""The emulated providers as a shop's tests drive them: the buyer's decisions without a browser,
the emulator's clock, fault rules, webhook subscriptions, and deliveries signed as PayPal and
APS sign them.

`Emulated` wraps a running `EmulatorServer` (the `paywire_emulator` fixture of
`paywire.testing.plugin`). Everything a test asks of the emulator goes through its HTTP control
API, as it would against `paywire emulator` in another process, except what only the
emulator's own keys can do: signing a delivery reuses the emulator's signing code
(`emulator.paypal.delivery.transmission_headers`, `emulator.aps.ledger.sign_answer`) with its
keys, so paywire verifies a test's delivery exactly as one the emulator sent.

The calls are synchronous (the emulator serves on a thread of its own, so an async test may
make them too); a signed delivery is sent with `send()` or, to a shop served on the test's own
event loop, `await asend()`, or handed to any test client as `url`, `body` and `headers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from paywire.emulator import AppCredentials
from paywire.emulator.aps.feedback import encode
from paywire.emulator.aps.ledger import sign_answer
from paywire.emulator.clock import iso
from paywire.emulator.paypal.delivery import serialize, transmission_headers, transmission_id
from paywire.testing.servers import EmulatorServer

if TYPE_CHECKING:
    from paywire.settings import Settings

OrderRef = str | Mapping[str, Any]
"""PayPal's order id, or an order as paywire's API answers it (its `provider_order_id`)."""

APS_FORTAPI = "/aps/FortAPI"  # the APS emulator's API and payment page, inside the emulator


class EmulatorError(AssertionError):
    """The emulator refused a test's request (the message carries its answer)."""


def provider_order_id(order: OrderRef) -> str:
    """PayPal's id of `order`."""
    if isinstance(order, str):
        return order
    value = order.get("provider_order_id")
    if not isinstance(value, str):
        raise TypeError("an order given as a mapping needs its provider_order_id (paywire's "
                        "API answer for the order)")
    return value


@dataclass
class SignedDelivery:
    """One delivery, signed, not yet sent: `body` and `headers` go to `url` as they are
    (change `body` after signing to make a forgery paywire must refuse)."""

    url: str
    body: bytes = field(repr=False)
    headers: dict[str, str]

    def send(self, timeout: float = 10.0) -> httpx.Response:
        """POST it (blocking)."""
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            return client.post(self.url, content=self.body, headers=self.headers)

    async def asend(self, client: httpx.AsyncClient | None = None) -> httpx.Response:
        """POST it from the running event loop (with `client`, e.g. one on an ASGI transport)."""
        if client is not None:
            return await client.post(self.url, content=self.body, headers=self.headers)
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as own:
            return await own.post(self.url, content=self.body, headers=self.headers)


class WebhookSender:
    """Deliveries signed as the providers sign them, with the emulator's own keys."""

    def __init__(self, emulated: Emulated) -> None:
        self.emulated = emulated

    def paypal(self, url: str, event: Mapping[str, Any] | bytes, *, webhook_id: str,
               transmission_time: float | None = None) -> SignedDelivery:
        """`event` (an event object, serialised as PayPal does, or raw bytes) signed for the
        subscription `webhook_id`: PAYPAL-TRANSMISSION-SIG over `id|time|webhook_id|crc32` with
        the emulator's certificate (its `PAYPAL-CERT-URL` is the emulator's), at
        `transmission_time` (epoch seconds; default: the emulator clock's now)."""
        server = self.emulated.server
        deliverer = server.emu.deliverer
        body = event if isinstance(event, bytes) else serialize(dict(event))
        cert_url = deliverer.cert_url(server.url)
        deliverer.issued_cert_urls.add(cert_url)  # postback verification knows it too
        when = iso(server.emu.clock.now() if transmission_time is None else transmission_time)
        headers = transmission_headers(deliverer.pki, cert_url, transmission_id(), when,
                                       webhook_id, body)
        return SignedDelivery(url, body, headers)

    def redeliver(self, event: Mapping[str, Any] | str, url: str, *,
                  webhook_id: str) -> SignedDelivery:
        """An event the emulator published (or its id), signed afresh for `url`: a duplicate
        or late delivery of what PayPal really sent."""
        found = self.emulated.event(event) if isinstance(event, str) else event
        return self.paypal(url, found, webhook_id=webhook_id)

    def aps(self, url: str, params: Mapping[str, str], *,
            feedback_format: Literal["json", "form"] | None = None) -> SignedDelivery:
        """APS feedback `params` signed with the merchant account's SHA response phrase, as
        JSON (or form-encoded: the emulator's configured format unless given)."""
        state = self.emulated.server.app.aps
        signed = sign_answer(state, {k: str(v) for k, v in params.items()})
        body, ctype = encode(signed, feedback_format or state.config.feedback_format)
        return SignedDelivery(url, body, {"Content-Type": ctype})


class EmulatedClock:
    """The emulator's clock (both providers'): it moves orders towards expiry, never paywire's
    own wall clock."""

    def __init__(self, emulated: Emulated) -> None:
        self.emulated = emulated

    def now(self) -> float:
        """The emulator's now (epoch seconds)."""
        return float(self.emulated.control("GET", "/_emulator/clock")["now"])

    def advance(self, seconds: float) -> float:
        """Move the clock on by `seconds` and run what fell due (order expiry); the new now."""
        return float(self.emulated.control("POST", "/_emulator/clock/advance",
                                           {"seconds": seconds})["now"])


class EmulatedFaults:
    """Fault rules (the README's "fault rules"): PayPal's by default, APS's with `aps=True`."""

    def __init__(self, emulated: Emulated) -> None:
        self.emulated = emulated

    def _base(self, aps: bool) -> str:
        return "/aps/_aps/faults" if aps else "/_emulator/faults"

    def add(self, *, aps: bool = False, **rule: Any) -> dict[str, Any]:
        """Add a rule (`action="error"|"latency"|"timeout"` for API calls: `action="error",
        method="POST", path="^/v2/checkout/orders/.*/capture$", status=503, count=1`;
        `action="drop"|"duplicate"|"delay"|"reorder"` for webhook deliveries, by `event_type`
        and `url`); the rule as the emulator shows it (its `id`, `fired`)."""
        return self.emulated.control("POST", self._base(aps), rule)

    def list(self, *, aps: bool = False) -> list[dict[str, Any]]:
        """The active rules, with how often each fired."""
        rules: list[dict[str, Any]] = self.emulated.control("GET", self._base(aps))["rules"]
        return rules

    def remove(self, rule_id: str, *, aps: bool = False) -> None:
        """Remove one rule."""
        self.emulated.control("DELETE", f"{self._base(aps)}/{rule_id}")

    def clear(self, *, aps: bool = False) -> None:
        """Remove every rule."""
        self.emulated.control("DELETE", self._base(aps))


class Emulated:
    """A running emulator as a shop's tests use it (see the module's doc)."""

    def __init__(self, server: EmulatorServer, credentials: AppCredentials) -> None:
        self.server = server
        self.credentials = credentials
        self.clock = EmulatedClock(self)
        self.faults = EmulatedFaults(self)
        self.webhooks = WebhookSender(self)

    def __repr__(self) -> str:
        return f"<paywire emulator at {self.url}>"

    @property
    def url(self) -> str:
        """The emulator's base URL (PayPal's API at the root, APS under /aps)."""
        return self.server.url

    # -- the control API -----------------------------------------------------------------

    def control(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                ) -> dict[str, Any]:
        """Call the emulator's control API; its JSON answer (EmulatorError if refused)."""
        with httpx.Client(base_url=self.url, timeout=10, trust_env=False) as client:
            response = client.request(method, path, json=dict(body) if body is not None
                                      else None)
        if response.status_code >= 400:
            raise EmulatorError(f"{method} {path}: {response.status_code} {response.text}")
        if response.status_code == 204 or not response.content:
            return {}
        answer: dict[str, Any] = response.json()
        return answer

    def token(self) -> str:
        """A bearer token for the test app (PayPal's OAuth endpoint)."""
        with httpx.Client(base_url=self.url, timeout=10, trust_env=False) as client:
            response = client.post("/v1/oauth2/token", data={"grant_type": "client_credentials"},
                                   auth=(self.credentials.client_id,
                                         self.credentials.client_secret))
        if response.status_code != 200:
            raise EmulatorError(f"token: {response.status_code} {response.text}")
        token: str = response.json()["access_token"]
        return token

    def subscribe(self, url: str, *event_types: str) -> str:
        """Subscribe `url` (a shop's `.../webhooks/paypal`) to `event_types` (default: all),
        as the merchant would in PayPal's dashboard; the webhook id paywire must be given
        (`PAYWIRE_PAYPAL_WEBHOOK_ID`) to accept the deliveries."""
        with httpx.Client(base_url=self.url, timeout=10, trust_env=False) as client:
            response = client.post(
                "/v1/notifications/webhooks",
                json={"url": url, "event_types": [{"name": t} for t in event_types or ("*",)]},
                headers={"Authorization": f"Bearer {self.token()}"})
        if response.status_code != 201:
            raise EmulatorError(f"subscribe: {response.status_code} {response.text}")
        webhook_id: str = response.json()["id"]
        return webhook_id

    # -- the buyer -----------------------------------------------------------------------

    def approve(self, order: OrderRef, scenario: str = "approve") -> dict[str, Any]:
        """The buyer approves `order` at PayPal, choosing what its capture does: `approve`
        (completes), `decline` (DECLINED), `pending` (PENDING review) or
        `instrument_declined` (422: the buyer must approve again); PayPal's order."""
        return self.control("POST", f"/_emulator/orders/{provider_order_id(order)}/approve",
                            {"scenario": scenario})

    def decline(self, order: OrderRef) -> dict[str, Any]:
        """The buyer approves with a card that is declined at capture."""
        return self.approve(order, "decline")

    def expire(self, order: OrderRef) -> dict[str, Any]:
        """The order's approval window passes now (it was never approved)."""
        return self.control("POST", f"/_emulator/orders/{provider_order_id(order)}/expire")

    # -- what PayPal published ------------------------------------------------------------

    def events(self, event_type: str | None = None,
               order: OrderRef | None = None) -> list[dict[str, Any]]:
        """Webhook events PayPal published, oldest first: of `event_type`, about `order`
        (its PayPal id anywhere in the event's resource)."""
        wanted = None if order is None else provider_order_id(order)
        found = list(self.server.emu.events.values())
        return [e for e in found
                if (event_type is None or e.get("event_type") == event_type)
                and (wanted is None or wanted in str(e.get("resource")))]

    def event(self, event_id: str) -> dict[str, Any]:
        """One published event by id (KeyError if none)."""
        return dict(self.server.emu.events[event_id])

    def deliveries(self, url_suffix: str = "") -> list[dict[str, Any]]:
        """Every webhook delivery attempt the emulator made (to URLs ending in `url_suffix`):
        `event_id`, `url`, `status`, `attempt`, `fault`..."""
        return [a.to_json() for a in list(self.server.emu.deliverer.log)
                if a.url.endswith(url_suffix)]

    # -- paywire's settings for this emulator ------------------------------------------

    def settings(self, data_dir: Path, *, paywire_url: str | None = None, aps: bool = False,
                 **overrides: Any) -> Settings:
        """paywire's settings for this emulator: its PayPal (the test app's credentials),
        SQLite under `data_dir`, quick background rounds; the `.env` file is not read.

        With `paywire_url` (where paywire answers, mount prefix included:
        `http://127.0.0.1:8123/pay`), its `/webhooks/paypal` is subscribed to every event and
        the webhook id set; with `aps` too, APS is offered beside PayPal (the emulator's
        merchant account, its feedback aimed at `<paywire_url>/webhooks/aps`, buyers returned
        to `<paywire_url>/v1/aps/return`). `overrides` are named as the settings are
        (`return_url=...`, `outbox_interval_seconds=...`).
        """
        from paywire.settings import Settings

        data_dir = Path(data_dir)
        values: dict[str, Any] = {
            "paypal_env": "emulator", "paypal_base_url": self.url,
            "paypal_client_id": self.credentials.client_id,
            "paypal_client_secret": self.credentials.client_secret,
            "data_dir": data_dir,
            "database_url": f"sqlite+aiosqlite:///{data_dir / 'paywire.db'}",
            "paypal_retry_backoff_seconds": 0.05, "outbox_interval_seconds": 0.1,
            "outbox_base_delay_seconds": 0.2, "truth_fetch_interval_seconds": 0.2,
            "truth_fetch_base_delay_seconds": 0.2,
        }
        if paywire_url is not None:
            base = paywire_url.rstrip("/")
            values["paypal_webhook_id"] = self.subscribe(f"{base}/webhooks/paypal")
            if aps:
                config = self.server.app.aps.config
                config.direct_feedback_url = config.notification_feedback_url = (
                    f"{base}/webhooks/aps")
                account = config.credentials
                values.update(
                    providers=["paypal", "aps"], aps_env="emulator",
                    aps_api_url=f"{self.url}{APS_FORTAPI}/paymentApi",
                    aps_page_url=f"{self.url}{APS_FORTAPI}/paymentPage",
                    aps_access_code=account.access_code,
                    aps_merchant_identifier=account.merchant_identifier,
                    aps_request_phrase=account.request_phrase,
                    aps_response_phrase=account.response_phrase, aps_sha_type=account.sha_type,
                    aps_return_url=f"{base}/v1/aps/return")
        elif aps:
            raise ValueError("APS needs paywire_url (its feedback and return URLs)")
        values.update(overrides)
        return Settings.load(_env_file=None, **values)
