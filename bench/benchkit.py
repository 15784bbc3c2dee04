"""What the benchmark scripts share: size presets (`sized`) and the options as run (`settings`); a
script re-run as a child server, and waiting for it; the emulator with a known APS merchant
account (`python bench/benchkit.py emulator ...`) and a buyer paying on APS's hosted page over
HTTP (`aps_pay`); a bare ASGI echo app (the baseline server) and a load generator replaying
recorded requests (`load`, `Result`)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from paywire.emulator.aps.cards import CARDS
from paywire.emulator.aps.config import ApsCredentials


def sized(args: Any, sizes: Mapping[str, Mapping[str, Any]]) -> None:
    """Fill every option of `args` left unset (None) from the preset `args.size` names (each
    bench's `--size tiny|small|full`: tiny proves it works, small is `make bench`, full is the
    documented table)."""
    for name, value in sizes[args.size].items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def settings(args: Any) -> dict[str, Any]:
    """A bench's options as run (for its `--json` file): set ones, without the hidden ones."""
    return {k: v if isinstance(v, int | float | str | list) else str(v)
            for k, v in vars(args).items()
            if v is not None and k not in ("json", "serve", "worker", "serve_shop")}


def _stat_seconds(after_name: str) -> float:
    """User + system CPU seconds from what follows the process name in /proc/<pid>/stat."""
    fields = after_name.split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process `pid` has used so far (Linux's /proc; 0 elsewhere)."""
    try:
        return _stat_seconds(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1])
    except OSError:
        return 0.0


def server_cpu(command: str = "postgres") -> dict[int, float]:
    """CPU time each process named `command` (a database server: PostgreSQL's postmaster, its
    backends and helpers) has used so far, by pid: `server_cpu_used` of two readings is what
    the server spent between them. Whole-server, so it counts whatever else uses that server
    meanwhile (read it on a quiet machine)."""
    used = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, tail = stat.read_text().rpartition(")")
        except OSError:
            continue
        if head.partition("(")[2] == command:
            used[int(stat.parent.name)] = _stat_seconds(tail)
    return used


def server_cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the server's processes spent between two `server_cpu` readings: each process
    alive at the second reading, from the first (or from its start, if it started since). A
    process that exited in between is not counted for that time (its CPU is no longer
    readable), so the figure can fall short, never below zero as a difference of sums would
    (a backend that exits, another test's or a closed connection's, takes its whole CPU with
    it)."""
    return sum(max(0.0, seconds - before.get(pid, 0.0)) for pid, seconds in after.items())


async def settled(pid: int, quiet: float = 0.002, window: float = 0.1,
                  limit: float = 15.0) -> None:
    """Wait until process `pid` has used at most `quiet` s of CPU in `window` s (its work after
    the answers, e.g. the confirmations, is done), or `limit` s have passed."""
    deadline = time.monotonic() + limit
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(window)
        now = cpu_seconds(pid)
        if now - before <= quiet:
            return
        before = now


def spawn(script: str, *args: str) -> subprocess.Popen[bytes]:
    """`script --serve ARGS` in a child process (no PAYWIRE_* settings leak into it)."""
    return subprocess.Popen([sys.executable, script, "--serve", *args],  # noqa: S603 - ours
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("PAYWIRE_")})


class Posted(Protocol):
    """A request to replay: exact body bytes and headers."""

    @property
    def body(self) -> bytes:
        """The exact bytes to send."""
        ...

    @property
    def headers(self) -> dict[str, str]:
        """The headers to send them with."""
        ...


@dataclass
class Result:
    """One measured run against one server."""

    name: str
    seconds: float
    latencies: list[float]
    statuses: dict[str, int]

    @property
    def rate(self) -> float:
        """Requests (deliveries) per second of wall time."""
        return len(self.latencies) / self.seconds

    def percentile(self, p: int) -> float:
        """Latency at percentile `p`, in milliseconds."""
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return 1000 * cuts[p - 1]


async def load(name: str, url: str, deliveries: Sequence[Posted], concurrency: int) -> Result:
    """POST every delivery once to `url` with `concurrency` workers."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    queue = iter(deliveries)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            for d in queue:
                t0 = time.perf_counter()
                r = await client.post(url, content=d.body, headers=d.headers)
                latencies.append(time.perf_counter() - t0)
                key = str(r.status_code)
                if r.status_code == 200 and r.content.startswith(b'{"outcome"'):
                    key = r.json()["outcome"]  # paywire's answer: applied, duplicate...
                statuses[key] = statuses.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(name, time.perf_counter() - started, latencies, statuses)


async def read_body(receive: Any) -> bytes:
    """An ASGI request's whole body."""
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The baseline: read the whole body, answer 200 with it."""
    if scope["type"] != "http":
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        return
    body = await read_body(receive)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def serve(app: Any, port: int, **options: Any) -> None:
    """`app` on 127.0.0.1:`port` under uvicorn, quiet, parsing HTTP as paywire's servers do
    (`paywire.serving.uvicorn_options`): every bench's servers, paywire's and the baselines',
    run alike."""
    import uvicorn

    from paywire.serving import uvicorn_options

    uvicorn.run(app, **{"host": "127.0.0.1", "port": port, "log_level": "warning",
                        "access_log": False, **uvicorn_options(), **options})


def serve_echo(port: int) -> None:
    """The echo app under the same uvicorn settings as paywire."""
    serve(echo_app, port, lifespan="off")


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll `url` until it answers (any status) or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s")


# --- Amazon Payment Services: the emulator with a known merchant account, and a buyer ---------

# The emulator's test cards by behaviour (the first card of each).
APS_CARDS: dict[str, str] = {}
for _card in CARDS:
    APS_CARDS.setdefault(_card.behaviour, _card.number)
APS_CONFIG_ENV = "STORM_APS_CONFIG"  # JSON for `benchkit.py emulator` (never a PAYWIRE_* name)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_ACTION = re.compile(r'action="([^"]+)"')


def _unescape(value: str) -> str:
    return (value.replace("&#34;", '"').replace("&#39;", "'").replace("&lt;", "<")
            .replace("&gt;", ">").replace("&amp;", "&"))


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page's form."""
    return {k: _unescape(v) for k, v in _HIDDEN.findall(html)}


class BuyerError(RuntimeError):
    """The hosted page did not answer as a buyer expects (status and the page's start)."""


def _page(resp: httpx.Response, step: str) -> str:
    if resp.status_code != 200:
        raise BuyerError(f"APS {step}: {resp.status_code} {resp.text[:300]}")
    return resp.text


async def aps_pay(http: httpx.AsyncClient, form: Mapping[str, Any], card: str, *,
                  challenge: str = "approve") -> dict[str, str]:
    """Be the buyer on APS's hosted page, over HTTP (no browser): post the order's
    `checkout_form`, pay with the test card of behaviour `card` (a 3-D Secure challenge is
    answered `challenge`), and answer the signed parameters the page sends back to `return_url`
    (not followed). The logic of `tests/apskit.py::pay_on_page`, async."""
    url = str(form["url"])
    session = hidden_fields(_page(await http.post(url, data=dict(form["fields"])), "page"))
    text = _page(await http.post(f"{url}/card", data={
        **session, "card_number": APS_CARDS[card], "expiry_date": "3512",
        "card_security_code": "123", "card_holder_name": "A Buyer", "action": "pay"}), "card")
    if 'id="approve"' in text:
        action = _ACTION.search(text)
        if action is None:
            raise BuyerError("APS 3-D Secure page without a form action")
        text = _page(await http.post(_unescape(action.group(1)),
                                     data={**hidden_fields(text), "action": challenge}), "3ds")
    returned = hidden_fields(text)
    if "response_code" not in returned:
        raise BuyerError(f"APS page returned no result: {text[:300]}")
    return returned


def aps_emulator_config(credentials: ApsCredentials, direct_url: str | None,
                        notification_url: str | None, *, time_scale: float = 1.0,
                        seed: int | None = None) -> str:
    """The JSON `benchkit.py emulator` reads from $STORM_APS_CONFIG (an APS merchant account
    and its two feedback URLs; `paywire emulator` has no options for them)."""
    return json.dumps({
        "access_code": credentials.access_code,
        "merchant_identifier": credentials.merchant_identifier,
        "request_phrase": credentials.request_phrase,
        "response_phrase": credentials.response_phrase, "sha_type": credentials.sha_type,
        "direct_feedback_url": direct_url, "notification_feedback_url": notification_url,
        "feedback_time_scale": time_scale, "seed": seed})


def serve_emulator(argv: list[str]) -> None:
    """`benchkit.py emulator --port P --client-id I --client-secret S [--webhook-time-scale F]
    [--seed N]`: `paywire emulator`, plus the APS merchant account and feedback URLs from
    $STORM_APS_CONFIG."""
    import argparse

    from paywire.emulator import AppCredentials, EmulatorConfig, create_app
    from paywire.emulator.aps.config import ApsEmulatorConfig

    parser = argparse.ArgumentParser(prog="benchkit.py emulator")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--webhook-time-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    raw = json.loads(os.environ[APS_CONFIG_ENV])
    aps = ApsEmulatorConfig(
        credentials=ApsCredentials(
            access_code=raw["access_code"], merchant_identifier=raw["merchant_identifier"],
            request_phrase=raw["request_phrase"], response_phrase=raw["response_phrase"],
            sha_type=raw["sha_type"]),
        direct_feedback_url=raw["direct_feedback_url"],
        notification_feedback_url=raw["notification_feedback_url"],
        feedback_time_scale=float(raw["feedback_time_scale"]), seed=raw["seed"])
    cfg = EmulatorConfig(apps=[AppCredentials(args.client_id, args.client_secret)], aps=aps,
                         webhook_time_scale=args.webhook_time_scale, seed=args.seed)
    print(f"emulator (PayPal + APS under /aps) on http://127.0.0.1:{args.port}", flush=True)
    serve(create_app(cfg), args.port)


if __name__ == "__main__":
    if sys.argv[1:2] != ["emulator"]:
        raise SystemExit("usage: benchkit.py emulator --port P --client-id I --client-secret S")
    serve_emulator(sys.argv[2:])
