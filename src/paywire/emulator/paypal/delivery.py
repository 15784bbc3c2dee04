"""Signed webhook delivery: one transmission per (event, webhook), retried on PayPal's schedule.

Transmission ids: PayPal's event detail (`GET /v1/notifications/webhooks-events/{id}`) lists one
`transmissions[]` entry per webhook URL with a single `transmission_id` and the time of the first
attempt, while its `http_status` follows the latest retry. So a retry re-sends the same
transmission: same id, same `PAYPAL-TRANSMISSION-TIME`, same signature, same body bytes. Only a
resend (`/resend`) starts a new transmission. A receiver that refuses old transmission times
therefore refuses late retries too; that is PayPal's behaviour, not the emulator's.

Fault rules are drawn once per attempt: `drop` loses the transmission for good (no retry; to
PayPal it looks delivered, so `/resend` can recover it), `duplicate` sends the attempt twice at
once, `delay` holds it `seconds` real seconds, `reorder` holds it until the next delivery to the
same URL has been answered (or `seconds`, when set, as a release valve).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from paywire.emulator.clock import EmulatorClock, iso
from paywire.emulator.faults import FaultInjector
from paywire.emulator.paypal.config import PayPalConfig
from paywire.emulator.paypal.signing import (
    AUTH_ALGO,
    CERT_PATH,
    SANDBOX_CERT_HOST,
    Pki,
    generate_pki,
    sign,
)
from paywire.emulator.paypal.subscriptions import Webhook

log = logging.getLogger("paywire.emulator.paypal.delivery")

# Deliveries in flight at once; the rest wait their turn on a semaphore.
MAX_CONCURRENT_SENDS = 32
# PayPal: "up to 25 times over 3 days". The exact spacing is not published; this backs off from
# seconds to 5-hour gaps: 24 waits between 25 attempts, 259,410 s in all (3 days + 3.5 minutes).
RETRY_DELAYS: tuple[float, ...] = (
    30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 7200, 10800, 10800, *([18000.0] * 12))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
USER_AGENT = "PayPal/AUHD-214.0-58327498"
# Simulator events are signed for this id, never a subscription's, so neither local nor
# postback verification accepts them (as with PayPal's simulator).
SIMULATOR_WEBHOOK_ID = "WEBHOOKSIMULATOR"


@dataclass
class DeliveryAttempt:
    """One HTTP attempt (or one dropped attempt), as sent."""

    event_id: str
    webhook_id: str | None
    url: str
    attempt: int
    transmission_id: str
    body: bytes = field(repr=False)
    headers: dict[str, str]
    started_at: float
    finished_at: float
    status: int | None = None
    error: str | None = None
    fault: str | None = None
    simulated: bool = False

    def to_json(self) -> dict[str, Any]:
        """The attempt for the control API: body as text and as base64."""
        return {
            "event_id": self.event_id, "webhook_id": self.webhook_id, "url": self.url,
            "attempt": self.attempt, "transmission_id": self.transmission_id,
            "body": self.body.decode("utf-8", "replace"),
            "body_base64": base64.b64encode(self.body).decode(),
            "headers": self.headers, "status": self.status, "error": self.error,
            "fault": self.fault, "simulated": self.simulated,
            "started_at": _iso_ms(self.started_at), "finished_at": _iso_ms(self.finished_at),
        }


@dataclass
class Transmission:
    """One signed delivery of an event to one URL, and its retries."""

    id: str
    event_id: str
    event_type: str
    url: str
    webhook_id: str | None  # the subscription (None: simulated to a bare URL)
    body: bytes = field(repr=False)
    headers: dict[str, str]
    first_time: float
    simulated: bool = False
    status: str = "PENDING"  # PENDING | SUCCESS | FAILED
    attempts: int = 0
    last_status: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry in an event's `transmissions[]`."""
        out: dict[str, Any] = {"webhook_url": self.url, "transmission_id": self.id,
                               "status": self.status, "timestamp": iso(self.first_time)}
        if self.last_status is not None:
            out["http_status"] = self.last_status
        return out


def _iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


def serialize(event: dict[str, Any]) -> bytes:
    """An event's body bytes: compact JSON, UTF-8, as PayPal sends it."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def transmission_id() -> str:
    """A fresh transmission id: PayPal's are time-based UUIDs (a random node keeps the host's
    MAC address out)."""
    return str(uuid.uuid1(node=secrets.randbits(48)))


def transmission_headers(pki: Pki, cert_url: str, transmission_id: str,
                         transmission_time: str, webhook_id: str, body: bytes) -> dict[str, str]:
    """The headers of one signed transmission of `body` for `webhook_id`, as PayPal sends them
    (also what `paywire.testing` signs a test's own deliveries with)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": transmission_time,
        "PAYPAL-TRANSMISSION-SIG": sign(pki.leaf_key, transmission_id, transmission_time,
                                        webhook_id, body),
        "PAYPAL-CERT-URL": cert_url,
        "PAYPAL-AUTH-ALGO": AUTH_ALGO,
        "PAYPAL-AUTH-VERSION": "v2",
    }


def base_url_of(event: dict[str, Any]) -> str | None:
    """The base URL an event's own `self` link was built with."""
    for link in event.get("links", []):
        href = link.get("href", "") if isinstance(link, dict) else ""
        if link.get("rel") == "self" and "/v1/notifications/" in href:
            return str(href.split("/v1/notifications/", 1)[0])
    return None


class DeliveryHost(Protocol):
    """What the deliverer reads of the emulator's state (`state.EmulatorState`, which makes the
    deliverer: naming it here would be an import loop)."""

    config: PayPalConfig
    clock: EmulatorClock
    faults: FaultInjector
    events: dict[str, dict[str, Any]]
    webhooks: dict[str, Webhook]


class WebhookDeliverer:
    """Delivers events to subscribed URLs from background tasks on the app's event loop."""

    def __init__(self, emu: DeliveryHost) -> None:
        self.emu = emu
        self._pki: Pki | None = None
        self._pki_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0
        self.log: list[DeliveryAttempt] = []
        self.transmissions: dict[str, list[Transmission]] = {}  # event id -> transmissions
        self.bodies: dict[str, bytes] = {}  # event id -> the bytes every transmission sends
        self.simulated: set[str] = set()  # ids of simulator events (postback says FAILURE)
        self.issued_cert_urls: set[str] = set()
        self._backlog: list[Transmission] = []
        self._held: dict[str, list[asyncio.Event]] = {}  # url -> reordered attempts waiting
        self._sends: asyncio.Semaphore | None = None

    @property
    def pki(self) -> Pki:
        """The signing PKI, generated on first use (once per app; tests that never touch
        webhooks then never pay for two RSA keys)."""
        with self._pki_lock:
            if self._pki is None:
                self._pki = generate_pki(self.emu.clock.now_dt(),
                                         self.emu.config.cert_host or SANDBOX_CERT_HOST)
            return self._pki

    def cert_url(self, base_url: str) -> str:
        """Where the signing certificate is served, PayPal-style."""
        return f"{base_url.rstrip('/')}{CERT_PATH}{self.pki.cert_id}"

    async def start(self) -> None:
        """Bind to the running loop and send whatever was enqueued before start."""
        self._loop = asyncio.get_running_loop()
        # trust_env=False: a developer's HTTP(S)_PROXY must not swallow loopback deliveries.
        self._client = httpx.AsyncClient(
            timeout=self.emu.config.webhook_timeout_seconds, follow_redirects=False,
            trust_env=False, limits=httpx.Limits(max_connections=MAX_CONCURRENT_SENDS,
                                                 max_keepalive_connections=MAX_CONCURRENT_SENDS))
        self._sends = asyncio.Semaphore(MAX_CONCURRENT_SENDS)
        backlog, self._backlog = self._backlog, []
        for tr in backlog:
            self._spawn(tr)

    async def stop(self) -> None:
        """Cancel every pending delivery and close the HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None

    def reset(self) -> None:
        """Forget pending deliveries, transmissions and the delivery log (keys stay)."""
        self._generation += 1
        self._cancel_tasks()
        self.log = []
        self.transmissions = {}
        self.bodies = {}
        self.simulated = set()
        self.issued_cert_urls = set()
        self._backlog = []
        self._held = {}

    def enqueue(self, event: dict[str, Any], client_id: str) -> None:
        """Deliver `event` to every webhook of `client_id` subscribed to its type (thread-safe)."""
        if self._loop is not None and not self._on_loop():
            self._loop.call_soon_threadsafe(self._enqueue_now, event, client_id)
        else:
            self._enqueue_now(event, client_id)

    def resend(self, event_id: str, webhooks: list[Webhook]) -> None:
        """New transmissions of a stored event; webhooks with one still pending are skipped."""
        event = self.emu.events[event_id]
        pending = {t.webhook_id for t in self.transmissions.get(event_id, [])
                   if t.status == "PENDING"}
        for wh in webhooks:
            if wh.id not in pending:
                self._transmit(event, wh.url, wh.id, wh.id, simulated=False)

    def simulate(self, event: dict[str, Any], url: str, webhook_id: str | None) -> None:
        """Deliver a mock event (not stored, not verifiable) to one URL."""
        self.simulated.add(event["id"])
        self._transmit(event, url, webhook_id, SIMULATOR_WEBHOOK_ID, simulated=True)

    def status_of(self, event_id: str) -> tuple[str | None, list[dict[str, Any]]]:
        """An event's delivery status and `transmissions[]` for the events API."""
        trs = self.transmissions.get(event_id, [])
        if not trs:
            return None, []
        states = {t.status for t in trs}
        status = "PENDING" if "PENDING" in states else "FAILED" if "FAILED" in states else (
            "SUCCESS")
        return status, [t.to_json() for t in trs]

    # -- internals -------------------------------------------------------------------------

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        if not tasks:
            return
        if self._loop is None or self._on_loop():
            for task in tasks:
                task.cancel()
        else:
            self._loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks])

    def _enqueue_now(self, event: dict[str, Any], client_id: str) -> None:
        for wh in list(self.emu.webhooks.values()):
            if wh.client_id == client_id and ("*" in wh.event_types
                                              or event.get("event_type") in wh.event_types):
                self._transmit(event, wh.url, wh.id, wh.id, simulated=False)

    def _transmit(self, event: dict[str, Any], url: str, webhook_id: str | None,
                  signing_id: str, *, simulated: bool) -> Transmission:
        event_id = str(event["id"])
        body = self.bodies.get(event_id)
        if body is None:  # serialize once: every retry and resend carries the same bytes
            body = self.bodies[event_id] = serialize(event)
        base = self.emu.config.public_base_url or base_url_of(event) or "http://127.0.0.1:8090"
        cert_url = self.cert_url(base)
        self.issued_cert_urls.add(cert_url)
        now = self.emu.clock.now()
        tid = transmission_id()
        headers = transmission_headers(self.pki, cert_url, tid, iso(now), signing_id, body)
        tr = Transmission(id=tid, event_id=event_id, event_type=str(event.get("event_type")),
                          url=url, webhook_id=webhook_id, body=body, headers=headers,
                          first_time=now, simulated=simulated)
        self.transmissions.setdefault(event_id, []).append(tr)
        self._spawn(tr)
        return tr

    def _spawn(self, tr: Transmission) -> None:
        if self._loop is None:  # not started (no lifespan yet): send once start() runs
            self._backlog.append(tr)
            return
        task = self._loop.create_task(self._run(tr, self._generation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, tr: Transmission, generation: int) -> None:
        try:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                if tr.webhook_id is not None and not tr.simulated and (
                        tr.webhook_id not in self.emu.webhooks):
                    break  # the subscription was deleted: nobody to deliver to any more
                outcome = await self._attempt(tr, attempt, generation)
                if outcome in ("delivered", "dropped"):
                    tr.status = "SUCCESS"
                    return
                if attempt < MAX_ATTEMPTS:
                    scale = self.emu.config.webhook_time_scale
                    await asyncio.sleep(RETRY_DELAYS[attempt - 1] * scale)
            tr.status = "FAILED"
        except Exception:  # a background task must never die silently
            log.exception("webhook delivery %s to %s failed", tr.id, tr.url)
            tr.status = "FAILED"

    async def _attempt(self, tr: Transmission, attempt: int, generation: int) -> str:
        tr.attempts = attempt
        rules = {r.action: r for r in self.emu.faults.for_delivery(tr.event_type, tr.url)}
        if "drop" in rules:
            now = self.emu.clock.now()
            self._record(generation, tr, attempt, now, None, "dropped by fault rule", "drop")
            return "dropped"
        if "delay" in rules:
            await asyncio.sleep(rules["delay"].seconds)
        if "reorder" in rules:
            await self._hold(tr.url, rules["reorder"].seconds)
        fault = next((a for a in ("duplicate", "reorder", "delay") if a in rules), None)
        copies = 2 if "duplicate" in rules else 1
        statuses = await asyncio.gather(
            *(self._send(tr, attempt, generation, fault) for _ in range(copies)))
        self._release(tr.url)
        ok = [s for s in statuses if s is not None and 200 <= s < 300]
        tr.last_status = ok[0] if ok else next((s for s in statuses if s is not None), None)
        return "delivered" if ok else "failed"

    async def _send(self, tr: Transmission, attempt: int, generation: int,
                    fault: str | None) -> int | None:
        assert self._client is not None  # noqa: S101 - tasks only run between start and stop
        started = self.emu.clock.now()
        sent_headers = dict(tr.headers)
        status: int | None = None
        error: str | None = None
        assert self._sends is not None  # noqa: S101 - set with the client
        try:
            request = self._client.build_request("POST", tr.url, content=tr.body,
                                                 headers=tr.headers)
            sent_headers = dict(request.headers)
            # Queue here, not in httpcore's pool: its queue is rescanned per connection event,
            # quadratic in the backlog (a storm's thousands of deliveries pinned one core).
            async with self._sends:
                response = await self._client.send(request)
            status = response.status_code
        except httpx.TimeoutException:
            error = "timeout"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._record(generation, tr, attempt, started, status, error, fault, sent_headers)
        return status

    def _record(self, generation: int, tr: Transmission, attempt: int, started: float,
                status: int | None, error: str | None, fault: str | None,
                headers: dict[str, str] | None = None) -> None:
        if generation != self._generation:
            return  # the log was reset while this attempt was in flight
        self.log.append(DeliveryAttempt(
            event_id=tr.event_id, webhook_id=tr.webhook_id, url=tr.url, attempt=attempt,
            transmission_id=tr.id, body=tr.body, headers=headers or dict(tr.headers),
            started_at=started, finished_at=self.emu.clock.now(), status=status, error=error,
            fault=fault, simulated=tr.simulated))

    async def _hold(self, url: str, max_seconds: float) -> None:
        gate = asyncio.Event()
        self._held.setdefault(url, []).append(gate)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.wait(), max_seconds if max_seconds > 0 else None)

    def _release(self, url: str) -> None:
        for gate in self._held.pop(url, []):
            gate.set()
