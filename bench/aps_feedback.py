"""APS feedback ingest: paywire's `POST /webhooks/aps` against a bare ASGI echo app, same server.

    .venv/bin/python bench/aps_feedback.py [--size tiny|small|full] [--deliveries 300]
        [--concurrency 8] [--json PATH]

Processes: the emulator (PayPal, and APS under `/aps` with a merchant account this script
generates); paywire offering both providers (`providers=paypal,aps`, that APS account; one
uvicorn worker, SQLite); a bare ASGI app that reads the body and echoes it, under the same
uvicorn settings; and this load generator.

Setup: the emulator's direct transaction feedback URL is the echo app (its notification channel
sends nothing), so the emulator's real signed deliveries land there. paywire creates
`deliveries + warm-up` APS orders, each paid on the emulator's hosted page over HTTP (a buyer
with the success test card, no browser). Those deliveries (one PURCHASE feedback per order,
distinct transactions), exactly as sent (bytes and content type), are recorded from the
emulator's log `/aps/_aps/deliveries`. paywire has seen none of them: its orders are CREATED.

Measured, in one run with `--concurrency` workers over loopback HTTP, each after a warm-up of
its own deliveries: the deliveries to the echo app; to paywire (verify the SHA signature over
every parameter, inbox insert, transition, outbox, one transaction: every answer `applied`); and
the same deliveries to paywire again (every answer `duplicate`: the dedupe path). Then every
order must be COMPLETED in paywire, or the benchmark fails. The goals (bench/goals.py) are
printed last. Not part of `make test`; `make bench` runs `--size small`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchkit
import goals
import httpx
from benchkit import Result, aps_pay, load, serve_echo, settings, sized, wait_up

from paywire.emulator.aps.cards import SUCCESS
from paywire.emulator.aps.config import ApsCredentials
from paywire.testing import free_ports

CLIENT_ID, CLIENT_SECRET = "bench-client-id", "bench-client-secret"
ACCOUNT_ENV = "APS_FEEDBACK_BENCH_ACCOUNT"  # the APS account, JSON (never on a command line)
FEEDBACK_PATH = "/webhooks/aps"
WARMUP = 20
SIZES = {"tiny": {"deliveries": 12, "warmup": 4},
         "small": {"deliveries": 100, "warmup": 10},
         "full": {"deliveries": 300, "warmup": WARMUP}}
KIND = {"bare ASGI echo": "echo", "paywire, first delivery (applied)": "applied",
        "paywire, same again (duplicate)": "duplicate"}


class BenchFailure(SystemExit):
    """The benchmark saw something wrong (a refused delivery, an order not completed)."""


# --- the servers (each in a child process) ---------------------------------------------------


def account() -> ApsCredentials:
    """The APS merchant account the parent generated (from the environment)."""
    raw = json.loads(os.environ[ACCOUNT_ENV])
    return ApsCredentials(**raw)


def serve_emulator(port: int, feedback_url: str) -> None:
    """The emulator, quiet; APS's direct feedback to `feedback_url`, no notification."""
    from paywire.emulator import AppCredentials, EmulatorConfig, create_app
    from paywire.emulator.aps.config import ApsEmulatorConfig

    aps = ApsEmulatorConfig(credentials=account(), direct_feedback_url=feedback_url,
                            notification_feedback_url=None)
    app = create_app(EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)], aps=aps))
    benchkit.serve(app, port)


def serve_paywire(port: int, emulator_url: str, data_dir: str) -> None:
    """paywire offering PayPal and APS on the emulator, SQLite in `data_dir`."""
    from paywire.bootstrap import create_app
    from paywire.settings import Settings

    aps = account()
    url = f"http://127.0.0.1:{port}"
    settings = Settings.load(
        paypal_env="emulator", paypal_base_url=emulator_url, paypal_client_id=CLIENT_ID,
        paypal_client_secret=CLIENT_SECRET, data_dir=Path(data_dir), database_url="",
        paypal_webhook_id="WH-BENCH-UNUSED",  # no PayPal traffic here; quiets the warning
        providers=["paypal", "aps"], aps_env="emulator",
        aps_api_url=f"{emulator_url}/aps/FortAPI/paymentApi",
        aps_page_url=f"{emulator_url}/aps/FortAPI/paymentPage",
        aps_access_code=aps.access_code, aps_merchant_identifier=aps.merchant_identifier,
        aps_request_phrase=aps.request_phrase, aps_response_phrase=aps.response_phrase,
        aps_sha_type=aps.sha_type, aps_return_url=f"{url}/v1/aps/return")
    benchkit.serve(create_app(settings), port)


def spawn(*args: str) -> subprocess.Popen[bytes]:
    """This script in a child process, serving one side."""
    return benchkit.spawn(__file__, *args)


# --- recording real deliveries ---------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One direct feedback as the emulator sent it, and the paywire order it is about."""

    body: bytes
    headers: dict[str, str]
    order_id: str


async def make_deliveries(paywire_url: str, emulator_url: str, sink: str, orders: int,
                          concurrency: int) -> list[Delivery]:
    """APS orders through paywire, paid on the emulator's hosted page; the direct feedback
    that reached `sink`, in the order it was sent."""
    by_reference: dict[str, str] = {}  # merchant_reference -> paywire order id
    async with httpx.AsyncClient(base_url=emulator_url, timeout=30) as emu, \
            httpx.AsyncClient(base_url=paywire_url, timeout=30) as pw:
        queue = iter(range(orders))

        async def worker() -> None:
            for n in queue:
                r = await pw.post("/v1/checkout/orders", json={
                    "items": [{"sku": "mug", "quantity": 1}], "provider": "aps",
                    "customer_email": f"buyer-{n}@example.com"})
                if r.status_code != 201:
                    raise BenchFailure(f"creating an APS order: {r.status_code} {r.text[:300]}")
                order = r.json()
                form = order["checkout_form"]
                by_reference[form["fields"]["merchant_reference"]] = order["id"]
                returned = await aps_pay(emu, form, SUCCESS)
                if returned.get("response_code") != "14000":
                    raise BenchFailure(f"APS page did not take the payment: {returned}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        feedback: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        for _ in range(600):
            log = (await emu.get("/aps/_aps/deliveries", params={"channel": "direct"})).json()
            feedback, attempts = log["feedback"], log["attempts"]
            if len(feedback) >= orders and all(f["status"] != "pending" for f in feedback):
                break
            await asyncio.sleep(0.05)
    if len(feedback) != orders or any(f["status"] != "delivered" or f["url"] != sink
                                      for f in feedback):
        raise BenchFailure(f"expected {orders} direct feedback delivered to the echo app, got "
                           f"{[(f['status'], f['command']) for f in feedback][:10]}... "
                           f"({len(feedback)} in all)")
    bodies = {a["feedback_id"]: base64.b64decode(a["body_base64"]) for a in attempts
              if a["attempt"] == 1 and a["status"] == 200}
    out = [Delivery(bodies[f["id"]], {"Content-Type": f["content_type"]},
                    by_reference[f["merchant_reference"]])
           for f in sorted(feedback, key=lambda f: f["created_at"])]
    if len({d.order_id for d in out}) != orders:
        raise BenchFailure("the feedback is not one per order")
    return out


# --- load ----------------------------------------------------------------------------------------


def expect(result: Result, answer: str) -> None:
    """Fail unless every delivery of `result` was answered `answer`."""
    if result.statuses != {answer: len(result.latencies)}:
        raise BenchFailure(f"{result.name.strip()}: expected every answer {answer!r}, got "
                           f"{result.statuses}")


async def measure(echo: str, paywire: str, deliveries: list[Delivery], warm: int,
                  concurrency: int) -> list[Result]:
    """Warm each target up on the first `warm` deliveries, then measure it on the rest: the
    echo app, paywire (first sight) and paywire again (every delivery a duplicate)."""
    head, rest = deliveries[:warm], deliveries[warm:]
    await load("warm-up", echo, head, concurrency)
    baseline = await load("bare ASGI echo", echo, rest, concurrency)
    expect(await load("warm-up", paywire, head, concurrency), "applied")
    applied = await load("paywire, first delivery (applied)", paywire, rest, concurrency)
    expect(applied, "applied")
    expect(await load("warm-up", paywire, head, concurrency), "duplicate")
    duplicate = await load("paywire, same again (duplicate)", paywire, rest, concurrency)
    expect(duplicate, "duplicate")
    return [baseline, applied, duplicate]


async def check_completed(paywire_url: str, deliveries: list[Delivery],
                          concurrency: int) -> None:
    """The correctness guard: every paid order is COMPLETED in paywire."""
    wrong: dict[str, str] = {}
    queue = iter(deliveries)
    async with httpx.AsyncClient(base_url=paywire_url, timeout=30) as pw:

        async def worker() -> None:
            for d in queue:
                r = await pw.get(f"/v1/orders/{d.order_id}")
                status = str(r.json().get("status")) if r.status_code == 200 else (
                    f"HTTP {r.status_code}")
                if status != "COMPLETED":
                    wrong[d.order_id] = status

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if wrong:
        raise BenchFailure(f"{len(wrong)} of {len(deliveries)} paid orders are not COMPLETED "
                           f"in paywire, e.g. {sorted(wrong.items())[:5]}")
    print(f"check: all {len(deliveries)} paid orders are COMPLETED in paywire")


def report(results: list[Result], concurrency: int, setup_seconds: float) -> dict[str, float]:
    """The figures and the ratios against the echo baseline; the figures under goals.py's
    keys."""
    echo = results[0]
    print(f"APS feedback ingest: {len(echo.latencies)} signed direct-feedback deliveries per "
          f"pass (distinct PURCHASE transactions, JSON), concurrency {concurrency}, one "
          f"uvicorn worker each, paywire on SQLite; setup (orders paid on the hosted page) "
          f"took {setup_seconds:.1f} s")
    print(f"machine: {goals.machine()} (CI machines have 2 cores); every process (emulator, "
          "servers, this load generator) shares them, over loopback HTTP")
    print(f"{'':36} {'deliv/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}   answers")
    for r in results:
        answers = ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items()))
        print(f"{r.name:36} {r.rate:8.1f} {r.percentile(50):8.2f} {r.percentile(95):8.2f} "
              f"{r.percentile(99):8.2f}   {answers}")
    for r in results[1:]:
        print(f"ratio {r.name.strip()} / echo: throughput {r.rate / echo.rate:.2f}x, "
              f"p50 {r.percentile(50) / echo.percentile(50):.1f}x, "
              f"p95 {r.percentile(95) / echo.percentile(95):.1f}x, "
              f"p99 {r.percentile(99) / echo.percentile(99):.1f}x")
    figures: dict[str, float] = {}
    for r in results:
        key = f"aps.c{concurrency}.{KIND[r.name]}"
        figures.update({f"{key}.rate": r.rate, f"{key}.p50": r.percentile(50),
                        f"{key}.p99": r.percentile(99)})
    return figures


def run(deliveries: int, concurrency: int, warmup: int) -> dict[str, float]:
    """Start everything, record deliveries, measure, check, stop."""
    procs: list[subprocess.Popen[bytes]] = []
    creds = ApsCredentials.generate()
    os.environ[ACCOUNT_ENV] = json.dumps({
        "access_code": creds.access_code, "merchant_identifier": creds.merchant_identifier,
        "request_phrase": creds.request_phrase, "response_phrase": creds.response_phrase,
        "sha_type": creds.sha_type})
    with tempfile.TemporaryDirectory(prefix="paywire-bench-") as tmp:
        ports = list(free_ports(3))
        emulator, echo, paywire = (f"http://127.0.0.1:{p}" for p in ports)
        sink = f"{echo}{FEEDBACK_PATH}"
        try:
            procs.append(spawn("echo", str(ports[1])))
            wait_up(echo, procs[-1])
            procs.append(spawn("emulator", str(ports[0]), sink))
            wait_up(f"{emulator}/aps/_aps/", procs[-1])
            procs.append(spawn("paywire", str(ports[2]), emulator, tmp))
            wait_up(f"{paywire}/healthz", procs[-1])
            started = time.perf_counter()
            recorded = asyncio.run(make_deliveries(paywire, emulator, sink,
                                                   deliveries + warmup, concurrency))
            setup = time.perf_counter() - started
            results = asyncio.run(measure(sink, f"{paywire}{FEEDBACK_PATH}", recorded, warmup,
                                          concurrency))
            figures = report(results, concurrency, setup)
            asyncio.run(check_completed(paywire, recorded, concurrency))
            return figures
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=15)


def main() -> None:
    """Parse arguments; serve one side (child) or run the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full",
                        help="preset for --deliveries (default full: 300)")
    parser.add_argument("--deliveries", type=int, default=None,
                        help="measured deliveries per pass")
    parser.add_argument("--concurrency", type=int, default=8, help="workers (default 8)")
    parser.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)
    goals.add_arguments(parser)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port, *rest = args.serve
        if kind == "emulator":
            serve_emulator(int(port), *rest)
        elif kind == "echo":
            serve_echo(int(port))
        else:
            serve_paywire(int(port), *rest)
        return
    sized(args, SIZES)
    if args.deliveries < 10 or args.concurrency < 1:
        parser.error("--deliveries must be at least 10 and --concurrency at least 1")
    figures = run(args.deliveries, args.concurrency, args.warmup)
    goals.report(figures, bench="aps_feedback", json_path=args.json, settings=settings(args))


if __name__ == "__main__":
    main()
