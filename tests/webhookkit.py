"""Helpers for the webhook suites: PayPal's side driven at the emulator, its deliveries read back,
paywire's store read through the port, and a recording server for hosts paywire must not call
(`webhookstack` builds the stack both webhook modules share on these).

Payments here are often completed at PayPal directly (`PayPal.capture`), not through paywire's
API, so that the webhook is the only way paywire can learn of them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apikit import open_store
from paywire.bootstrap import build
from paywire.domain.order import Order
from paywire.emulator import EmulatorConfig
from paywire.emulator.paypal.delivery import Transmission
from paywire.ports import InboxEvent, OutboxMessage, TruthTask, WebhookRejection
from paywire.settings import Settings
from paywire.testing import EmulatorServer, ServerThread
from testkit import CLIENT_ID, CLIENT_SECRET

T = TypeVar("T")
# Announcements made once per fact (architecture.md); progress notices (order.approved,
# order.authorized) are best effort and skipped when a later event arrives first.
PROGRESS = frozenset({"order.approved", "order.authorized"})


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str,
                     timeout: float = 10.0) -> T:
    """Poll `probe` until it returns something other than None/False."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class PayPal:
    """One emulator app's REST API, as a merchant's other tools (or PayPal's dashboard) use it."""

    def __init__(self, emulator: EmulatorServer, client_id: str, secret: str) -> None:
        self.emulator = emulator
        self.client_id, self.secret = client_id, secret

    async def call(self, method: str, path: str, body: Any = None,
                   expect: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
        """A REST call with a fresh token and a unique PayPal-Request-Id."""
        async with httpx.AsyncClient(base_url=self.emulator.url, timeout=10) as c:
            token = await c.post("/v1/oauth2/token", auth=(self.client_id, self.secret),
                                 data={"grant_type": "client_credentials"})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}",
                       "PayPal-Request-Id": secrets.token_hex(8),
                       "Prefer": "return=representation"}
            r = await c.request(method, path, json=body, headers=headers)
        assert r.status_code in expect, f"{method} {path}: {r.status_code} {r.text}"
        out: dict[str, Any] = r.json() if r.content else {}
        return out

    async def subscribe(self, url: str, *types: str) -> str:
        """Register a webhook for `url`; its id."""
        body = {"url": url, "event_types": [{"name": t} for t in types or ("*",)]}
        return str((await self.call("POST", "/v1/notifications/webhooks", body))["id"])

    async def unsubscribe(self, webhook_id: str) -> None:
        """Delete a webhook."""
        await self.call("DELETE", f"/v1/notifications/webhooks/{webhook_id}", expect=(204,))

    async def create_order(self, value: str, custom_id: str) -> str:
        """A CAPTURE order for one 'mug' line made outside paywire; its PayPal id."""
        money = {"currency_code": "USD", "value": value}
        order = await self.call("POST", "/v2/checkout/orders", {
            "intent": "CAPTURE", "purchase_units": [{
                "reference_id": custom_id, "custom_id": custom_id, "amount": {
                    **money, "breakdown": {"item_total": money}},
                "items": [{"name": "Mug", "quantity": "1", "unit_amount": money,
                           "sku": "mug"}]}]})
        return str(order["id"])

    async def approve(self, paypal_id: str, scenario: str = "approve") -> None:
        """The buyer approves (the emulator's control API)."""
        async with httpx.AsyncClient(base_url=self.emulator.url, timeout=10) as c:
            r = await c.post(f"/_emulator/orders/{paypal_id}/approve",
                             json={"scenario": scenario})
        assert r.status_code == 200, r.text

    async def capture(self, paypal_id: str) -> str:
        """Capture at PayPal directly; the capture id."""
        order = await self.call("POST", f"/v2/checkout/orders/{paypal_id}/capture", {})
        return str(order["purchase_units"][0]["payments"]["captures"][0]["id"])

    async def refund(self, capture_id: str, value: str) -> str:
        """A partial refund made at PayPal (its dashboard); the refund id."""
        body = {"amount": {"currency_code": "USD", "value": value}}
        return str((await self.call("POST", f"/v2/payments/captures/{capture_id}/refund",
                                    body))["id"])


# --- the emulator's delivery log -----------------------------------------------------------


def transmissions(emulator: EmulatorServer, url: str | None = None) -> list[Transmission]:
    """Every transmission the emulator made (to `url` only, if given)."""
    found = [t for trs in list(emulator.emu.deliverer.transmissions.values()) for t in trs]
    return [t for t in found if url is None or t.url == url]


async def quiet(emulator: EmulatorServer, timeout: float = 10.0) -> None:
    """Wait until every delivery is answered for good: delivered, or refused with a 4xx (which
    PayPal keeps retrying for 3 days; nothing a retry of it does is waited for)."""
    async def done() -> bool:
        refused = {a.transmission_id for a in list(emulator.emu.deliverer.log)
                   if a.status is not None and 400 <= a.status < 500}
        return all(t.status != "PENDING" or t.id in refused for t in transmissions(emulator))

    await eventually(done, "webhook deliveries to settle", timeout)


def statuses(emulator: EmulatorServer, transmission_id: str) -> list[int | None]:
    """The HTTP status of each attempt of one transmission, in order."""
    return [a.status for a in list(emulator.emu.deliverer.log)
            if a.transmission_id == transmission_id]


@dataclass(frozen=True)
class Delivery:
    """A delivery as sent: the exact bytes and headers."""

    event_type: str
    body: bytes
    headers: dict[str, str]

    @property
    def transmission_id(self) -> str:
        """PAYPAL-TRANSMISSION-ID."""
        return self.headers["PAYPAL-TRANSMISSION-ID"]


def delivery(tr: Transmission) -> Delivery:
    """A transmission as a replayable delivery."""
    return Delivery(tr.event_type, tr.body, dict(tr.headers))


async def post(url: str, d: Delivery, *, body: bytes | None = None,
               headers: dict[str, str] | None = None, drop: tuple[str, ...] = ()
               ) -> httpx.Response:
    """Send a delivery (or a doctored copy: other body, headers replaced or dropped) to
    paywire as PayPal would."""
    sent = {k: v for k, v in {**d.headers, **(headers or {})}.items() if k not in drop}
    async with httpx.AsyncClient(timeout=30) as c:
        return await c.post(url, content=d.body if body is None else body, headers=sent)


# --- a CRC-32 collision: what PayPal's signature does not protect ---------------------------

# CRC-32 run backwards, one byte at a time (the reflected polynomial 0xEDB88320).
_REVERSE = [0] * 256
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = (((_r ^ 0xEDB88320) << 1) | 1 if _r & 0x80000000 else _r << 1) & 0xFFFFFFFF
    _REVERSE[_i] = _r


def _force_crc(prefix: bytes, suffix: bytes, crc: int) -> bytes:
    """Four bytes that, between `prefix` and `suffix`, make the whole CRC-32 equal `crc`."""
    forward = zlib.crc32(prefix) ^ 0xFFFFFFFF  # the register after the prefix
    backward = crc ^ 0xFFFFFFFF
    for byte in reversed(forward.to_bytes(4, "little") + suffix):
        backward = ((backward << 8) & 0xFFFFFFFF) ^ _REVERSE[backward >> 24] ^ byte
    return backward.to_bytes(4, "little")


def collide(genuine: bytes, event: dict[str, Any]) -> bytes:
    """`event` (any PayPal event an attacker wants) as JSON bytes with the same CRC-32 as the
    `genuine` body, so the genuine transmission headers verify over it: four printable bytes
    are forced into the end of its `summary`, whose text is varied until they are."""
    allowed = set(range(0x21, 0x7F)) - {ord('"'), ord("\\")}
    event = dict(event)
    for n in range(100_000):
        event["summary"] = f"Payment {n} @@@@"  # four bytes to be forced
        head, _, tail = json.dumps(event, separators=(",", ":")).encode().partition(b"@@@@")
        forced = _force_crc(head, tail, zlib.crc32(genuine))
        if all(b in allowed for b in forced):
            forged = head + forced + tail
            assert zlib.crc32(forged) == zlib.crc32(genuine) and json.loads(forged)
            return forged
    raise AssertionError("no printable collision found")


# --- paywire's store, read through the port ----------------------------------------------


async def read(database_url: str, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Run `fn(uow)` in a transaction of a store of our own."""
    store = open_store(database_url)
    try:
        async with store.transaction() as uow:
            return await fn(uow)
    finally:
        await store.close()


async def order(database_url: str, order_id: str) -> Order:
    """An order (it must exist)."""
    async def get(uow: Any) -> Order:
        found: Order | None = await uow.get_order(order_id)
        assert found is not None, order_id
        return found

    return await read(database_url, get)


async def outbox(database_url: str, order_id: str) -> list[OutboxMessage]:
    """The order's announcements."""
    async def get(uow: Any) -> list[OutboxMessage]:
        return list(await uow.outbox_for_order(order_id))

    return await read(database_url, get)


async def rejections(database_url: str) -> list[WebhookRejection]:
    """The rejection log, newest first."""
    async def get(uow: Any) -> list[WebhookRejection]:
        return list(await uow.list_rejections(limit=1000))

    return await read(database_url, get)


async def inbox(database_url: str, event_id: str) -> InboxEvent | None:
    """A stored event."""
    async def get(uow: Any) -> InboxEvent | None:
        found: InboxEvent | None = await uow.get_inbox_event("paypal", event_id)
        return found

    return await read(database_url, get)


async def truth_tasks(database_url: str) -> list[TruthTask]:
    """Every truth-fetch task."""
    async def get(uow: Any) -> list[TruthTask]:
        return list(await uow.list_truth_tasks(limit=1000))

    return await read(database_url, get)


async def confirmed(database_url: str) -> None:
    """Wait until paywire has confirmed (or given up for now on) every PayPal event it
    answered `confirming`: no confirmation is still waiting for its first run or leased."""
    async def probe() -> bool:
        return not [t for t in await truth_tasks(database_url)
                    if t.id.startswith("paypal:confirm:") and t.status == "pending"
                    and (t.attempts == 0 or t.lease_owner is not None)]

    await eventually(probe, "paywire's confirmations")


async def drain_truth(settings: Settings) -> int:
    """Work off the truth queue with paywire's own wiring until nothing is due."""
    container = await build(settings)
    total = 0
    try:
        while done := await container.truth.run_once():
            total += done
    finally:
        await container.aclose()
    return total


def fact_keys(messages: list[OutboxMessage], names: dict[str, str]) -> set[tuple[str, str]]:
    """(type, key) of the per-fact announcements, ids replaced by the role names in `names`."""
    out = set()
    for m in messages:
        if m.type in PROGRESS:
            continue
        key = m.key
        for raw, name in names.items():
            key = key.replace(raw, name)
        out.add((m.type, key))
    return out


# --- a server that records what reaches it --------------------------------------------------


class Recorder:
    """A loopback HTTP server that answers 200 to anything and remembers every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.server = ServerThread(Starlette(routes=[
            Route("/{path:path}", self._any, methods=["GET", "POST", "HEAD"])]))

    async def _any(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.requests.append((request.method, request.url.path, body,
                                  dict(request.headers)))
        return Response(b"-----BEGIN CERTIFICATE-----\n", media_type="application/x-pem-file")

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.server.url


@dataclass
class Recording:
    """An emulator whose webhook subscription delivers to a recorder: PayPal's genuine
    deliveries, kept from paywire until a test posts them."""

    emulator: EmulatorServer
    recorder: Recorder
    paypal: PayPal
    webhook_id: str

    @property
    def hook(self) -> str:
        """Where PayPal delivers (the recorder)."""
        return f"{self.recorder.url}/hook"

    def held(self, needle: str, event_type: str) -> Delivery:
        """A genuine delivery PayPal sent about `needle`, held back from paywire."""
        found = [delivery(t) for t in transmissions(self.emulator, self.hook)
                 if t.event_type == event_type and needle in t.body.decode()]
        assert found, f"no {event_type} delivery about {needle}"
        return found[0]

    def deliveries(self) -> list[Delivery]:
        """Every delivery sent so far, in the order first sent."""
        sent = sorted(transmissions(self.emulator, self.hook), key=lambda t: t.first_time)
        return [delivery(t) for t in sent]


@contextmanager
def recording(config: EmulatorConfig) -> Iterator[Recording]:
    """An emulator on `config` and a recorder subscribed to every event type, both stopped on
    exit."""
    emulator = EmulatorServer(config)
    recorder = Recorder()
    emulator.start()
    recorder.server.start()
    try:
        paypal = PayPal(emulator, CLIENT_ID, CLIENT_SECRET)
        webhook_id = asyncio.run(paypal.subscribe(f"{recorder.url}/hook"))
        yield Recording(emulator, recorder, paypal, webhook_id)
    finally:
        recorder.server.stop()
        emulator.stop()
