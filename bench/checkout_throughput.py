"""Create+capture throughput through paywire's API against raw httpx calls to the emulator.

    .venv/bin/python bench/checkout_throughput.py [--size tiny|small|full] [--orders 200]
        [--concurrency 1 8] [--json PATH]

Three processes: the PayPal emulator, paywire's API (one uvicorn worker, SQLite in a temporary
directory, the emulator over HTTP) and this load generator. Each order is created, approved as
the buyer through the emulator's control API, and captured, by `--concurrency` workers:

  (a) paywire:  POST /v1/checkout/orders -> approve -> POST /v1/checkout/orders/{id}/capture
  (b) raw:      POST /v2/checkout/orders -> approve -> POST /v2/checkout/orders/{id}/capture,
                straight to the emulator with the body paywire sends and a cached token

in the same run, on the same emulator process, after a warm-up of each, at each `--concurrency`
(default 1, then 8). Latency is the time of the create and capture calls (not the buyer's
approval); throughput counts whole orders per second of wall time. The goals (bench/goals.py)
are printed last. Not part of `make test`; `make bench` runs `--size small`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import benchkit
import goals
import httpx
from benchkit import cpu_seconds, settings, settled, sized, wait_up

from paywire.testing import free_ports

CLIENT_ID, CLIENT_SECRET = "bench-client-id", "bench-client-secret"
SKU, PRICE = "mug", "12.50"
WARMUP = 16
SIZES = {"tiny": {"orders": 6, "concurrency": [1, 8]},
         "small": {"orders": 60, "concurrency": [1, 8]},
         "full": {"orders": 200, "concurrency": [1, 8]}}

Flow = Callable[[httpx.AsyncClient, int], Awaitable[float]]


def serve_emulator(port: int) -> None:
    """Child process: the emulator, quiet."""
    from paywire.emulator import AppCredentials, EmulatorConfig, create_app

    app = create_app(EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)]))
    benchkit.serve(app, port)


def serve_paywire(port: int, emulator_url: str, data_dir: str) -> None:
    """Child process: paywire's API for the emulator, SQLite in `data_dir`, quiet."""
    from paywire.bootstrap import create_app
    from paywire.settings import Settings

    settings = Settings.load(paypal_env="emulator", paypal_base_url=emulator_url,
                             paypal_client_id=CLIENT_ID, paypal_client_secret=CLIENT_SECRET,
                             data_dir=Path(data_dir), database_url="")
    benchkit.serve(create_app(settings), port)


def spawn(*args: str) -> subprocess.Popen[bytes]:
    """This script in a child process, serving one side."""
    return benchkit.spawn(__file__, *args)


@dataclass
class Result:
    """One measured run of a flow."""

    name: str
    orders: int
    seconds: float
    latencies: list[float]
    # CPU ms per order of paywire (0 for the raw flow), the emulator and this load generator
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def rate(self) -> float:
        """Orders per second of wall time."""
        return self.orders / self.seconds

    def percentile(self, p: float) -> float:
        """Create+capture latency at percentile `p`, in milliseconds."""
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return 1000 * cuts[round(p) - 1]


async def approve(emulator: httpx.AsyncClient, provider_order_id: str) -> None:
    """The buyer approves (no browser): the emulator's control API."""
    r = await emulator.post(f"/_emulator/orders/{provider_order_id}/approve",
                            json={"scenario": "approve"})
    r.raise_for_status()


def paywire_flow(paywire: httpx.AsyncClient, key_prefix: str | None = None) -> Flow:
    """One order through paywire's API; returns the create+capture seconds. With
    `key_prefix`, each create carries `Idempotency-Key: <key_prefix>-<n>`, as a shop sends it."""

    async def one(emulator: httpx.AsyncClient, n: int) -> float:
        t0 = time.perf_counter()
        created = await paywire.post("/v1/checkout/orders", json={
            "items": [{"sku": SKU, "quantity": 1}], "intent": "CAPTURE"},
            headers={"Idempotency-Key": f"{key_prefix}-{n}"} if key_prefix else None)
        t1 = time.perf_counter()
        assert created.status_code in (200, 201), created.text
        order = created.json()
        await approve(emulator, order["provider_order_id"])
        t2 = time.perf_counter()
        captured = await paywire.post(f"/v1/checkout/orders/{order['id']}/capture")
        t3 = time.perf_counter()
        assert captured.status_code == 200 and captured.json()["status"] == "COMPLETED", (
            captured.text)
        return (t1 - t0) + (t3 - t2)

    return one


def raw_flow(token: str, run_id: str) -> Flow:
    """One order straight at the emulator, with the body paywire sends; create+capture seconds."""
    # The headers paywire's client sends on every mutating call.
    bearer = {"Authorization": f"Bearer {token}", "Accept": "application/json",
              "Content-Type": "application/json", "Prefer": "return=representation"}

    async def one(emulator: httpx.AsyncClient, n: int) -> float:
        ref = f"raw_{run_id}_{n}"
        body = {"intent": "CAPTURE", "purchase_units": [{
            "reference_id": ref, "custom_id": ref, "invoice_id": ref,
            "amount": {"currency_code": "USD", "value": PRICE, "breakdown": {
                "item_total": {"currency_code": "USD", "value": PRICE}}},
            "items": [{"name": "paywire mug", "sku": SKU, "quantity": "1",
                       "unit_amount": {"currency_code": "USD", "value": PRICE},
                       "category": "PHYSICAL_GOODS"}]}]}
        t0 = time.perf_counter()
        created = await emulator.post("/v2/checkout/orders", json=body,
                                      headers={**bearer, "PayPal-Request-Id": f"{ref}-create"})
        t1 = time.perf_counter()
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        await approve(emulator, order_id)
        t2 = time.perf_counter()
        captured = await emulator.post(f"/v2/checkout/orders/{order_id}/capture",
                                       headers={**bearer, "PayPal-Request-Id": f"{ref}-capture"})
        t3 = time.perf_counter()
        assert captured.status_code == 201 and captured.json()["status"] == "COMPLETED", (
            captured.text)
        return (t1 - t0) + (t3 - t2)

    return one


async def measure(name: str, flow: Flow, emulator: httpx.AsyncClient, orders: int,
                  concurrency: int, first: int, pids: tuple[int, int] | None = None) -> Result:
    """Run `orders` orders through `flow` with `concurrency` workers (and, given the pids of
    paywire and the emulator, the CPU each process spent per order, paywire's once its work
    after the answers is done)."""
    queue = iter(range(first, first + orders))
    latencies: list[float] = []

    async def worker() -> None:
        for n in queue:
            latencies.append(await flow(emulator, n))

    def used() -> tuple[float, float, float]:
        return (cpu_seconds(pids[0]), cpu_seconds(pids[1]), time.process_time()) if pids else (
            0.0, 0.0, 0.0)

    if pids:
        await settled(pids[0])
    before = used()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if pids:
        await settled(pids[0])
    after = used()
    cpu = tuple(1000 * (b - a) / orders for a, b in zip(before, after, strict=True))
    return Result(name, orders, seconds, latencies, (cpu[0], cpu[1], cpu[2]))


async def bench(paywire_url: str, emulator_url: str, orders: int, concurrencies: list[int],
                pids: tuple[int, int] | None = None) -> list[tuple[int, Result, Result]]:
    """Warm up, then measure raw and paywire flows in the same run at each concurrency."""
    top = max(concurrencies)
    limits = httpx.Limits(max_connections=2 * top, max_keepalive_connections=2 * top)
    async with httpx.AsyncClient(base_url=emulator_url, timeout=30, limits=limits) as emulator, \
            httpx.AsyncClient(base_url=paywire_url, timeout=30, limits=limits) as paywire:
        token_r = await emulator.post("/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET),
                                      data={"grant_type": "client_credentials"})
        token_r.raise_for_status()
        run_id = str(time.time_ns())
        raw = raw_flow(token_r.json()["access_token"], run_id)
        through = paywire_flow(paywire)
        await measure("warm-up", raw, emulator, WARMUP, top, 0)
        await measure("warm-up", through, emulator, WARMUP, top, 0)
        out = []
        for n, concurrency in enumerate(concurrencies):
            first = WARMUP + n * orders
            raw_result = await measure("(b) raw httpx -> emulator", raw, emulator, orders,
                                       concurrency, first, pids)
            paywire_result = await measure("(a) through paywire's API", through, emulator,
                                           orders, concurrency, first, pids)
            out.append((concurrency, paywire_result, raw_result))
    return out


def report(runs: list[tuple[int, Result, Result]], data_dir: str) -> dict[str, float]:
    """Print the figures and the paywire/raw ratios; the figures under goals.py's keys."""
    print(f"checkout throughput: {runs[0][1].orders} orders per side and concurrency, on "
          f"{goals.machine()} (CI machines have 2 cores)")
    print("processes: PayPal emulator (1), paywire API (1 uvicorn worker, SQLite WAL in "
          f"{data_dir}), this load generator; all on loopback HTTP")
    print(f"{'':28} {'orders/s':>9} {'p50 ms':>8} {'p95 ms':>8}   (latency: create + capture)"
          "   CPU ms per order: paywire / emulator / load generator")
    figures: dict[str, float] = {}
    for concurrency, paywire, raw in runs:
        print(f"concurrency {concurrency}")
        for r, kind in ((paywire, "paywire"), (raw, "raw")):
            print(f"{r.name:28} {r.rate:9.1f} {r.percentile(50):8.1f} {r.percentile(95):8.1f}"
                  f"   {r.cpu[0]:5.2f} / {r.cpu[1]:5.2f} / {r.cpu[2]:5.2f}")
            figures.update({f"checkout.c{concurrency}.{kind}.rate": r.rate,
                            f"checkout.c{concurrency}.{kind}.p50": r.percentile(50),
                            f"checkout.c{concurrency}.{kind}.p95": r.percentile(95),
                            f"checkout.c{concurrency}.{kind}.cpu_ms.paywire": r.cpu[0],
                            f"checkout.c{concurrency}.{kind}.cpu_ms.emulator": r.cpu[1],
                            f"checkout.c{concurrency}.{kind}.cpu_ms.generator": r.cpu[2]})
        print(f"ratio paywire/raw: throughput {paywire.rate / raw.rate:.2f}x, "
              f"p50 latency {paywire.percentile(50) / raw.percentile(50):.2f}x, "
              f"p95 latency {paywire.percentile(95) / raw.percentile(95):.2f}x")
    return figures


def main() -> None:
    """Parse arguments, start both servers, measure, report, stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full",
                        help="preset for the options below (default full: 200, 1 then 8)")
    parser.add_argument("--orders", type=int, default=None,
                        help="orders per side and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=None,
                        help="workers, one measured pass each")
    goals.add_arguments(parser)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, *rest = args.serve
        if kind == "emulator":
            serve_emulator(int(rest[0]))
        else:
            serve_paywire(int(rest[0]), rest[1], rest[2])
        return
    sized(args, SIZES)
    if args.orders < 2 or min(args.concurrency) < 1:
        parser.error("--orders must be at least 2 and --concurrency at least 1")
    with tempfile.TemporaryDirectory(prefix="paywire-bench-") as data_dir:
        emulator_port, paywire_port = free_ports(2)
        emulator_url = f"http://127.0.0.1:{emulator_port}"
        paywire_url = f"http://127.0.0.1:{paywire_port}"
        procs = [spawn("emulator", str(emulator_port))]
        try:
            wait_up(f"{emulator_url}/_emulator/", procs[0])
            procs.append(spawn("paywire", str(paywire_port), emulator_url, data_dir))
            wait_up(f"{paywire_url}/healthz", procs[1])
            runs = asyncio.run(bench(paywire_url, emulator_url, args.orders,
                                     args.concurrency, (procs[1].pid, procs[0].pid)))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=15)
        figures = report(runs, data_dir)
    goals.report(figures, bench="checkout_throughput", json_path=args.json,
                 settings=settings(args))


if __name__ == "__main__":
    main()
