"""Storm: N orders through paywire while webhooks misbehave and processes are kill -9'd.

    .venv/bin/python bench/storm.py [--orders 2000] [--seed 1] [--store sqlite|postgres]
                                    [--kills 5] [--faults] [--concurrency 16] [--aps-share 0.5]

Processes (all on free loopback ports): the emulator (PayPal, and APS under `/aps`; webhook and
feedback clocks compressed; fault rules: each delivery duplicated with some probability — so one
to three copies of a PayPal webhook arrive — reordered, delayed, some dropped for good), paywire's
API (`paywire serve`: one process on SQLite, two on PostgreSQL, each with its own PayPal webhook
subscription so every event reaches both; APS's direct feedback goes to the first, its
notification feedback to the last), the outbox worker(s) (`paywire worker`: one on SQLite, two on
PostgreSQL) and, in this process, a shop receiver that verifies every fulfilment callback with
`paywire.verify_delivery` and counts deliveries per message id (`webhook-id`) and per fact (type,
order id[, refund/dispute id, attention reason]).

A share of the orders (`--aps-share`, default 0.5; 0 = PayPal only, as before APS) is paid by
card through Amazon Payment Services: created with `"provider": "aps"`, then a simulated buyer
posts the order's `checkout_form` to the APS emulator's hosted page over HTTP and pays with one of
the test cards — success, a 3-D Secure challenge approved, a decline followed by a second attempt
with a good card (the buyer waits for paywire to open it), uncertain (15777: only CHECK_STATUS
tells it went through), pending (19; resolved later through the emulator's control API). About
half of those are then confirmed through paywire's capture endpoint, the rest left to the
feedback channels and reconciliation (CHECK_STATUS).

The PayPal orders are created through paywire's API, approved at the emulator's control API and
then captured: about half through paywire's API, the rest straight at PayPal (as a merchant's
other tool would), so that only webhooks and reconciliation can tell paywire. Meanwhile API and
worker processes are killed with SIGKILL at random moments and restarted on the same port. At the
end `paywire reconcile` runs until a pass changes nothing, and the harness waits for quiescence
(outbox drained, every emulator transmission and feedback settled, the receiver quiet).

Printed: orders, the final-state histogram, lost (paid at the provider but not COMPLETED in
paywire, or COMPLETED but never announced), stuck (non-final), double fulfilments (one fact under
two message ids), for APS double charges (two successful PURCHASEs for one order), phantom
payments (COMPLETED in paywire, nothing paid at APS) and wrong announcements (an
`order.completed` naming a transaction that is not the order's successful one, e.g. a declined
attempt), redundant redeliveries of one message id and the time to quiescence. Exit 1 unless all
of those are 0. `--faults` adds provider faults (503/429/timeouts) on a share of PayPal calls and
of APS server-to-server calls. The small storm in `tests/integration/test_storm.py` imports this
module.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from benchkit import APS_CONFIG_ENV, aps_emulator_config, aps_pay
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paywire import verify_delivery
from paywire.emulator.aps.cards import CHALLENGE, DECLINE, PENDING, SUCCESS, UNCERTAIN
from paywire.emulator.aps.config import ApsCredentials
from paywire.store.sql import SqlStore
from paywire.testing import ServerThread, free_ports

CLIENT_ID, CLIENT_SECRET = "storm-client-id", "storm-client-secret"
SKU = "mug"
FINAL = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED", "DENIED", "FAILED", "VOIDED",
                   "EXPIRED", "REVERSED"})
PROGRESS = frozenset({"order.approved", "order.authorized"})  # best-effort notices
POSTGRES_SERVER = os.environ.get("PAYWIRE_TEST_POSTGRES_URL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Webhook retries: PayPal's 3-day schedule, compressed (first retry after 0.3 s).
WEBHOOK_TIME_SCALE = 0.01
WEBHOOK_FAULTS = [
    {"target": "webhook", "action": "duplicate", "probability": 0.35},
    {"target": "webhook", "action": "duplicate", "probability": 0.25},
    {"target": "webhook", "action": "reorder", "probability": 0.2, "seconds": 2.0},
    {"target": "webhook", "action": "drop", "probability": 0.1},
]
PROVIDER_PATHS = r"/v[12]/(checkout|payments|oauth2).*"
HTTP_FAULTS = [
    {"target": "http", "path": PROVIDER_PATHS, "action": "error", "status": 503,
     "probability": 0.05},
    {"target": "http", "path": PROVIDER_PATHS, "action": "error", "status": 429,
     "probability": 0.03},
    {"target": "http", "path": PROVIDER_PATHS, "action": "timeout", "seconds": 4.0,
     "probability": 0.01},
]
RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# APS feedback retries: the emulator's assumed schedule (10 x 10 s), compressed (0.5 s apart).
APS_FEEDBACK_TIME_SCALE = 0.05
APS_FEEDBACK_FAULTS = [  # per attempt; one duplicate rule (APS's deliverer sends 1 or 2 copies)
    {"target": "webhook", "action": "duplicate", "probability": 0.4},
    {"target": "webhook", "action": "reorder", "probability": 0.2, "seconds": 2.0},
    {"target": "webhook", "action": "delay", "probability": 0.1, "seconds": 1.0},
    {"target": "webhook", "action": "drop", "probability": 0.1},
]
APS_API_PATH = r"^/FortAPI/paymentApi"  # server-to-server only; the buyer's pages stay up
APS_HTTP_FAULTS = [
    {"target": "http", "path": APS_API_PATH, "action": "error", "status": 503,
     "probability": 0.05},
    # processed at once, answered after paywire's 3 s timeout: the uncertain case
    {"target": "http", "path": APS_API_PATH, "action": "latency", "seconds": 4.0,
     "probability": 0.01},
]
# The cards APS buyers pay with (behaviour, weight); DECLINE is followed by a second attempt.
APS_CARD_MIX = [(SUCCESS, 0.3), (CHALLENGE, 0.2), (DECLINE, 0.2), (UNCERTAIN, 0.15),
                (PENDING, 0.15)]
APS_EMAIL = "buyer-{n}@storm.example"


@dataclass
class StormConfig:
    """One storm's shape."""

    orders: int = 2000
    seed: int = 1
    store: str = "sqlite"  # or "postgres"
    kills: int = 5
    faults: bool = False
    concurrency: int = 16
    quiesce_timeout: float = 600.0
    aps_share: float = 0.5  # share of the orders paid by card through APS (0: PayPal only)
    log: Callable[[str], None] = field(default=lambda line: None)


@dataclass
class StormResult:
    """What the storm found."""

    config: StormConfig
    orders: int
    histogram: dict[str, int]
    lost: list[str]  # paid at PayPal, not COMPLETED in paywire
    unannounced: list[str]  # COMPLETED in paywire, order.completed never reached the shop
    stuck: list[str]  # non-final in paywire
    double: dict[tuple[str, ...], list[str]]  # fact -> its message ids (more than one)
    double_progress: int  # progress notices (order.approved) under two message ids
    deliveries: int
    messages: int
    redundant: int  # deliveries beyond the first of each message id
    forged: int  # callbacks that failed verification
    kills: list[str]
    load_seconds: float
    quiesce_seconds: float
    quiet: bool
    reconcile_passes: int
    api_captures: int
    direct_captures: int
    errors: list[str]
    webhook_deliveries: int = 0
    webhook_faults: dict[str, int] = field(default_factory=dict)
    aps: ApsFigures | None = None  # None: a PayPal-only storm
    message_types: dict[str, int] = field(default_factory=dict)  # message ids per type
    # order id -> its history, for the orders found wrong (evidence for a bug report)
    evidence: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """0 lost, 0 stuck, 0 double fulfilments (nor, on APS, double charges, phantom
        payments or announcements of the wrong transaction), and quiescence reached."""
        aps_bad = self.aps is not None and self.aps.bad
        return not (self.lost or self.unannounced or self.stuck or self.double
                    or aps_bad) and self.quiet

    def lines(self) -> list[str]:
        """The report."""
        c = self.config
        hist = ", ".join(f"{k} {v}" for k, v in sorted(self.histogram.items()))
        out = [
            f"storm: {self.orders} orders, store {c.store} "
            f"({'2 API + 2 worker processes' if c.store == 'postgres' else '1 API + 1 worker'}),"
            f" seed {c.seed}, provider faults {'on' if c.faults else 'off'}, "
            f"on a {os.cpu_count()}-core machine (CI machines have 2 cores)",
            f"  captures: {self.api_captures} through paywire's API, {self.direct_captures} "
            f"straight at PayPal or left to APS's feedback (webhooks + reconciliation only)",
            f"  kill -9: {len(self.kills)} ({', '.join(self.kills) or 'none'})",
            f"  PayPal webhook attempts: {self.webhook_deliveries} "
            f"(faults: {', '.join(f'{k} {v}' for k, v in sorted(self.webhook_faults.items()))})",
            *(self.aps.lines() if self.aps is not None else ["  APS: off (PayPal only)"]),
            f"  final states: {hist}",
            f"  lost: {len(self.lost)} (paid at the provider, not COMPLETED in paywire)"
            + (f" e.g. {self.lost[:5]}" if self.lost else ""),
            f"  unannounced: {len(self.unannounced)} (COMPLETED, order.completed never reached "
            "the shop)" + (f" e.g. {self.unannounced[:5]}" if self.unannounced else ""),
            f"  stuck: {len(self.stuck)} (non-final)"
            + (f" e.g. {self.stuck[:5]}" if self.stuck else ""),
            f"  double fulfilments: {len(self.double)} (one fact under two message ids)"
            + (f" e.g. {list(self.double.items())[:3]}" if self.double else ""),
            f"  double progress notices: {self.double_progress} (order.approved/authorized)",
            f"  shop messages by type: "
            f"{', '.join(f'{k} {v}' for k, v in sorted(self.message_types.items()))}",
            f"  shop deliveries: {self.deliveries} of {self.messages} message ids; redundant "
            f"redeliveries of one message id: {self.redundant}; forged/unverifiable: "
            f"{self.forged}",
            f"  load phase {self.load_seconds:.1f} s; time to quiescence "
            f"{self.quiesce_seconds:.1f} s{'' if self.quiet else ' (NOT QUIET: timed out)'}; "
            f"reconcile passes {self.reconcile_passes}",
        ]
        if self.errors:
            out.append(f"  harness errors: {len(self.errors)}, e.g. {self.errors[:3]}")
        for order_id, history in list(self.evidence.items())[:3]:
            out.append(f"  history of {order_id}:")
            out.extend(f"    {line}" for line in history)
        out.append("  PASS" if self.ok else "  FAIL")
        return out


@dataclass
class ApsFigures:
    """The APS half of a storm."""

    orders: int
    cards: dict[str, int]  # behaviour of the first card -> orders
    confirmed_via_api: int  # the shop called paywire's capture after the buyer paid
    declined_attempts: int  # attempts declined at APS (each followed by a second one)
    attempts_skipped: dict[str, int]  # order id -> attempt numbers paywire jumped over
    double_charged: dict[str, int]  # order id -> successful PURCHASEs (more than one)
    phantom: list[str]  # COMPLETED in paywire, nothing captured at APS
    wrong_capture: dict[str, list[str]]  # order id -> announced capture ids not its payment
    feedback: dict[str, int]  # feedbacks APS sent, by how each ended (delivered/dropped/failed)
    feedback_attempts: int
    feedback_faults: dict[str, int]
    feedback_outcomes: dict[str, int]  # attempts by HTTP status or error
    check_status_calls: int
    http_faults: dict[str, int]  # APS server-to-server faults fired (`--faults`)
    resolved_pending: int
    returns_verified: int  # buyer returns posted to /v1/aps/return and shown as verified

    @property
    def bad(self) -> bool:
        """Anything that must be 0."""
        return bool(self.double_charged or self.phantom or self.wrong_capture)

    def lines(self) -> list[str]:
        """The APS part of the report."""
        cards = ", ".join(f"{k} {v}" for k, v in sorted(self.cards.items()))
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.feedback_faults.items()))
        return [
            f"  APS: {self.orders} orders (first card: {cards}); {self.declined_attempts} "
            f"declined attempts, each followed by a second; {self.resolved_pending} pending "
            f"resolved at the back office; {self.confirmed_via_api} confirmed through paywire's "
            "capture, the rest by feedback + reconciliation only",
            f"  APS feedback: {sum(self.feedback.values())} sent ("
            f"{', '.join(f'{k} {v}' for k, v in sorted(self.feedback.items()))}), "
            f"{self.feedback_attempts} attempts (faults: "
            f"{faults or 'none'}; outcomes: "
            f"{', '.join(f'{k} {v}' for k, v in sorted(self.feedback_outcomes.items()))}); "
            f"CHECK_STATUS calls {self.check_status_calls}; buyer returns verified "
            f"{self.returns_verified}"
            + (f"; APS API faults fired: "
               f"{', '.join(f'{k} {v}' for k, v in sorted(self.http_faults.items()))}"
               if self.http_faults else ""),
            f"  APS double charges: {len(self.double_charged)}"
            + (f" e.g. {list(self.double_charged.items())[:3]}" if self.double_charged else "")
            + f"; phantom payments: {len(self.phantom)}"
            + (f" e.g. {self.phantom[:3]}" if self.phantom else "")
            + f"; announced with the wrong transaction: {len(self.wrong_capture)}"
            + (f" e.g. {list(self.wrong_capture.items())[:3]}" if self.wrong_capture else ""),
            f"  APS attempts skipped: {len(self.attempts_skipped)} (one decline opened more "
            "than one new attempt)"
            + (f" e.g. {list(self.attempts_skipped.items())[:3]}"
               if self.attempts_skipped else ""),
        ]


# --- the shop's receiver -------------------------------------------------------------------


class Receiver:
    """The shop's fulfilment endpoint: verifies each callback, counts by message id and fact."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.by_message: Counter[str] = Counter()
        self.by_fact: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self.types: dict[str, str] = {}
        self.completed_captures: dict[str, set[str]] = defaultdict(set)  # order id -> ids
        self.forged = 0
        self.last = time.monotonic()
        self._lock = threading.Lock()
        self.server = ServerThread(Starlette(routes=[
            Route("/fulfilment", self._receive, methods=["POST"])]))

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.last = time.monotonic()
            try:
                d = verify_delivery(body, dict(request.headers), self.secret,
                                    seen=lambda mid: mid in self.by_message)
            except Exception:  # noqa: BLE001 - any refusal is counted as forged
                self.forged += 1
                return Response(status_code=400)
            self.by_message[d.id] += 1
            self.types[d.id] = d.type
            self.by_fact[fact_key(d.type, d.order_id, d.data)].add(d.id)
            if d.type == "order.completed":
                self.completed_captures[d.order_id].add(str(d.data.get("capture_id")))
        return Response(status_code=204)

    @property
    def url(self) -> str:
        """Where paywire delivers."""
        return f"{self.server.url}/fulfilment"


def fact_key(kind: str, order_id: str, data: dict[str, Any]) -> tuple[str, ...]:
    """(type, order id[, refund/dispute id, attention reason]): what one fact is (an order is
    flagged once per reason)."""
    names = ("refund_id", "dispute_id") + (("reason",) if kind == "order.needs_attention" else ())
    extra = [str(data[k]) for k in names if data.get(k)]
    return (kind, order_id, *extra)


# --- processes ---------------------------------------------------------------------------


PAYWIRE_CLI = [sys.executable, "-c", "from paywire.cli import main; main()"]
# `paywire emulator` plus a known APS merchant account and feedback URLs (see benchkit).
EMULATOR_WITH_APS = [sys.executable, str(Path(__file__).resolve().with_name("benchkit.py"))]


class Proc:
    """One paywire child process that can be killed and restarted on the same port."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path,
                 health: str | None, program: list[str] | None = None) -> None:
        self.name, self.args, self.env, self.health = name, args, env, health
        self.program = program or PAYWIRE_CLI
        self.logfile = logdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn it (output appended to its log file)."""
        with self.logfile.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
                [*self.program, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT)

    async def wait_up(self, limit: float = 60.0) -> None:
        """Until its health URL answers (API) or a moment has passed (worker)."""
        assert self.proc is not None
        if self.health is None:
            await asyncio.sleep(0.2)
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                   f"see {self.logfile}")
            return
        deadline = time.monotonic() + limit
        async with httpx.AsyncClient(timeout=2) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                                       f"see {self.logfile}")
                with contextlib.suppress(httpx.TransportError):
                    await c.get(self.health)
                    return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not come up within {limit:.0f} s")

    def kill9(self) -> None:
        """SIGKILL, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()


def base_env() -> dict[str, str]:
    """This environment without any PAYWIRE_* variable (and no proxies for loopback)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("PAYWIRE_") and k.lower() not in ("http_proxy", "https_proxy",
                                                                   "all_proxy")}


def paywire_env(database_url: str, emulator_url: str, data_dir: Path, receiver: Receiver,
                webhook_id: str | None) -> dict[str, str]:
    """Settings for every paywire process of the storm (fast reconciliation and retries)."""
    env = base_env()
    env.update({
        "PAYWIRE_DATABASE_URL": database_url, "PAYWIRE_DATA_DIR": str(data_dir),
        "PAYWIRE_PAYPAL_ENV": "emulator", "PAYWIRE_PAYPAL_BASE_URL": emulator_url,
        "PAYWIRE_PAYPAL_CLIENT_ID": CLIENT_ID, "PAYWIRE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
        "PAYWIRE_PAYPAL_TIMEOUT_SECONDS": "3",
        # A crashed request's Idempotency-Key stays locked this long (default 120 s).
        "PAYWIRE_REQUEST_TIMEOUT_SECONDS": "20",
        # ...and a crashed provider call's operation lease (default 120 s): a retry waits it out.
        "PAYWIRE_OPERATION_LEASE_SECONDS": "20",
        "PAYWIRE_RETURN_URL": "https://shop.example/return",
        "PAYWIRE_CANCEL_URL": "https://shop.example/cancel",
        "PAYWIRE_FULFILMENT_URL": receiver.url, "PAYWIRE_FULFILMENT_SECRET": receiver.secret,
        "PAYWIRE_FULFILMENT_TIMEOUT_SECONDS": "5",
        "PAYWIRE_OUTBOX_INTERVAL_SECONDS": "0.2", "PAYWIRE_OUTBOX_LEASE_SECONDS": "10",
        "PAYWIRE_OUTBOX_BASE_DELAY_SECONDS": "0.5", "PAYWIRE_OUTBOX_MAX_DELAY_SECONDS": "5",
        "PAYWIRE_RECONCILE_INTERVAL_SECONDS": "2",
        "PAYWIRE_RECONCILE_CREATED_AFTER_SECONDS": "3",
        "PAYWIRE_RECONCILE_APPROVED_AFTER_SECONDS": "3",
        "PAYWIRE_RECONCILE_PENDING_AFTER_SECONDS": "3",
        "PAYWIRE_RECONCILE_BACKOFF_BASE_SECONDS": "1",
        "PAYWIRE_RECONCILE_BACKOFF_MAX_SECONDS": "5",
        "PAYWIRE_TRUTH_FETCH_INTERVAL_SECONDS": "1",
        "PAYWIRE_TRUTH_FETCH_LEASE_SECONDS": "10",
        "PAYWIRE_TRUTH_FETCH_BASE_DELAY_SECONDS": "1",
        "PAYWIRE_TRUTH_FETCH_MAX_DELAY_SECONDS": "5",
        "PAYWIRE_TRUTH_FETCH_MAX_ATTEMPTS": "100",
    })
    if webhook_id is not None:
        env["PAYWIRE_PAYPAL_WEBHOOK_ID"] = webhook_id
    return env


@contextlib.contextmanager
def database(store: str, data_dir: Path) -> Iterator[str]:
    """The storm's database: SQLite in `data_dir`, or a fresh PostgreSQL database (dropped)."""
    if store == "sqlite":
        yield f"sqlite+aiosqlite:///{data_dir / 'paywire.db'}"
        return
    server = sa.make_url(POSTGRES_SERVER)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"paywire_storm_{secrets.token_hex(5)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run_cli(env: dict[str, str], *args: str,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`paywire ARGS` to completion."""
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-c", "from paywire.cli import main; main()", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False)


# --- talking to the emulator and paywire -----------------------------------------------------


async def retrying(what: str, call: Callable[[], Awaitable[httpx.Response]],
                   ok: Callable[[httpx.Response], bool], deadline: float = 180.0
                   ) -> httpx.Response:
    """Call until `ok`, retrying transport errors and retryable statuses (a process may be
    down, a provider fault may surface); other answers fail at once."""
    end = time.monotonic() + deadline
    delay = 0.05
    last = "nothing"
    while time.monotonic() < end:
        try:
            r = await call()
        except httpx.TransportError as exc:
            last = repr(exc)
        else:
            if ok(r):
                return r
            last = f"{r.status_code} {r.text[:300]}"
            if r.status_code not in RETRYABLE:
                raise RuntimeError(f"{what}: {last}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
    raise RuntimeError(f"{what}: gave up after {deadline:.0f} s ({last})")


class PayPal:
    """The emulator's REST API with a cached token (renewed on 401)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.c = client
        self.token: str | None = None

    async def _token(self) -> str:
        if self.token is None:
            r = await retrying("token", lambda: self.c.post(
                "/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET),
                data={"grant_type": "client_credentials"}), lambda r: r.status_code == 200)
            self.token = str(r.json()["access_token"])
        return self.token

    async def call(self, method: str, path: str, body: Any = None, request_id: str | None = None,
                   ok: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
        """A REST call, retried through faults (same PayPal-Request-Id on every try)."""
        async def once() -> httpx.Response:
            headers = {"Authorization": f"Bearer {await self._token()}",
                       "Prefer": "return=representation"}
            if request_id:
                headers["PayPal-Request-Id"] = request_id
            r = await self.c.request(method, path, json=body, headers=headers)
            if r.status_code == 401:
                self.token = None
            return r

        r = await retrying(f"{method} {path}", once,
                           lambda r: r.status_code in ok)
        out: dict[str, Any] = r.json() if r.content else {}
        return out

    async def events_settled(self) -> tuple[int, int]:
        """(transmissions, still pending) over every event; a transmission refused with a 4xx
        (PayPal retries it for days) counts as settled."""
        total = pending = 0
        path: str | None = "/v1/notifications/webhooks-events?page_size=300"
        while path:
            page = await self.call("GET", path)
            for ev in page.get("events", []):
                for t in ev.get("transmissions", []):
                    total += 1
                    status = t.get("http_status")
                    if t.get("status") == "PENDING" and not (
                            status is not None and 400 <= status < 500):
                        pending += 1
            nxt = [lk["href"] for lk in page.get("links", []) if lk.get("rel") == "next"]
            path = httpx.URL(nxt[0]).raw_path.decode() if nxt else None
        return total, pending


@dataclass
class Order:
    """One storm order as the harness knows it."""

    n: int
    id: str = ""
    provider_id: str = ""
    via_api: bool = True
    captured: bool = False
    provider: str = "paypal"
    card: str = ""  # APS: the behaviour of the buyer's first card
    declined: int = 0  # APS: attempts declined
    resolved: bool = False  # APS: a pending payment resolved at the back office
    returned: bool = False  # APS: the buyer's return was posted to paywire and verified
    skipped: int = 0  # APS: attempts paywire skipped (one decline counted more than once)


class Storm:
    """The processes and the load of one storm."""

    def __init__(self, cfg: StormConfig, workdir: Path) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.workdir = workdir
        self.apis: list[Proc] = []
        self.workers: list[Proc] = []
        self.emulator: Proc | None = None
        self.kills: list[str] = []
        self.errors: list[str] = []
        self.orders = [Order(n) for n in range(cfg.orders)]
        self.done = 0
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.receiver = Receiver(secret)
        self._next_api = 0
        self.aps_on = cfg.aps_share > 0
        self.aps_credentials = ApsCredentials.generate()
        self.aps_http_fired: dict[str, int] = {}  # APS API fault rule -> times it fired

    # -- set-up

    async def start(self, database_url: str) -> PayPal:
        """Emulator, receiver, webhook subscriptions, migration, API and worker processes."""
        self.receiver.server.start(timeout=30)
        n_api = 2 if self.cfg.store == "postgres" else 1
        *ports, port = free_ports(n_api + 1)
        self.emulator_url = f"http://127.0.0.1:{port}"
        args = ["emulator", "--port", str(port), "--client-id", CLIENT_ID,
                "--client-secret", CLIENT_SECRET, "--webhook-time-scale",
                str(WEBHOOK_TIME_SCALE), "--seed", str(self.cfg.seed)]
        if self.aps_on:
            # `paywire emulator` takes no APS account or feedback URLs: benchkit's launcher
            # does. Direct feedback reaches the first API process, notifications the last.
            emu_env = {**base_env(), APS_CONFIG_ENV: aps_emulator_config(
                self.aps_credentials, f"http://127.0.0.1:{ports[0]}/webhooks/aps",
                f"http://127.0.0.1:{ports[-1]}/webhooks/aps",
                time_scale=APS_FEEDBACK_TIME_SCALE, seed=self.cfg.seed)}
            self.emulator = Proc("emulator", args, emu_env, self.workdir,
                                 f"{self.emulator_url}/_emulator/", program=EMULATOR_WITH_APS)
        else:
            self.emulator = Proc("emulator", args, base_env(), self.workdir,
                                 f"{self.emulator_url}/_emulator/")
        self.emulator.start()
        await self.emulator.wait_up()
        self.emu = httpx.AsyncClient(base_url=self.emulator_url, timeout=30,
                                     limits=httpx.Limits(max_connections=64))
        paypal = PayPal(self.emu)
        hook_ids = []
        for p in ports:  # one subscription per API process: every event reaches each of them
            hook = await paypal.call("POST", "/v1/notifications/webhooks", {
                "url": f"http://127.0.0.1:{p}/webhooks/paypal",
                "event_types": [{"name": "*"}]})
            hook_ids.append(str(hook["id"]))
        aps_env = self.aps_settings(f"http://127.0.0.1:{ports[0]}") if self.aps_on else {}
        env = {**paywire_env(database_url, self.emulator_url, self.workdir, self.receiver, None),
               **aps_env}
        migrated = run_cli(env, "migrate")
        if migrated.returncode != 0:
            raise RuntimeError(f"paywire migrate failed: {migrated.stdout}{migrated.stderr}")
        self.env = env
        for i, (p, hook_id) in enumerate(zip(ports, hook_ids, strict=True)):
            api_env = {**paywire_env(database_url, self.emulator_url, self.workdir,
                                     self.receiver, hook_id), **aps_env}
            self.apis.append(Proc(f"api{i + 1}", ["serve", "--port", str(p)], api_env,
                                  self.workdir, f"http://127.0.0.1:{p}/healthz"))
            self.workers.append(Proc(f"worker{i + 1}", ["worker"], env, self.workdir, None))
        for proc in [*self.apis, *self.workers]:
            proc.start()
        for proc in [*self.apis, *self.workers]:
            await proc.wait_up()
        self.api_urls = [f"http://127.0.0.1:{p}" for p in ports]
        self.api = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64))
        for rule in WEBHOOK_FAULTS + (HTTP_FAULTS if self.cfg.faults else []):
            await retrying("fault rule", lambda rule=rule: self.emu.post(  # type: ignore[misc]
                "/_emulator/faults", json=rule), lambda r: r.status_code in (200, 201))
        if self.aps_on:
            for rule in APS_FEEDBACK_FAULTS + (APS_HTTP_FAULTS if self.cfg.faults else []):
                await retrying("APS fault rule", lambda rule=rule: self.emu.post(  # type: ignore[misc]
                    "/aps/_aps/faults", json=rule), lambda r: r.status_code == 201)
        return paypal

    def aps_settings(self, return_base: str) -> dict[str, str]:
        """paywire's settings for the emulator's APS merchant account (PayPal stays first)."""
        cred = self.aps_credentials
        return {
            "PAYWIRE_PROVIDERS": "paypal,aps", "PAYWIRE_APS_ENV": "emulator",
            "PAYWIRE_APS_ACCESS_CODE": cred.access_code,
            "PAYWIRE_APS_MERCHANT_IDENTIFIER": cred.merchant_identifier,
            "PAYWIRE_APS_REQUEST_PHRASE": cred.request_phrase,
            "PAYWIRE_APS_RESPONSE_PHRASE": cred.response_phrase,
            "PAYWIRE_APS_SHA_TYPE": cred.sha_type,
            "PAYWIRE_APS_RETURN_URL": f"{return_base}/v1/aps/return",
            "PAYWIRE_APS_TIMEOUT_SECONDS": "3",
        }

    def stop(self) -> None:
        """Every child process, then the receiver."""
        for proc in [*self.apis, *self.workers, *( [self.emulator] if self.emulator else [])]:
            proc.stop()
        self.receiver.server.stop()

    # -- load

    def api_url(self) -> str:
        """The next API process, round robin."""
        self._next_api = (self._next_api + 1) % len(self.api_urls)
        return self.api_urls[self._next_api]

    async def one(self, paypal: PayPal, o: Order) -> None:
        """One order, through its provider."""
        if o.provider == "aps":
            await self.one_aps(o)
        else:
            await self.one_paypal(paypal, o)

    async def one_paypal(self, paypal: PayPal, o: Order) -> None:
        """Create, approve, capture (through paywire or at PayPal) one order."""
        key = f"storm-{self.cfg.seed}-{o.n}"
        created = await retrying(f"create {o.n}", lambda: self.api.post(
            f"{self.api_url()}/v1/checkout/orders", headers={"Idempotency-Key": key},
            json={"items": [{"sku": SKU, "quantity": 1 + o.n % 3}], "intent": "CAPTURE"}),
            lambda r: r.status_code in (200, 201))
        body = created.json()
        o.id, o.provider_id = body["id"], body["provider_order_id"]
        await retrying(f"approve {o.n}", lambda: self.emu.post(
            f"/_emulator/orders/{o.provider_id}/approve", json={"scenario": "approve"}),
            lambda r: r.status_code == 200)
        if o.via_api:
            await retrying(f"capture {o.n}", lambda: self.api.post(
                f"{self.api_url()}/v1/checkout/orders/{o.id}/capture"),
                lambda r: r.status_code == 200 and r.json().get("status") == "COMPLETED")
        else:
            await paypal.call("POST", f"/v2/checkout/orders/{o.provider_id}/capture", {},
                              request_id=f"{key}-direct-capture")
        o.captured = True

    async def one_aps(self, o: Order) -> None:
        """Create an APS order, be its buyer on the hosted page (a declined card, then the
        next attempt's form with a good one), resolve a pending payment at the back office,
        post the buyer's return to paywire, and for about half confirm through paywire's
        capture; the rest is left to the feedback channels and reconciliation."""
        key = f"storm-{self.cfg.seed}-{o.n}"
        created = await retrying(f"create {o.n}", lambda: self.api.post(
            f"{self.api_url()}/v1/checkout/orders", headers={"Idempotency-Key": key},
            json={"items": [{"sku": SKU, "quantity": 1 + o.n % 3}], "intent": "CAPTURE",
                  "provider": "aps", "customer_email": APS_EMAIL.format(n=o.n)}),
            lambda r: r.status_code in (200, 201))
        body = created.json()
        o.id, o.provider_id = body["id"], body["provider_order_id"]
        form = body.get("checkout_form") or await self.aps_form(o, 1)
        card = o.card
        if card == DECLINE:
            returned = await aps_pay(self.emu, form, DECLINE)
            if returned.get("status") != "13":
                raise RuntimeError(f"a declined card answered {returned.get('response_code')}")
            o.declined += 1
            if o.via_api:  # the shop asks at once: declined (422), or paywire knows (409)
                await retrying(f"capture declined {o.n}", lambda: self.api.post(
                    f"{self.api_url()}/v1/checkout/orders/{o.id}/capture"),
                    lambda r: r.status_code in (409, 422))
            form = await self.aps_form(o, 2)  # paywire opens the next attempt
            card = SUCCESS if o.n % 2 else CHALLENGE
        returned = await aps_pay(self.emu, form, card)
        reference = returned.get("merchant_reference", "")
        if o.via_api:
            await retrying(f"capture {o.n}", lambda: self.api.post(
                f"{self.api_url()}/v1/checkout/orders/{o.id}/capture"),
                lambda r: r.status_code == 200 and r.json().get("status") in (
                    "COMPLETED", "PENDING"))
        if card == PENDING:
            await asyncio.sleep(self.rng.uniform(0.1, 1.5))
            await retrying(f"resolve {o.n}", lambda: self.emu.post(
                f"/aps/_aps/transactions/{reference}/resolve", json={"result": "success"}),
                lambda r: r.status_code == 200)
            o.resolved = True
        page = await retrying(f"return {o.n}", lambda: self.api.post(
            f"{self.api_url()}/v1/aps/return", data=returned), lambda r: r.status_code == 200)
        o.returned = "not verified" not in page.text
        o.captured = True

    async def aps_form(self, o: Order, attempt: int) -> dict[str, Any]:
        """The order's checkout form once paywire is at `attempt` (a declined attempt opens
        the next when its feedback arrives, or when reconciliation asks CHECK_STATUS)."""
        end = time.monotonic() + 120
        seen: Any = None
        while time.monotonic() < end:
            with contextlib.suppress(httpx.TransportError):
                r = await self.api.get(f"{self.api_url()}/v1/orders/{o.id}")
                if r.status_code == 200:
                    seen = r.json()
                    form = seen.get("checkout_form")
                    now_at = int(seen.get("payment_attempt") or 0)
                    if now_at >= attempt and form:
                        if now_at > attempt:  # one decline counted twice: reported
                            o.skipped = now_at - attempt
                            self.cfg.log(f"order {o.n} ({o.id}): paywire opened attempt "
                                         f"{now_at}, expected {attempt}")
                        return dict(form)
            await asyncio.sleep(0.2)
        state = {k: seen.get(k) for k in ("status", "payment_attempt")} if seen else None
        raise RuntimeError(f"attempt {attempt} never opened: {state}")

    async def load(self, paypal: PayPal) -> None:
        """Every order, `concurrency` at a time, while the killer runs."""
        cards = [c for c, _ in APS_CARD_MIX]
        weights = [w for _, w in APS_CARD_MIX]
        for o in self.orders:
            o.via_api = self.rng.random() < 0.5
            if self.rng.random() < self.cfg.aps_share:
                o.provider = "aps"
                o.card = self.rng.choices(cards, weights)[0]
        queue = iter(self.orders)

        async def worker() -> None:
            for o in queue:
                t0 = time.monotonic()
                try:
                    await self.one(paypal, o)
                    if time.monotonic() - t0 > 10:
                        self.cfg.log(f"order {o.n} ({o.id}, {o.provider} {o.card}) took "
                                     f"{time.monotonic() - t0:.0f} s")
                except Exception as exc:  # noqa: BLE001 - reported, the storm goes on
                    self.errors.append(f"order {o.n} ({o.id or 'not created'}): {exc}")
                self.done += 1

        killer = asyncio.create_task(self.killer())
        try:
            await asyncio.gather(*(worker() for _ in range(self.cfg.concurrency)))
        finally:
            await killer

    async def killer(self) -> None:
        """kill -9 at random moments of the load (API and workers both hit), restart each."""
        n = self.cfg.kills
        marks = sorted(self.rng.uniform(0.05, 0.9) * self.cfg.orders for _ in range(n))
        procs = [*self.apis, *self.workers]
        for i, mark in enumerate(marks):
            while self.done < mark:  # noqa: ASYNC110 - polling the load's progress
                await asyncio.sleep(0.01)
            await asyncio.sleep(self.rng.uniform(0, 0.3))
            # the first two kills take an API and a worker; then any
            victim = (self.apis[i % len(self.apis)] if i == 0 else
                      self.workers[i % len(self.workers)] if i == 1 else self.rng.choice(procs))
            victim.kill9()
            self.kills.append(f"{victim.name}@{self.done}")
            self.cfg.log(f"kill -9 {victim.name} after {self.done} orders")
            await asyncio.sleep(self.rng.uniform(0.1, 1.0))
            victim.start()
            await victim.wait_up()

    # -- the end

    async def reconcile_until_quiet(self) -> int:
        """`paywire reconcile` until a pass settles nothing; the number of passes."""
        for passes in range(1, 30):
            r = await asyncio.to_thread(run_cli, self.env, "reconcile", "--json")
            try:
                report = json.loads(r.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                self.errors.append(f"reconcile pass {passes}: {r.stdout[-300:]}{r.stderr[-300:]}")
                await asyncio.sleep(1)
                continue
            self.cfg.log(f"reconcile pass {passes}: {report}")
            moved = sum(int(report.get(k) or 0) for k in (
                "settled", "expired", "refunds_completed", "truth_processed"))
            if not moved and not report.get("errors"):
                return passes
            await asyncio.sleep(1)
        return 30

    async def outbox_pending(self, database_url: str) -> int:
        """Outbox rows not yet delivered (nor dead)."""
        store = SqlStore(database_url)
        try:
            async with store.transaction() as uow:
                counts = await uow.outbox_counts()
        finally:
            await store.close()
        return int(counts.get("pending", 0))

    async def quiesce(self, paypal: PayPal, database_url: str) -> tuple[bool, int]:
        """Reconcile and wait until outbox, emulator deliveries and receiver are all quiet."""
        end = time.monotonic() + self.cfg.quiesce_timeout
        passes = 0
        while time.monotonic() < end:
            passes += await self.reconcile_until_quiet()
            _, pending_tx = await paypal.events_settled()
            pending_tx += await self.aps_feedback_pending()
            outbox = await self.outbox_pending(database_url)
            idle = time.monotonic() - self.receiver.last
            stuck = len(await self.non_final(database_url))
            self.cfg.log(f"quiesce: {pending_tx} transmissions pending, {outbox} outbox rows "
                         f"pending, receiver idle {idle:.1f} s, {stuck} non-final")
            if pending_tx == 0 and outbox == 0 and idle > 2 and stuck == 0:
                return True, passes
            if pending_tx == 0 and outbox == 0 and idle > 2 and passes > 6:
                return True, passes  # nothing left moving: what is non-final is stuck
            await asyncio.sleep(2)
        return False, passes

    async def aps_feedback_pending(self) -> int:
        """APS feedbacks still being delivered (retrying)."""
        if not self.aps_on:
            return 0
        r = await retrying("APS deliveries", lambda: self.emu.get("/aps/_aps/deliveries"),
                           lambda r: r.status_code == 200)
        return sum(1 for f in r.json()["feedback"] if f["status"] == "pending")

    async def histories(self, database_url: str, order_ids: list[str]) -> dict[str, list[str]]:
        """Each order's history, one line per entry (source, verdict, move, detail)."""
        store = SqlStore(database_url)
        out: dict[str, list[str]] = {}
        try:
            async with store.transaction() as uow:
                for order_id in order_ids:
                    out[order_id] = [
                        f"{h.at:%H:%M:%S.%f} {h.source} {h.verdict} {h.from_status}->"
                        f"{h.to_status} {json.dumps(h.detail, default=str)[:300]}"
                        for h in await uow.history(order_id)]
        finally:
            await store.close()
        return out

    async def statuses(self, database_url: str) -> dict[str, str]:
        """paywire's status of every order it holds (also any the harness never got an answer
        for) and of every order the harness created ("MISSING" if paywire lost it)."""
        store = SqlStore(database_url)
        out: dict[str, str] = {}
        try:
            async with store.transaction() as uow:
                for held in await uow.list_orders(limit=10 * len(self.orders) + 100):
                    out[held.id] = str(held.status)
        finally:
            await store.close()
        for o in self.orders:
            if o.id and o.id not in out:
                out[o.id] = "MISSING"
        return out

    async def non_final(self, database_url: str) -> list[str]:
        """Created orders paywire holds in a non-final state."""
        return [i for i, s in (await self.statuses(database_url)).items() if s not in FINAL]


def keep_logs(workdir: Path) -> None:
    """Copy the child processes' logs to $STORM_KEEP_LOGS, if set."""
    if os.environ.get("STORM_KEEP_LOGS"):
        keep = Path(os.environ["STORM_KEEP_LOGS"])
        keep.mkdir(parents=True, exist_ok=True)
        for f in workdir.glob("*.log"):
            (keep / f.name).write_bytes(f.read_bytes())


async def run_storm(cfg: StormConfig) -> StormResult:
    """Run one storm end to end; the figures."""
    with tempfile.TemporaryDirectory(prefix="paywire-storm-") as tmp, \
            database(cfg.store, Path(tmp)) as database_url:
        storm = Storm(cfg, Path(tmp))
        try:
            paypal = await storm.start(database_url)
            t0 = time.monotonic()
            await storm.load(paypal)
            load_seconds = time.monotonic() - t0
            await retrying("clear faults", lambda: storm.emu.delete("/_emulator/faults"),
                           lambda r: r.status_code in (200, 204))
            if storm.aps_on:
                rules = (await retrying("APS faults", lambda: storm.emu.get("/aps/_aps/faults"),
                                        lambda r: r.status_code == 200)).json()["rules"]
                storm.aps_http_fired = {
                    f"{r['action']} {r['status'] if r['action'] == 'error' else r['seconds']}":
                    r["fired"] for r in rules if r["target"] == "http"}
                await retrying("clear APS faults", lambda: storm.emu.delete("/aps/_aps/faults"),
                               lambda r: r.status_code == 204)
            for proc in [*storm.apis, *storm.workers]:  # all running for the end
                if proc.proc is None or proc.proc.poll() is not None:
                    proc.start()
                    await proc.wait_up()
            t1 = time.monotonic()
            quiet, passes = await storm.quiesce(paypal, database_url)
            quiesce_seconds = time.monotonic() - t1
            return await verdict(storm, paypal, database_url, load_seconds,
                                 quiesce_seconds, quiet, passes)
        finally:
            with contextlib.suppress(Exception):
                await storm.emu.aclose()
                await storm.api.aclose()
            storm.stop()
            keep_logs(Path(tmp))


async def verdict(storm: Storm, paypal: PayPal, database_url: str, load_seconds: float,
                  quiesce_seconds: float, quiet: bool, passes: int) -> StormResult:
    """Count lost, unannounced, stuck and doubled orders once everything is quiet."""
    cfg = storm.cfg
    statuses = await storm.statuses(database_url)
    histogram = dict(Counter(statuses.values()))
    stuck = sorted(i for i, s in statuses.items() if s not in FINAL)
    sem = asyncio.Semaphore(16)

    async def paid(o: Order) -> bool:
        async with sem:
            truth = await paypal.call("GET", f"/v2/checkout/orders/{o.provider_id}")
        caps = [c for pu in truth.get("purchase_units", [])
                for c in pu.get("payments", {}).get("captures", [])]
        return truth.get("status") == "COMPLETED" and any(
            c.get("status") == "COMPLETED" for c in caps)

    created = [o for o in storm.orders if o.provider_id and o.provider == "paypal"]
    paid_at_paypal = await asyncio.gather(*(paid(o) for o in created))
    lost = [o.id for o, p in zip(created, paid_at_paypal, strict=True)
            if p and statuses.get(o.id) != "COMPLETED"]
    aps = await aps_verdict(storm, statuses) if storm.aps_on else None
    if aps is not None:
        lost += aps.lost
    rec = storm.receiver
    announced = {key[1] for key in rec.by_fact if key[0] == "order.completed"}
    suspects = [*lost, *stuck]
    if aps is not None:
        f = aps.figures
        suspects += [*f.double_charged, *f.phantom, *f.wrong_capture, *f.attempts_skipped]
    unannounced = sorted(i for i, s in statuses.items()
                         if s == "COMPLETED" and i not in announced)
    double = {k: sorted(v) for k, v in rec.by_fact.items()
              if len(v) > 1 and k[0] not in PROGRESS}
    double_progress = sum(1 for k, v in rec.by_fact.items() if len(v) > 1 and k[0] in PROGRESS)
    log = (await storm.emu.get("/_emulator/deliveries")).json()["deliveries"]
    faults = Counter(str(a.get("fault")) for a in log if a.get("fault"))
    return StormResult(
        config=cfg, orders=len(storm.orders), histogram=histogram, lost=lost,
        unannounced=unannounced, stuck=stuck, double=double, double_progress=double_progress,
        deliveries=sum(rec.by_message.values()), messages=len(rec.by_message),
        redundant=sum(n - 1 for n in rec.by_message.values()), forged=rec.forged,
        kills=storm.kills, load_seconds=load_seconds, quiesce_seconds=quiesce_seconds,
        quiet=quiet, reconcile_passes=passes,
        api_captures=sum(o.via_api and o.captured for o in storm.orders),
        direct_captures=sum(not o.via_api and o.captured for o in storm.orders),
        errors=storm.errors, webhook_deliveries=len(log), webhook_faults=dict(faults),
        aps=aps.figures if aps is not None else None,
        message_types=dict(Counter(rec.types.values())),
        evidence=await storm.histories(database_url, list(dict.fromkeys(suspects))[:10]))


@dataclass
class ApsVerdict:
    """The APS orders against APS's own books."""

    figures: ApsFigures
    lost: list[str]  # paid at APS, not COMPLETED in paywire


async def aps_verdict(storm: Storm, statuses: dict[str, str]) -> ApsVerdict:
    """Every APS order against the emulator's transactions: paid exactly once when COMPLETED,
    announced with the transaction that paid it, never with a declined one."""
    emu = storm.emu
    txs = (await retrying("APS transactions", lambda: emu.get("/aps/_aps/transactions"),
                          lambda r: r.status_code == 200)).json()["transactions"]
    deliveries = (await retrying("APS deliveries", lambda: emu.get("/aps/_aps/deliveries"),
                                 lambda r: r.status_code == 200)).json()
    requests = (await retrying("APS requests", lambda: emu.get("/aps/_aps/requests"),
                               lambda r: r.status_code == 200)).json()["requests"]
    paid: dict[str, set[str]] = defaultdict(set)  # order id -> fort ids that took the money
    for t in txs:
        order_id = str(t["merchant_reference"]).rsplit("-", 1)[0]
        if t["command"] == "PURCHASE" and int(t["captured_amount"]) > 0:
            paid[order_id].add(str(t["fort_id"]))
    orders = [o for o in storm.orders if o.provider == "aps"]
    known = {o.id for o in orders if o.id}
    lost = sorted(i for i in known if paid.get(i) and statuses.get(i) != "COMPLETED")
    phantom = sorted(i for i in known if statuses.get(i) == "COMPLETED" and not paid.get(i))
    double = {i: len(f) for i, f in paid.items() if len(f) > 1}
    announced = storm.receiver.completed_captures
    wrong = {i: sorted(announced[i] - paid.get(i, set())) for i in known
             if announced.get(i, set()) - paid.get(i, set())}
    attempts = deliveries["attempts"]
    return ApsVerdict(figures=ApsFigures(
        orders=len(orders), cards=dict(Counter(o.card for o in orders)),
        confirmed_via_api=sum(o.via_api and o.captured for o in orders),
        declined_attempts=sum(o.declined for o in orders),
        attempts_skipped={o.id: o.skipped for o in orders if o.skipped},
        double_charged=double, phantom=phantom, wrong_capture=wrong,
        feedback=dict(Counter(str(f["status"]) for f in deliveries["feedback"])),
        feedback_attempts=len(attempts),
        feedback_faults=dict(Counter(str(a["fault"]) for a in attempts if a.get("fault"))),
        feedback_outcomes=dict(Counter(
            str(a["status"]) if a.get("status") is not None
            else str(a.get("error") or "").split(":")[0] for a in attempts)),
        check_status_calls=sum(1 for r in requests if r["command"] == "CHECK_STATUS"),
        http_faults=storm.aps_http_fired,
        resolved_pending=sum(o.resolved for o in orders),
        returns_verified=sum(o.returned for o in orders)), lost=lost)



def main() -> None:
    """Parse arguments, run the storm, print the figures; exit 1 unless it passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--faults", action="store_true",
                        help="provider 503/429/timeouts on a share of PayPal calls")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--aps-share", type=float, default=0.5,
                        help="share of the orders paid by card through APS (0: PayPal only)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args()
    started = time.monotonic()

    def log(line: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - started:7.1f}s] {line}", file=sys.stderr, flush=True)

    cfg = StormConfig(orders=args.orders, seed=args.seed, store=args.store, kills=args.kills,
                      faults=args.faults, concurrency=args.concurrency,
                      aps_share=args.aps_share, log=log)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through run_storm's cleanup: no orphaned children

    signal.signal(signal.SIGTERM, interrupted)
    result = asyncio.run(run_storm(cfg))
    print("\n".join(result.lines()))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
