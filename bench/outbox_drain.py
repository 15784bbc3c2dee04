"""Outbox drain rate on PostgreSQL: paywire's worker against a bare load generator, same shop.

    .venv/bin/python bench/outbox_drain.py [--size tiny|small|full] [--rows 20000]
        [--slow-rows 4000] [--batch 100] [--concurrency 20] [--profile FILE] [--json PATH]

A fresh PostgreSQL database (PAYWIRE_TEST_POSTGRES_URL, default the local `test` server) is
migrated. A shop receiver (Starlette under uvicorn, a child process) answers 204 to every signed
Standard Webhooks POST on `/fulfil` (at once) and on `/fulfil/slow` (after `--delay`, 100 ms),
recording each request's `webhook-id` and the fact (order) it was about. In one run, against
that one shop:

1. bare: this process, as a load generator (httpx, `--concurrency` in flight, as the worker),
   POSTs `--rows` messages exactly as the worker would send them (the same envelope and
   signature code, signed beforehand): what the shop and the loopback allow;
2. 1 worker: `--rows` order.completed announcements are put in the outbox through the store
   port, then one worker process (`paywire worker`'s wiring: `bootstrap.outbox_worker` from
   Settings, batch `--batch`, `--concurrency` in flight) drains them;
3. 4 workers: the same with fresh rows and four processes (distinct lease owners);
4. slow shop: the load generator, then one worker on `--slow-rows` fresh rows, the shop
   answering after `--delay`: a latency-bound drain, compared with its ceiling
   `concurrency / delay` (the goal) and with the load generator's figure.

Each drain is timed from the moment the already started and connected workers are told to go
until no row is pending (polled every 20 ms), so process start-up is not counted. Printed: rows
per second for each, the ratios, CPU milliseconds per row (the worker processes', or this
process's for the load generator: steadier than rates on a shared machine), how many requests
the shop took, and the count of facts the shop heard under two or more distinct message ids
(must be 0, or the bench exits 1; a message id heard twice is allowed: at least once).
`--profile FILE` runs the 1-worker drain under cProfile (slower: its figure is not the real one)
and prints its top functions. The machines have 2 cores: the shop, the database, the workers and
the load generator share them, so 4 workers are not expected to be 4 times faster. Not part of
`make test`; `make bench` runs `--size small`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import pstats
import secrets
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import benchkit
import goals
import httpx
import sqlalchemy as sa
from benchkit import load, settings, sized

from paywire.delivery.http_callback import HttpCallbackTarget, delivery_body
from paywire.domain.facts import Announcement
from paywire.ports import OutboxMessage
from paywire.store import migrate
from paywire.store.sql import SqlStore
from paywire.testing import free_port

SECRET = "whsec_" + base64.b64encode(b"paywire-bench-outbox-secret-0123").decode()
POSTGRES_URL = os.environ.get("PAYWIRE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SIZES = {"tiny": {"rows": 300, "slow_rows": 100},
         "small": {"rows": 3000, "slow_rows": 800},
         "full": {"rows": 20_000, "slow_rows": 4000}}


# --- the shop and the workers (child processes) --------------------------------------------------


def serve_shop(port: int, delay: float) -> None:
    """The shop receiver (child process): 204 to everything, remembers ids per fact."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    ids_by_fact: dict[str, set[str]] = defaultdict(set)
    requests = [0]

    async def fulfil(request: Request) -> Response:
        body = json.loads(await request.body())
        ids_by_fact[body["order_id"]].add(request.headers["webhook-id"])
        requests[0] += 1
        return Response(status_code=204)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(delay)
        return await fulfil(request)

    async def stats(request: Request) -> Response:
        return JSONResponse({"requests": requests[0], "facts": len(ids_by_fact),
                             "two_ids": sum(1 for s in ids_by_fact.values() if len(s) > 1)})

    app = Starlette(routes=[Route("/fulfil", fulfil, methods=["POST"]),
                            Route("/fulfil/slow", slow, methods=["POST"]),
                            Route("/stats", stats)])
    benchkit.serve(app, port)


def run_worker(url: str, shop: str, batch: int, concurrency: int, profile: str) -> None:
    """One worker process (child), wired as `paywire worker` wires it: prints `ready` once
    connected, starts on a line on stdin, delivers until SIGTERM, then prints its counters (and
    writes its cProfile statistics to `profile`, unless that is `-`)."""
    import cProfile

    from paywire.bootstrap import SystemClock, outbox_worker, store_for
    from paywire.settings import Settings

    config = Settings.load(database_url=url, fulfilment_url=shop, fulfilment_secret=SECRET,
                           outbox_batch=batch, outbox_concurrency=concurrency)

    async def drain() -> dict[str, int]:
        store = store_for(config)
        worker = outbox_worker(config, store, SystemClock())
        assert worker is not None
        try:
            async with store.transaction() as uow:  # connect before the clock starts
                await uow.outbox_counts()
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            if profiler is not None:
                profiler.enable()
            cpu = time.process_time()
            try:
                await worker.run(stop, interval=0.02)
            finally:
                cpu = time.process_time() - cpu
                if profiler is not None:
                    profiler.disable()
        finally:
            await worker.aclose()
            await store.close()
        return {**worker.counters, "cpu_us": round(1e6 * cpu)}

    profiler = cProfile.Profile() if profile != "-" else None
    counters = asyncio.run(drain())
    if profiler is not None:
        profiler.dump_stats(profile)
    print(json.dumps(counters), flush=True)  # the parent reads the last line


# --- the parent: seed, start, time ---------------------------------------------------------------


def announcement(tag: str, i: int) -> tuple[Announcement, str]:
    """The `i`-th order.completed of a run, and its message id."""
    order_id = f"ord_{tag}_{i}"
    return Announcement(f"order.completed:{order_id}", "order.completed", order_id,
                        {"order_id": order_id, "amount": "10.00", "currency": "USD"}
                        ), f"msg_{tag}_{i}"


async def seed(url: str, rows: int, tag: str) -> None:
    """`rows` announcements through the store port, 1000 per transaction."""
    store = SqlStore(url)
    now = datetime.now(UTC)
    try:
        for start in range(0, rows, 1000):
            async with store.transaction() as uow:
                for i in range(start, min(rows, start + 1000)):
                    await uow.add_announcement(*announcement(tag, i), now)
    finally:
        await store.close()


@dataclass(frozen=True)
class Signed:
    """One message as the worker would POST it: envelope bytes and Standard Webhooks headers."""

    body: bytes
    headers: dict[str, str]


def signed(shop: str, rows: int, tag: str) -> list[Signed]:
    """`rows` messages shaped as `seed` writes them, signed by the worker's own target code."""
    target = HttpCallbackTarget(shop, SECRET)
    now = datetime.now(UTC)
    out = []
    for i in range(rows):
        fact, message_id = announcement(tag, i)
        message = OutboxMessage(message_id, fact.key, fact.type, fact.order_id, fact.payload, now)
        body = delivery_body(message)
        out.append(Signed(body, target.headers(message, body, now)))
    return out


@dataclass
class Drain:
    """One timed drain."""

    rows: int
    seconds: float
    counters: dict[str, int]

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per row of the worker processes (or the load generator)."""
        return self.counters.get("cpu_us", 0) / 1000 / self.rows


def drain(url: str, shop: str, workers: int, rows: int, args: argparse.Namespace,
          profile: str = "-") -> Drain:
    """Seed `rows`, start `workers` processes, time from `go` until none is pending."""
    asyncio.run(seed(url, rows, f"{workers}w{secrets.token_hex(2)}"))
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", url, shop,  # noqa: S603
                               str(args.batch), str(args.concurrency), profile],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(workers)]
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"),
                              poolclass=sa.NullPool)
    counters: dict[str, int] = defaultdict(int)
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit("an outbox worker failed to start")
        query = sa.text("SELECT 1 FROM outbox WHERE status = 'pending' LIMIT 1")
        with engine.connect() as conn:
            started = time.perf_counter()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            while conn.execute(query).first() is not None:
                conn.commit()
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            if proc.returncode == 0 and out.strip():
                for name, n in json.loads(out.strip().splitlines()[-1]).items():
                    counters[name] += n
    return Drain(rows, elapsed, dict(counters))


def top_lines(profile: str, n: int = 18) -> None:
    """The profiled worker's top functions by own time, then by cumulative time."""
    for key in ("tottime", "cumulative"):
        print(f"--- 1-worker profile, top {n} by {key} ---")
        pstats.Stats(profile).strip_dirs().sort_stats(key).print_stats(n)


def shop_stats(port: int) -> dict[str, Any]:
    """The shop's counts so far."""
    stats: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()
    return stats


def main() -> None:
    """Run the benchmark (or, given the hidden options, one of its child processes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full",
                        help="preset for --rows and --slow-rows (default full)")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--slow-rows", type=int, default=None)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.1,
                        help="the slow shop's answer time in seconds (default 0.1)")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="profile the 1-worker drain (cProfile statistics to FILE)")
    goals.add_arguments(parser)
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--serve-shop", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_shop:
        serve_shop(int(args.serve_shop[0]), float(args.serve_shop[1]))
        return
    if args.worker:
        url, shop, batch, concurrency, profile = args.worker
        run_worker(url, shop, int(batch), int(concurrency), profile)
        return
    sized(args, SIZES)
    if args.rows < 1 or args.slow_rows < 1:
        parser.error("--rows and --slow-rows must be at least 1")
    server = sa.make_url(POSTGRES_URL)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"paywire_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    port = free_port()
    shop_proc = subprocess.Popen([sys.executable, __file__,  # noqa: S603
                                  "--serve-shop", str(port), str(args.delay)])
    try:
        migrate.upgrade(url)
        for _ in range(100):
            try:
                shop_stats(port)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        shop = f"http://127.0.0.1:{port}/fulfil"
        bare = bare_run(shop, args.rows, args.concurrency)
        one = drain(url, shop, 1, args.rows, args, args.profile or "-")
        four = drain(url, shop, 4, args.rows, args)
        bare_slow = bare_run(f"{shop}/slow", args.slow_rows, args.concurrency)
        slow = drain(url, f"{shop}/slow", 1, args.slow_rows, args)
        stats = shop_stats(port)
    finally:
        shop_proc.terminate()
        shop_proc.wait(timeout=10)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    figures = report(args, bare, one, four, bare_slow, slow, stats)
    goals.report(figures, bench="outbox_drain", json_path=args.json, settings=settings(args))
    if stats["two_ids"] or stats["facts"] < 3 * args.rows + 2 * args.slow_rows:
        raise SystemExit(1)


def bare_run(url: str, rows: int, concurrency: int) -> Drain:
    """The load generator: `rows` signed messages to `url`, `concurrency` in flight."""
    payloads = signed(url, rows, f"bare{secrets.token_hex(2)}")
    cpu = time.process_time()
    result = asyncio.run(load("bare load generator", url, payloads, concurrency))
    cpu = time.process_time() - cpu
    if result.statuses != {"204": rows}:
        raise SystemExit(f"the shop answered the load generator {result.statuses}")
    return Drain(rows, result.seconds, {"cpu_us": round(1e6 * cpu)})


def report(args: argparse.Namespace, bare: Drain, one: Drain, four: Drain, bare_slow: Drain,
           slow: Drain, stats: dict[str, Any]) -> dict[str, float]:
    """Print the figures; the ones the goals read."""
    ideal = args.concurrency / args.delay
    print(f"outbox drain on PostgreSQL: {args.rows} rows per run ({args.slow_rows} to the slow "
          f"shop), batch {args.batch}, {args.concurrency} in flight per worker (and for the "
          f"load generator); {goals.machine()}")
    print(f"  {'':34} {'rows/s':>8} {'ratio':>15} {'CPU ms/row':>11}   worker counters")
    rows = [("bare load generator", bare, ""),
            ("1 worker" + (" (under cProfile)" if args.profile else ""), one,
             f"{one.rate / bare.rate:.2f}x bare"),
            ("4 workers", four, f"{four.rate / bare.rate:.2f}x bare"),
            (f"bare, shop answering in {1000 * args.delay:.0f} ms", bare_slow,
             f"{bare_slow.rate / ideal:.2f}x ceiling"),
            (f"1 worker, shop answering in {1000 * args.delay:.0f} ms", slow,
             f"{slow.rate / ideal:.2f}x ceiling")]
    for name, d, ratio in rows:
        counters = {k: v for k, v in d.counters.items() if k != "cpu_us"}
        print(f"  {name:34} {d.rate:8.0f} {ratio:>15} {d.cpu_ms:11.3f}   {counters or ''}")
    print(f"  4 workers / 1 worker: {four.rate / one.rate:.2f}x; slow shop ceiling "
          f"{ideal:.0f} rows/s (in flight / delay); 1 worker / bare on the slow shop: "
          f"{slow.rate / bare_slow.rate:.2f}x")
    expected = 3 * args.rows + 2 * args.slow_rows
    print(f"  shop requests: {stats['requests']} for {stats['facts']} facts "
          f"({stats['requests'] - stats['facts']} redeliveries; {expected} facts sent)")
    print(f"  facts delivered under two or more ids: {stats['two_ids']} (must be 0)")
    if args.profile:
        top_lines(args.profile)
    figures = {"outbox.bare.rate": bare.rate, "outbox.w4.rate": four.rate,
               "outbox.slow.bare.rate": bare_slow.rate, "outbox.slow.w1.rate": slow.rate,
               "outbox.slow.ideal.rate": ideal, "outbox.bare.cpu_ms": bare.cpu_ms,
               "outbox.w4.cpu_ms": four.cpu_ms, "outbox.slow.w1.cpu_ms": slow.cpu_ms}
    if not args.profile:  # a profiled drain is slower than the real one
        figures.update({"outbox.w1.rate": one.rate, "outbox.w1.cpu_ms": one.cpu_ms})
    return figures


if __name__ == "__main__":
    main()
