"""Cost as data grows: webhook ingest and checkout with 1,000 orders stored against 1,000,000.

    .venv/bin/python bench/growth.py [--size tiny|small|full] [--orders 1000000] [--small 1000]
                                     [--stores sqlite,postgres] [--deliveries 3000]
                                     [--checkouts 1000] [--concurrency 8] [--repeats 20]
                                     [--plans] [--json PATH]
    .venv/bin/python bench/growth.py --size tiny   # 200 against 50 orders, seconds a store

For each store (a SQLite file; a fresh database on the PostgreSQL server at
PAYWIRE_TEST_POSTGRES_URL, default the local `test` server), two databases are migrated with
paywire's Alembic migrations and seeded by bulk insert (bench/growthseed.py: every table, in the
proportions paywire's flows write them) with `--small` and `--orders` orders. Then, on each:

- every query the store issues (each method of the store port, with the filters and cursors
  its callers pass) is timed, median of `--repeats`, and explained (bench/growthplans.py):
  SQLite `EXPLAIN QUERY PLAN`, PostgreSQL `EXPLAIN ANALYZE`; a plan reading a whole table is
  flagged (every plan is printed with `--plans`);
- paywire's API runs on each database, two child processes at once (one uvicorn worker each,
  the truth fetcher, the reconciler and the outbox worker on, delivering to a local sink),
  against the PayPal emulator over HTTP (reset before each store). Webhook ingest:
  `--deliveries` signed deliveries of orders each paywire created and the emulator captured
  (recorded as the emulator sent them, then replayed, as bench/webhook_ingest.py does);
  checkout: `--checkouts` orders created (with an Idempotency-Key), approved and captured
  through the API, as bench/checkout_throughput.py does. Each after a warm-up of its own, and
  in `--batches` batches alternating between the two servers (the first of each pair turning),
  so whatever else the machine runs meanwhile weighs on both sizes alike.

Printed: the figures at both sizes, the ratio large/small per store and the goal (>= 0.9x) next
to it, the query timings and the flagged plans; then the goal table (bench/goals.py: figures
`growth.<store>.<ingest|checkout>.<small|large>.rate`), also written to `--json`. Sizes:
`tiny` (200 against 50 orders) proves it works, `small` (`make bench`) 20,000 against 1,000,
`full` (docs/benchmarks.md) 1,000,000 against 1,000. The ratios of one run are what count (2 cores
in CI, shared by every process here). Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import benchkit
import checkout_throughput as ct
import goals
import growthplans
import growthseed
import httpx
import sqlalchemy as sa
import webhook_ingest as wi
from benchkit import Result, load, serve_echo, settings, sized, wait_up

from paywire.store import migrate
from paywire.testing import free_port, free_ports

POSTGRES_URL = os.environ.get("PAYWIRE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHOP_SECRET = "whsec_" + base64.b64encode(b"paywire-bench-growth-secret-0123").decode()
GOAL = 0.9
GREW = 3.0  # a query this many times slower at the large size has its plan printed
SIZES = {
    "tiny": {"orders": 200, "small": 50, "deliveries": 30, "checkouts": 10, "repeats": 2,
             "warmup": 3, "batches": 2},
    "small": {"orders": 20_000, "small": 1_000, "deliveries": 300, "checkouts": 100,
              "repeats": 5, "warmup": 10, "batches": 5},
    # Full: long enough a pass to be a measurement on a fast machine (600 deliveries and 200
    # checkouts, 0.2 s a batch at 700 deliveries/s, swung SQLite's ratios 0.73-1.31x and
    # 0.76-0.96x over five runs of one code; 3,000 and 1,000 gave 0.98/1.06x and 1.00/1.04x).
    "full": {"orders": 1_000_000, "small": 1_000, "deliveries": 3_000, "checkouts": 1_000,
             "repeats": 20, "warmup": 10, "batches": 5},
}
T = TypeVar("T")


# --- the servers (child processes) -------------------------------------------------------------


def serve_paywire(port: int, emulator_url: str, data_dir: str, database_url: str,
                  webhook_id: str, shop_url: str) -> None:
    """paywire for the emulator on `database_url`, as a shop runs it: local webhook
    verification, the truth fetcher, the reconciler and the outbox worker (to `shop_url`)."""
    from paywire.bootstrap import create_app
    from paywire.settings import Settings

    settings = Settings.load(
        paypal_env="emulator", paypal_base_url=emulator_url, paypal_client_id=wi.CLIENT_ID,
        paypal_client_secret=wi.CLIENT_SECRET, data_dir=Path(data_dir),
        database_url=database_url, paypal_webhook_id=webhook_id, webhook_verification="local",
        outbox_worker_enabled=True, fulfilment_url=shop_url, fulfilment_secret=SHOP_SECRET)
    benchkit.serve(create_app(settings), port)


def spawn(*args: str) -> subprocess.Popen[bytes]:
    """This script in a child process, serving one side."""
    return benchkit.spawn(__file__, *args)


@contextmanager
def running(*args: str, health: str) -> Iterator[subprocess.Popen[bytes]]:
    """A child server, up (its `health` URL answers) until the block ends."""
    proc = spawn(*args)
    try:
        wait_up(health, proc)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- the databases -----------------------------------------------------------------------------


@dataclass
class Database:
    """One seeded database."""

    store: str
    orders: int
    url: str
    seeded: growthseed.Seeded
    bytes: int


@contextmanager
def database(store: str, orders: int, tmp: str) -> Iterator[Database]:
    """A migrated database seeded with `orders` orders, dropped afterwards."""
    now = growthseed.now_utc()
    if store == "sqlite":
        path = Path(tmp, f"paywire-{orders}-{secrets.token_hex(3)}.db")
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        seeded = growthseed.seed_sqlite(str(path), orders, now)
        _check(url)
        try:
            yield Database(store, orders, url, seeded, path.stat().st_size)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    server = sa.make_url(POSTGRES_URL)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"paywire_growth_{orders}_{secrets.token_hex(3)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(url)
        seeded = growthseed.seed_postgres(url, orders, now)
        _check(url)
        with admin.connect() as conn:
            size = conn.execute(sa.text("SELECT pg_database_size(:n)"), {"n": name}).scalar()
        yield Database(store, orders, url, seeded, int(size or 0))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _check(url: str) -> None:
    problems = migrate.check(url)
    if problems:
        raise SystemExit(f"the seeded schema is not the migrations': {problems}")


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Measured:
    """Ingest and checkout on one database."""

    ingest: Result
    checkout: ct.Result


async def record(paywire: str, emulator: str, sink: str, orders: int,
                 concurrency: int) -> list[wi.Delivery]:
    """`orders` orders created through paywire and captured at the emulator; the deliveries
    of theirs the emulator sent to `sink`, first attempts, in the order sent."""
    async with httpx.AsyncClient(base_url=emulator, timeout=30) as emu, \
            httpx.AsyncClient(base_url=paywire, timeout=30) as pw:
        token = (await emu.post("/v1/oauth2/token", auth=(wi.CLIENT_ID, wi.CLIENT_SECRET),
                                data={"grant_type": "client_credentials"})).json()["access_token"]
        ours: set[str] = set()
        queue = iter(range(orders))

        async def worker() -> None:
            for n in queue:
                created = (await pw.post("/v1/checkout/orders", json={
                    "items": [{"sku": "mug", "quantity": 1}]})).json()
                paypal_id = created["provider_order_id"]
                ours.add(paypal_id)
                await ct.approve(emu, paypal_id)
                r = await emu.post(f"/v2/checkout/orders/{paypal_id}/capture", headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                    "PayPal-Request-Id": f"growth-{n}-capture"})
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        for _ in range(600):
            log = (await emu.get("/_emulator/deliveries")).json()["deliveries"]
            sent = [a for a in log if a["url"] == sink and a["status"] == 200
                    and a["attempt"] == 1 and _paypal_order(a) in ours]
            if len(sent) >= 3 * orders:
                break
            await asyncio.sleep(0.05)
    keep = ("paypal-", "content-type", "user-agent")
    return [wi.Delivery(base64.b64decode(a["body_base64"]),
                        {k: v for k, v in a["headers"].items() if k.lower().startswith(keep)})
            for a in sorted(sent, key=lambda a: a["started_at"])]


def _paypal_order(attempt: dict[str, str]) -> str | None:
    resource = json.loads(base64.b64decode(attempt["body_base64"]))["resource"]
    if "purchase_units" in resource:
        return str(resource["id"])
    related = resource.get("supplementary_data", {}).get("related_ids", {})
    return related.get("order_id")


def _batches(items: list[T], n: int) -> list[list[T]]:
    """`items` in `n` consecutive batches of (nearly) equal size."""
    size, extra = divmod(len(items), n)
    cuts = [i * size + min(i, extra) for i in range(n + 1)]
    return [items[cuts[i]:cuts[i + 1]] for i in range(n)]


def _joined(name: str, parts: list[Result]) -> Result:
    """Batches of one load as one result (their seconds added: the other server's batches
    ran in between)."""
    statuses: dict[str, int] = {}
    for part in parts:
        for key, count in part.statuses.items():
            statuses[key] = statuses.get(key, 0) + count
    return Result(name, sum(p.seconds for p in parts), [x for p in parts for x in p.latencies],
                  statuses)


async def measure_api(servers: list[str], emulator: str, sink: str,
                      args: argparse.Namespace) -> list[Measured]:
    """Record each server's deliveries, then measure ingest and checkout on all of them in
    `args.batches` alternating batches (the order turned each time), so the machine's other
    load falls on every database alike."""
    concurrency, warm, n = args.concurrency, args.warmup, args.batches
    recorded = [await record(url, emulator, sink, args.deliveries // 3 + warm, concurrency)
                for url in servers]
    hooks = [f"{url}/webhooks/paypal" for url in servers]
    for hook, deliveries in zip(hooks, recorded, strict=True):
        await load("warm-up", hook, deliveries[:3 * warm], concurrency)
    ingest: list[list[Result]] = [[] for _ in servers]
    planned = [_batches(d[3 * warm:], n) for d in recorded]
    for b in range(n):
        for i in _turn(len(servers), b):
            ingest[i].append(await load("webhook ingest", hooks[i], planned[i][b], concurrency))
    limits = httpx.Limits(max_connections=2 * concurrency,
                          max_keepalive_connections=2 * concurrency)
    checkout: list[list[ct.Result]] = [[] for _ in servers]
    async with httpx.AsyncClient(base_url=emulator, timeout=30, limits=limits) as emu:
        clients = [httpx.AsyncClient(base_url=url, timeout=30, limits=limits)
                   for url in servers]
        try:
            run = secrets.token_hex(4)
            flows = [ct.paywire_flow(c, key_prefix=f"growth-{run}-{i}")
                     for i, c in enumerate(clients)]
            for flow in flows:
                await ct.measure("warm-up", flow, emu, warm, concurrency, 0)
            sizes = [len(b) for b in _batches(list(range(args.checkouts)), n)]
            for b in range(n):
                for i in _turn(len(servers), b):
                    checkout[i].append(await ct.measure("checkout", flows[i], emu, sizes[b],
                                                        concurrency, warm + sum(sizes[:b])))
        finally:
            for c in clients:
                await c.aclose()
    return [Measured(_joined("webhook ingest", ingest[i]),
                     ct.Result("checkout", sum(r.orders for r in checkout[i]),
                               sum(r.seconds for r in checkout[i]),
                               [x for r in checkout[i] for x in r.latencies]))
            for i in range(len(servers))]


def _turn(count: int, batch: int) -> list[int]:
    """Which server goes first in a batch: the order turns each time."""
    return [(batch + k) % count for k in range(count)]


def measure(dbs: list[Database], emulator: str, sink: str, tmp: str,
            args: argparse.Namespace) -> list[Measured]:
    """paywire on each of `dbs` at once, against a freshly reset emulator: ingest and
    checkout, interleaved."""
    httpx.post(f"{emulator}/_emulator/reset", timeout=10).raise_for_status()
    webhook_id = wi.subscribe(emulator, f"{sink}/webhooks/paypal")
    with ExitStack() as stack:
        servers = []
        for db in dbs:
            port = free_port()
            data_dir = Path(tmp, f"data-{db.store}-{db.orders}-{port}")
            data_dir.mkdir()
            stack.enter_context(running(
                "paywire", str(port), emulator, str(data_dir), db.url, webhook_id,
                f"{sink}/shop", health=f"http://127.0.0.1:{port}/healthz"))
            servers.append(f"http://127.0.0.1:{port}")
        return asyncio.run(measure_api(servers, emulator, f"{sink}/webhooks/paypal", args))


# --- report ------------------------------------------------------------------------------------


def _ratio_line(what: str, unit: str, small: float, large: float) -> str:
    ratio = large / small
    verdict = "ok" if ratio >= GOAL else "BELOW GOAL"
    return (f"  {what:16} {small:9.1f} {unit:9} {large:9.1f} {unit:9}  ratio "
            f"{ratio:5.2f}x   goal >= {GOAL}x: {verdict}")


def report_store(store: str, dbs: list[Database], measured: list[Measured],
                 probed: list[list[growthplans.Probed]], show_plans: bool,
                 phases: dict[str, float]) -> None:
    """One store's figures: seeding, ingest and checkout at both sizes, the queries."""
    small, large = dbs
    print(f"\n== {store}: {small.orders:,} orders against {large.orders:,} "
          f"({os.cpu_count()} cores here; CI has 2; every process shares them)")
    print("  took " + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()))
    for db in dbs:
        s = db.seeded
        print(f"  seeded {db.orders:>10,} orders: {sum(s.rows.values()):>11,} rows, "
              f"{db.bytes / 1e9:6.2f} GB in {s.seconds:6.1f} s (indexes built in "
              f"{s.index_seconds:.1f} s)")
    if measured:
        report_api(small.orders, large.orders, *measured)
    report_queries(small.orders, large.orders, probed, show_plans)


def report_api(small: int, large: int, a: Measured, b: Measured) -> None:
    """Ingest and checkout at both sizes, their ratios and the goal."""
    print(f"  {'':16} {f'{small:,} orders':>19} {f'{large:,} orders':>19}")
    print(_ratio_line("webhook ingest", "req/s", a.ingest.rate, b.ingest.rate))
    print(f"  {'':16} p50 {a.ingest.percentile(50):5.1f} ms   p99 {a.ingest.percentile(99):5.1f}"
          f" ms  p50 {b.ingest.percentile(50):5.1f} ms   p99 {b.ingest.percentile(99):5.1f} ms"
          f"   answers: {_answers(a.ingest)} | {_answers(b.ingest)}")
    print(_ratio_line("checkout", "orders/s", a.checkout.rate, b.checkout.rate))
    print(f"  {'':16} p50 {a.checkout.percentile(50):5.1f} ms   p95 "
          f"{a.checkout.percentile(95):5.1f} ms  p50 {b.checkout.percentile(50):5.1f} ms   p95 "
          f"{b.checkout.percentile(95):5.1f} ms   (create + capture)")


def report_queries(small: int, large: int, probed: list[list[growthplans.Probed]],
                   show_plans: bool) -> None:
    """Each port method's time at both sizes, and the plans worth reading."""
    print("  store queries (each port method, in a transaction rolled back; median ms):")
    print(f"  {'':42} {f'{small:,}':>10} {f'{large:,}':>10}   ratio  plan at {large:,}")
    shown: list[tuple[str, growthplans.Statement]] = []
    for p_small, p_large in zip(*probed, strict=True):
        if p_large.seconds is None or p_small.seconds is None:
            print(f"  {p_large.name:42} {'-':>10} {'-':>10}   ({p_large.error or p_small.error})")
            continue
        ratio = p_large.seconds / p_small.seconds
        grew = ratio > GREW and p_large.seconds > 0.001
        notes = sorted(set(p_large.flags)) + (
            ["sorts its matches"] if any(st.sorts for st in p_large.statements) else [])
        note = ", ".join(notes) or "no full scan"
        print(f"  {p_large.name:42} {1000 * p_small.seconds:10.2f} {1000 * p_large.seconds:10.2f}"
              f"   {ratio:5.1f}x  {note}{'  <- GREW' if grew else ''}")
        shown += [(p_large.name, st) for st in p_large.statements
                  if show_plans or st.flags or (grew and st.plan)]
    missing = growthplans.unprobed()
    if missing:
        print(f"  NOT PROBED (add them to bench/growthplans.py): {', '.join(missing)}")
    if shown:
        print(f"  plans at {large:,} orders" + ("" if show_plans else
              " of the flagged queries and of those that grew (--plans: all)") + ":")
    for name, st in shown:
        print(f"\n  -- {name}: {' '.join(st.sql.split())[:400]}")
        for line in st.plan:
            print(f"     {line}")


def _answers(result: Result) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(result.statuses.items()))


def run_store(store: str, args: argparse.Namespace, emulator: str,
              sink: str) -> dict[str, float]:
    """Seed both sizes, probe, measure and report one store; its goal figures."""
    phases: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        phases[name] = time.perf_counter() - started
        started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="paywire-growth-") as tmp:
        with database(store, args.small, tmp) as small, \
                database(store, args.orders, tmp) as large:
            dbs = [small, large]
            lap("seeding")
            now = growthseed.now_utc()
            probed = [growthplans.run(db.url, now, args.repeats) for db in dbs]
            lap("queries")
            measured = measure(dbs, emulator, sink, tmp, args) if args.api else []
            if args.api:
                lap("API runs")
        lap("dropping")
    report_store(store, dbs, measured, probed, args.plans, phases)
    figures: dict[str, float] = {}
    for size, m in zip(("small", "large"), measured, strict=False):
        figures[f"growth.{store}.ingest.{size}.rate"] = m.ingest.rate
        figures[f"growth.{store}.checkout.{size}.rate"] = m.checkout.rate
    return figures


def main() -> None:
    """Parse arguments; serve one side (child) or run the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=None,
                        help="orders stored in the large database (full size: 1,000,000)")
    parser.add_argument("--small", type=int, default=None,
                        help="orders stored in the small database (full size: 1,000)")
    parser.add_argument("--stores", default="sqlite,postgres",
                        help="comma-separated: sqlite, postgres (default both)")
    parser.add_argument("--deliveries", type=int, default=None,
                        help="webhook deliveries measured per database (full size: 3,000)")
    parser.add_argument("--checkouts", type=int, default=None,
                        help="checkouts measured per database (full size: 1,000)")
    parser.add_argument("--concurrency", type=int, default=8, help="workers (default 8)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="orders (and their deliveries) of warm-up per run (full size: 10)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of each store query, median taken (full size: 20)")
    parser.add_argument("--batches", type=int, default=None,
                        help="batches the measured load is cut into, alternating between the "
                             "two databases (full size: 5)")
    parser.add_argument("--plans", action="store_true", help="print every query's plan")
    parser.add_argument("--no-api", dest="api", action="store_false",
                        help="only seed and explain (no API runs)")
    parser.add_argument("--size", choices=sorted(SIZES), default="full",
                        help="preset for the sizes below (default full: 1,000,000 against "
                             "1,000 orders)")
    parser.add_argument("--quick", action="store_true", help="the same as --size tiny")
    goals.add_arguments(parser)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port, *rest = args.serve
        if kind == "emulator":
            wi.serve_emulator(int(port))
        elif kind == "echo":
            serve_echo(int(port))
        else:
            serve_paywire(int(port), *rest)
        return
    if args.quick:
        args.size = "tiny"
    sized(args, SIZES)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not stores or set(stores) - {"sqlite", "postgres"}:
        parser.error("--stores takes sqlite, postgres or both")
    if args.small < 20 or args.orders < args.small or args.deliveries < 30 or min(
            args.warmup, args.concurrency, args.repeats, args.batches) < 1 or (
            args.checkouts < 2 * args.batches):
        parser.error("need --small >= 20, --orders >= --small, --deliveries >= 30, "
                     "--checkouts >= 2 * --batches, and --warmup, --concurrency, --repeats, "
                     "--batches >= 1")
    ports = free_ports(2)
    emulator, sink = (f"http://127.0.0.1:{p}" for p in ports)
    with running("emulator", str(ports[0]), health=f"{emulator}/_emulator/"), \
            running("echo", str(ports[1]), health=sink):
        figures: dict[str, float] = {}
        for store in stores:
            figures.update(run_store(store, args, emulator, sink))
    goals.report(figures, bench="growth", json_path=args.json, settings=settings(args))


if __name__ == "__main__":
    main()
