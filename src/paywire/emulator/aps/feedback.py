"""Feedback delivery: direct transaction feedback and notification feedback, with retries.

Each feedback is one signed parameter set POSTed to the channel's configured URL (JSON, or
form-encoded when configured), serialized once: every retry carries the same bytes, as a
redelivery by APS would. A 2xx or 302 answer counts as received (APS's documented rule); any
other answer or a network failure is retried on `feedback_retry_delays` (an assumption,
labelled in the config) scaled by `feedback_time_scale`.

Fault rules (`paywire.emulator.faults`, target "webhook") match `event_type` against
`<channel>:<command>` (e.g. `notification:REFUND`) and `url` against the URL, drawn once per
attempt: `drop` loses the feedback for good (APS thinks it delivered), `duplicate` sends the
attempt twice at once, `delay` holds it `seconds`, `reorder` holds it until the next feedback to
the same URL has been answered (or `seconds`, when set).

The deliverer binds to the event loop lazily (on the first feedback sent from it) because a
mounted sub-application gets no lifespan events; `start`/`stop` are there for an owner that
has them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

from paywire.emulator.aps.config import ApsEmulatorConfig
from paywire.emulator.clock import EmulatorClock
from paywire.emulator.faults import FaultInjector

log = logging.getLogger("paywire.emulator.aps.feedback")
CHANNELS = ("direct", "notification")


def encode(params: dict[str, str], feedback_format: str) -> tuple[bytes, str]:
    """A feedback's body and content type: JSON, or form-encoded (`feedback_format="form"`)."""
    if feedback_format == "form":
        return urlencode(params).encode(), "application/x-www-form-urlencoded"
    return (json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode(),
            "application/json")


@dataclass
class Feedback:
    """One signed feedback to one URL, and how its delivery went."""

    id: str
    channel: str
    url: str
    command: str
    merchant_reference: str
    params: dict[str, str]
    body: bytes = field(repr=False)
    content_type: str
    created_at: float
    status: str = "pending"  # pending | delivered | failed | dropped
    attempts: int = 0
    last_status: int | None = None

    @property
    def event_type(self) -> str:
        """What fault rules match: `<channel>:<command>`."""
        return f"{self.channel}:{self.command}"

    def to_json(self) -> dict[str, Any]:
        """The feedback for the control API."""
        return {"id": self.id, "channel": self.channel, "url": self.url,
                "command": self.command, "merchant_reference": self.merchant_reference,
                "params": self.params, "content_type": self.content_type,
                "status": self.status, "attempts": self.attempts,
                "last_status": self.last_status, "created_at": self.created_at}


@dataclass
class Attempt:
    """One HTTP attempt (or a dropped one)."""

    feedback_id: str
    channel: str
    url: str
    attempt: int
    started_at: float
    finished_at: float
    status: int | None = None
    error: str | None = None
    fault: str | None = None
    body: bytes = field(default=b"", repr=False)

    def to_json(self) -> dict[str, Any]:
        """The attempt for the control API (the body as text and base64)."""
        return {"feedback_id": self.feedback_id, "channel": self.channel, "url": self.url,
                "attempt": self.attempt, "status": self.status, "error": self.error,
                "fault": self.fault, "started_at": self.started_at,
                "finished_at": self.finished_at, "body": self.body.decode("utf-8", "replace"),
                "body_base64": base64.b64encode(self.body).decode()}


class FeedbackHost(Protocol):
    """What the deliverer reads of the APS state (`state.ApsState`, which makes the deliverer:
    naming it here would be an import loop)."""

    config: ApsEmulatorConfig
    clock: EmulatorClock
    faults: FaultInjector
    lock: threading.RLock


class FeedbackDeliverer:
    """Sends feedback from background tasks on the app's event loop."""

    def __init__(self, state: FeedbackHost) -> None:
        self.state = state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0
        self.feedback: list[Feedback] = []
        self.attempts: list[Attempt] = []
        self._backlog: list[Feedback] = []
        self._held: dict[str, list[asyncio.Event]] = {}

    async def start(self) -> None:
        """Bind to the running loop and send whatever was queued before."""
        self._bind()

    async def stop(self) -> None:
        """Cancel pending deliveries and close the HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._loop = None

    def reset(self) -> None:
        """Forget pending deliveries and the logs."""
        self._generation += 1
        tasks = list(self._tasks)
        if tasks and self._loop is not None and not self._on_loop():
            self._loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks])
        else:
            for task in tasks:
                task.cancel()
        self.feedback, self.attempts, self._backlog, self._held = [], [], [], {}

    def send(self, channel: str, params: dict[str, str]) -> Feedback | None:
        """Queue a signed feedback on `channel`; None when the channel has no URL."""
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}")
        cfg = self.state.config
        url = cfg.direct_feedback_url if channel == "direct" else cfg.notification_feedback_url
        if not url:
            return None
        body, ctype = encode(params, cfg.feedback_format)
        fb = Feedback(id="FB-" + secrets.token_hex(8), channel=channel, url=url,
                      command=params.get("command") or params.get("service_command") or "",
                      merchant_reference=params.get("merchant_reference", ""), params=params,
                      body=body, content_type=ctype, created_at=self.state.clock.now())
        self.feedback.append(fb)
        if self._loop is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                self._backlog.append(fb)  # sent once a loop binds
                return fb
            self._bind()
        if self._on_loop():
            self._spawn(fb)
        else:
            assert self._loop is not None  # noqa: S101 - bound above or earlier
            self._loop.call_soon_threadsafe(self._spawn, fb)
        return fb

    # -- internals -------------------------------------------------------------------------

    def _bind(self) -> None:
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        # trust_env=False: a developer's HTTP(S)_PROXY must not swallow loopback deliveries.
        self._client = httpx.AsyncClient(timeout=self.state.config.feedback_timeout_seconds,
                                         follow_redirects=False, trust_env=False)
        backlog, self._backlog = self._backlog, []
        for fb in backlog:
            self._spawn(fb)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _spawn(self, fb: Feedback) -> None:
        assert self._loop is not None  # noqa: S101 - only called once bound
        task = self._loop.create_task(self._run(fb, self._generation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, fb: Feedback, generation: int) -> None:
        delays = self.state.config.feedback_retry_delays
        try:
            for attempt in range(1, len(delays) + 2):
                outcome = await self._attempt(fb, attempt, generation)
                if outcome in ("delivered", "dropped"):
                    fb.status = outcome
                    return
                if attempt <= len(delays):
                    await asyncio.sleep(delays[attempt - 1] * self.state.config.feedback_time_scale)
            fb.status = "failed"
        except Exception:  # a background task must never die silently
            log.exception("APS feedback %s to %s failed", fb.id, fb.url)
            fb.status = "failed"

    async def _attempt(self, fb: Feedback, attempt: int, generation: int) -> str:
        fb.attempts = attempt
        with self.state.lock:
            rules = {r.action: r for r in self.state.faults.for_delivery(fb.event_type, fb.url)}
        if "drop" in rules:
            now = self.state.clock.now()
            self._record(generation, Attempt(fb.id, fb.channel, fb.url, attempt, now, now,
                                             error="dropped by fault rule", fault="drop",
                                             body=fb.body))
            return "dropped"
        if "delay" in rules:
            await asyncio.sleep(rules["delay"].seconds)
        if "reorder" in rules:
            await self._hold(fb.url, rules["reorder"].seconds)
        fault = next((a for a in ("duplicate", "reorder", "delay") if a in rules), None)
        copies = 2 if "duplicate" in rules else 1
        statuses = await asyncio.gather(*(self._post(fb, attempt, generation, fault)
                                          for _ in range(copies)))
        self._release(fb.url)
        received = [s for s in statuses if s is not None and (200 <= s < 300 or s == 302)]
        fb.last_status = received[0] if received else next(
            (s for s in statuses if s is not None), None)
        return "delivered" if received else "failed"

    async def _post(self, fb: Feedback, attempt: int, generation: int,
                    fault: str | None) -> int | None:
        assert self._client is not None  # noqa: S101 - tasks run only while bound
        started = self.state.clock.now()
        status: int | None = None
        error: str | None = None
        try:
            resp = await self._client.post(fb.url, content=fb.body,
                                           headers={"Content-Type": fb.content_type})
            status = resp.status_code
        except httpx.TimeoutException:
            error = "timeout"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._record(generation, Attempt(fb.id, fb.channel, fb.url, attempt, started,
                                         self.state.clock.now(), status, error, fault, fb.body))
        return status

    def _record(self, generation: int, attempt: Attempt) -> None:
        if generation == self._generation:  # else the log was reset meanwhile
            self.attempts.append(attempt)

    async def _hold(self, url: str, max_seconds: float) -> None:
        gate = asyncio.Event()
        self._held.setdefault(url, []).append(gate)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.wait(), max_seconds if max_seconds > 0 else None)

    def _release(self, url: str) -> None:
        for gate in self._held.pop(url, []):
            gate.set()
