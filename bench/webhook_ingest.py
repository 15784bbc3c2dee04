"""Webhook ingest: paywire's `POST /webhooks/paypal` against a bare ASGI echo app, same server.

    .venv/bin/python bench/webhook_ingest.py [--size tiny|small|full] [--deliveries 600]
        [--concurrency 8 1] [--store sqlite|postgres] [--json PATH]

Processes: the PayPal emulator; paywire with local verification (one uvicorn worker, SQLite, or
with `--store postgres` a fresh database on PAYWIRE_TEST_POSTGRES_URL's server, default the
local `test` one); paywire with postback verification (its own copy of the same database, asking
the emulator about every delivery); a bare ASGI app that reads the body and echoes it, under the
same uvicorn settings; and this load generator.

Setup: a webhook subscription is registered for the echo app, so the emulator's real signed
deliveries land there; paywire (local) creates `deliveries / 3` orders, each approved and then
captured at the emulator directly (CHECKOUT.ORDER.APPROVED, PAYMENT.CAPTURE.COMPLETED,
CHECKOUT.ORDER.COMPLETED: distinct event ids). Those deliveries, exactly as sent (bytes and
headers), are recorded from the emulator's log. The postback paywire starts on a copy of the
database taken then (SQLite's backup API; on PostgreSQL `CREATE DATABASE ... TEMPLATE`, the
local paywire stopped meanwhile), so both paywires know the orders and have applied none of the
events.

Measured, in one run over loopback HTTP, for each `--concurrency` (default 8, then 1) on its
own share of the deliveries: the same deliveries to the echo app, to paywire (local: RSA
verification with the certificate cached, inbox insert and the confirmation task in one
transaction, answered `confirming`; then, after the answer, one GET of the order at the emulator
and the transition and outbox row) and to paywire (postback: one more HTTP round trip to the
emulator per delivery); each after a warm-up of its own deliveries. Then the first
concurrency's deliveries to the local paywire again, once they are all stored: every answer
must be `duplicate` (the dedupe path; the bench fails otherwise). Then, from the local paywire's
own database: the time from an order's first delivery being stored to its `order.completed`
announcement being written for the shop (PayPal's claims are confirmed with its API first, so
this is what a shop waits for). The goals (bench/goals.py) are printed last. Not part of
`make test`; `make bench` runs `--size small` on each store.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sqlite3
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import benchkit
import goals
import httpx
import sqlalchemy as sa
from benchkit import (
    Result,
    cpu_seconds,
    load,
    serve_echo,
    server_cpu,
    server_cpu_used,
    settings,
    settled,
    sized,
    wait_up,
)

from paywire.store import migrate
from paywire.testing import free_ports

CLIENT_ID, CLIENT_SECRET = "bench-client-id", "bench-client-secret"
WARMUP_ORDERS = 10
POSTGRES_URL = os.environ.get("PAYWIRE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- the servers (each in a child process) ---------------------------------------------------


def serve_emulator(port: int) -> None:
    """The emulator, quiet."""
    from paywire.emulator import AppCredentials, EmulatorConfig, create_app

    app = create_app(EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)]))
    benchkit.serve(app, port)


def serve_paywire(port: int, emulator_url: str, data_dir: str, webhook_id: str,
                  mode: str, database_url: str = "") -> None:
    """paywire for the emulator, verifying webhooks `mode`-ly; its database `database_url`
    (migrated already), or SQLite in `data_dir` when that is empty."""
    from paywire.bootstrap import create_app
    from paywire.settings import Settings

    settings = Settings.load(paypal_env="emulator", paypal_base_url=emulator_url,
                             paypal_client_id=CLIENT_ID, paypal_client_secret=CLIENT_SECRET,
                             data_dir=Path(data_dir), database_url=database_url,
                             paypal_webhook_id=webhook_id, webhook_verification=mode)
    benchkit.serve(create_app(settings), port)


def spawn(*args: str) -> subprocess.Popen[bytes]:
    """This script in a child process, serving one side."""
    return benchkit.spawn(__file__, *args)


# --- recording real deliveries ---------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One delivery as the emulator sent it."""

    body: bytes
    headers: dict[str, str]


async def make_deliveries(paywire_url: str, emulator_url: str, sink: str, orders: int,
                          concurrency: int) -> list[Delivery]:
    """Orders through paywire, paid at the emulator; the deliveries that reached `sink`."""
    async with httpx.AsyncClient(base_url=emulator_url, timeout=30) as emu, \
            httpx.AsyncClient(base_url=paywire_url, timeout=30) as pw:
        token = (await emu.post("/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET),
                                data={"grant_type": "client_credentials"})).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        queue = iter(range(orders))

        async def worker() -> None:
            for n in queue:
                created = (await pw.post("/v1/checkout/orders", json={
                    "items": [{"sku": "mug", "quantity": 1}]})).json()
                paypal_id = created["provider_order_id"]
                r = await emu.post(f"/_emulator/orders/{paypal_id}/approve",
                                   json={"scenario": "approve"})
                r.raise_for_status()
                r = await emu.post(f"/v2/checkout/orders/{paypal_id}/capture", headers={
                    **bearer, "Content-Type": "application/json",
                    "PayPal-Request-Id": f"bench-{n}-capture"})
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        want = 3 * orders
        for _ in range(600):
            log = (await emu.get("/_emulator/deliveries")).json()["deliveries"]
            sent = [a for a in log if a["url"] == sink and a["status"] == 200]
            if len(sent) >= want:
                break
            await asyncio.sleep(0.05)
    firsts = {a["transmission_id"]: a for a in sent if a["attempt"] == 1}
    ordered = sorted(firsts.values(), key=lambda a: a["started_at"])
    keep = ("paypal-", "content-type", "user-agent")  # not host, length, connection
    return [Delivery(base64.b64decode(a["body_base64"]),
                     {k: v for k, v in a["headers"].items() if k.lower().startswith(keep)})
            for a in ordered]


def copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (the backup API)."""
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


# --- the databases ------------------------------------------------------------------------------


class Databases:
    """The two paywires' databases: SQLite files in a directory, or fresh PostgreSQL databases
    (dropped at the end) on PAYWIRE_TEST_POSTGRES_URL's server."""

    def __init__(self, store: str, tmp: str) -> None:
        self.store, self.tmp = store, Path(tmp)
        self.tag = secrets.token_hex(3)  # this run's suffix
        self.created: list[str] = []
        self.admin = (sa.create_engine(sa.make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT",
                                       poolclass=sa.NullPool) if store == "postgres" else None)

    def url(self, name: str) -> str:
        """paywire's `database_url` for `name` ("" = SQLite in `self.dir(name)`)."""
        if self.admin is None:
            return ""
        return sa.make_url(POSTGRES_URL).set(database=self.created_name(name)).render_as_string(
            hide_password=False)

    def dir(self, name: str) -> Path:
        """paywire's data directory for `name`."""
        path = self.tmp / name
        path.mkdir(exist_ok=True)
        return path

    def created_name(self, name: str) -> str:
        """The PostgreSQL database of `name` (unique to this run)."""
        return f"paywire_bench_{self.tag}_{name}"

    def create(self, name: str) -> None:
        """A fresh, migrated database for `name` (SQLite: paywire creates its own file)."""
        if self.admin is None:
            return
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.created_name(name)}"')
        self.created.append(self.created_name(name))
        migrate.upgrade(self.url(name))

    def copy(self, source: str, target: str) -> None:
        """`target` as a copy of `source` (PostgreSQL: nobody may be connected to `source`)."""
        if self.admin is None:
            copy_sqlite(self.dir(source) / "paywire.db", self.dir(target) / "paywire.db")
            return
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.created_name(target)}" '
                                 f'TEMPLATE "{self.created_name(source)}"')
        self.created.append(self.created_name(target))

    def engine(self, name: str) -> sa.Engine:
        """A synchronous engine on `name`'s database (to read it)."""
        if self.admin is None:
            return sa.create_engine(f"sqlite:///{self.dir(name) / 'paywire.db'}",
                                    poolclass=sa.NullPool)
        return sa.create_engine(self.url(name), poolclass=sa.NullPool)

    def drop(self) -> None:
        """Drop the PostgreSQL databases this run made."""
        if self.admin is None:
            return
        with self.admin.connect() as conn:
            for name in self.created:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.dispose()


# --- load ----------------------------------------------------------------------------------------


def expect(result: Result, answer: str) -> None:
    """Fail unless every delivery of `result` was answered `answer`."""
    if result.statuses != {answer: len(result.latencies)}:
        raise SystemExit(f"{result.name.strip()}: expected every answer {answer!r}, got "
                         f"{result.statuses}")


@dataclass(frozen=True)
class Pass:
    """The measured results at one concurrency: echo, local, postback (and duplicate), and the
    CPU each process spent per delivery on each (`Cpu`)."""

    concurrency: int
    results: list[Result]
    cpu: list[Cpu]


@dataclass(frozen=True)
class Cpu:
    """Milliseconds of CPU per delivery of one measured load: the server it went to (with the
    work it did after answering: the local paywire's confirmation), the emulator (answering
    that confirmation's GET, or the postback), this load generator, and the PostgreSQL
    server's processes (0 on SQLite, whose work is inside paywire's process)."""

    server: float
    emulator: float
    generator: float
    database: float


async def metered(name: str, url: str, part: list[Delivery], concurrency: int, server: int,
                  emulator: int) -> tuple[Result, Cpu]:
    """`load`, and the CPU per delivery of the server (once settled), emulator and generator."""
    await settled(server)
    start = (cpu_seconds(server), cpu_seconds(emulator), time.process_time())
    database = server_cpu()
    result = await load(name, url, part, concurrency)
    await settled(server)
    end = (cpu_seconds(server), cpu_seconds(emulator), time.process_time())
    used = [b - a for a, b in zip(start, end, strict=True)]
    used.append(server_cpu_used(database, server_cpu()))
    return result, Cpu(*(1000 * seconds / len(part) for seconds in used))


async def measure(targets: list[tuple[str, str, int]], deliveries: list[Delivery], warm: int,
                  concurrencies: list[int], emulator: int) -> list[Pass]:
    """Warm each target (name, URL, server pid) up on the first `warm` deliveries, then measure
    each on its share of the rest at each concurrency (the same share for every target); then
    the first share to the local paywire again (every answer `duplicate`)."""
    head, rest = deliveries[:warm], deliveries[warm:]
    share = len(rest) // len(concurrencies)
    passes = []
    for n, concurrency in enumerate(concurrencies):
        part = rest[n * share:(n + 1) * share]
        results, cpu = [], []
        for name, url, pid in targets:
            if n == 0:
                await load("warm-up", url, head, concurrency)
            result, used = await metered(name, url, part, concurrency, pid, emulator)
            results.append(result)
            cpu.append(used)
        passes.append(Pass(concurrency, results, cpu))
    _, local, pid = targets[1]
    expect(await load("warm-up", local, head, concurrencies[0]), "duplicate")
    duplicate, used = await metered("paywire, same again (duplicate)", local, rest[:share],
                                    concurrencies[0], pid, emulator)
    expect(duplicate, "duplicate")
    passes[0].results.append(duplicate)
    passes[0].cpu.append(used)
    return passes


@dataclass(frozen=True)
class Announced:
    """Delivery-to-announcement times of the local paywire's orders, in milliseconds."""

    orders: int
    delays: list[float]


def _when(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def announced(engine: sa.Engine, orders: int, wait: float = 30.0) -> Announced:
    """For each order: first delivery stored (inbox `received_at`) -> `order.completed` written
    (outbox `created_at`), both paywire's own clock; waits for the confirmations to finish."""
    query = sa.text("SELECT MIN(i.received_at), o.created_at FROM outbox o JOIN inbox_events i "
                    "ON i.order_id = o.order_id WHERE o.type = 'order.completed' "
                    "GROUP BY o.order_id, o.created_at")
    deadline = time.monotonic() + wait
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(query).all()
            if len(rows) >= orders or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    delays = [1000 * (_when(done) - _when(first)).total_seconds() for first, done in rows]
    return Announced(orders, delays)


KIND = {"bare ASGI echo": "echo", "paywire, local verification": "local",
        "paywire, postback verification": "postback", "paywire, same again (duplicate)":
        "duplicate"}


def figures(passes: list[Pass], store: str) -> dict[str, float]:
    """The measured figures under goals.py's keys (webhook.<store>.c<n>.<kind>.<figure>)."""
    out: dict[str, float] = {}
    for p in passes:
        for r in p.results:
            key = f"webhook.{store}.c{p.concurrency}.{KIND[r.name]}"
            out.update({f"{key}.rate": r.rate, f"{key}.p50": r.percentile(50),
                        f"{key}.p99": r.percentile(99)})
        for r, cpu in zip(p.results, p.cpu, strict=True):
            key = f"webhook.{store}.c{p.concurrency}.{KIND[r.name]}.cpu_ms"
            out.update({f"{key}.server": cpu.server, f"{key}.emulator": cpu.emulator,
                        f"{key}.generator": cpu.generator, f"{key}.database": cpu.database})
    return out


def report(passes: list[Pass], store: str, shop: Announced) -> None:
    """The figures and the ratios against the echo baseline."""
    label = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[store]
    print(f"webhook ingest: {len(passes[0].results[0].latencies)} signed deliveries per server "
          f"and concurrency (distinct event ids), one uvicorn worker each, paywire on {label}")
    print(f"machine: {goals.machine()} (CI machines have 2 cores); every process (emulator, "
          "servers, this load generator) shares them, over loopback HTTP")
    print(f"{'':38} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}   CPU ms per delivery: server "
          "(+ after the answer) / emulator / load generator / database server;   answers")
    for p in passes:
        print(f"concurrency {p.concurrency}")
        for r, cpu in zip(p.results, p.cpu, strict=True):
            answers = ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items()))
            print(f"  {r.name:36} {r.rate:8.1f} {r.percentile(50):8.2f} "
                  f"{r.percentile(99):8.2f}   {cpu.server:5.2f} / {cpu.emulator:5.2f} / "
                  f"{cpu.generator:5.2f} / {cpu.database:5.2f}   {answers}")
        echo = p.results[0]
        for r in p.results[1:]:
            print(f"  ratio {r.name.strip()} / echo: throughput {r.rate / echo.rate:.2f}x, "
                  f"p50 {r.percentile(50) / echo.percentile(50):.1f}x, "
                  f"p99 {r.percentile(99) / echo.percentile(99):.1f}x")
    if len(shop.delays) >= 2:
        cuts = statistics.quantiles(shop.delays, n=100, method="inclusive")
        print(f"delivery -> order.completed written (local paywire, confirmed with PayPal's "
              f"API): {len(shop.delays)} of {shop.orders} orders, p50 {cuts[49]:.1f} ms, "
              f"p99 {cuts[98]:.1f} ms, max {max(shop.delays):.1f} ms")
    else:
        print(f"delivery -> order.completed written: only {len(shop.delays)} of {shop.orders} "
              "orders announced")


def run(deliveries: int, concurrencies: list[int], store: str,
        warm_orders: int) -> tuple[list[Pass], Announced]:
    """Start everything, record deliveries, measure, stop."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="paywire-bench-") as tmp:
        dbs = Databases(store, tmp)
        ports = list(free_ports(4))
        emulator, echo, local, postback = (f"http://127.0.0.1:{p}" for p in ports)
        try:
            procs.append(spawn("emulator", str(ports[0])))
            wait_up(f"{emulator}/_emulator/", procs[-1])
            procs.append(spawn("echo", str(ports[1])))
            wait_up(echo, procs[-1])
            sink = f"{echo}/webhooks/paypal"
            webhook_id = subscribe(emulator, sink)
            dbs.create("local")

            def start(name: str, port: int, mode: str) -> None:
                procs.append(spawn("paywire", str(port), emulator, str(dbs.dir(name)),
                                   webhook_id, mode, dbs.url(name)))
                wait_up(f"http://127.0.0.1:{port}/healthz", procs[-1])

            start("local", ports[2], "local")
            orders = deliveries * len(concurrencies) // 3 + warm_orders
            recorded = asyncio.run(make_deliveries(local, emulator, sink, orders, 8))
            if store == "postgres":  # a template database may have no one connected
                stop(procs.pop())
            dbs.copy("local", "postback")
            if store == "postgres":
                start("local", ports[2], "local")
            start("postback", ports[3], "postback")
            pids = {name: proc.pid for name, proc in zip(
                ("emulator", "echo", "local", "postback"), procs, strict=True)}
            passes = asyncio.run(measure(
                [("bare ASGI echo", sink, pids["echo"]),
                 ("paywire, local verification", f"{local}/webhooks/paypal", pids["local"]),
                 ("paywire, postback verification", f"{postback}/webhooks/paypal",
                  pids["postback"])],
                recorded, 3 * warm_orders, concurrencies, pids["emulator"]))
            return passes, announced(dbs.engine("local"), orders)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=15)
            dbs.drop()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one server and wait for it."""
    proc.terminate()
    proc.wait(timeout=15)


def subscribe(emulator: str, url: str) -> str:
    """A webhook for every event type, delivering to `url`; its id."""
    token = httpx.post(f"{emulator}/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET),
                       data={"grant_type": "client_credentials"}).json()["access_token"]
    r = httpx.post(f"{emulator}/v1/notifications/webhooks", json={
        "url": url, "event_types": [{"name": "*"}]}, headers={"Authorization": f"Bearer {token}"})
    r.raise_for_status()
    return str(r.json()["id"])


SIZES = {"tiny": {"deliveries": 12, "concurrency": [8, 1], "warm_orders": 2},
         "small": {"deliveries": 150, "concurrency": [8, 1], "warm_orders": 5},
         "full": {"deliveries": 600, "concurrency": [8, 1], "warm_orders": WARMUP_ORDERS}}


def main() -> None:
    """Parse arguments; serve one side (child) or run the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full",
                        help="preset for the options below (default full: 600, 8 then 1)")
    parser.add_argument("--deliveries", type=int, default=None,
                        help="measured deliveries per server and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=None,
                        help="workers, one measured pass each (the first also replays "
                             "duplicates)")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--warm-orders", type=int, default=None, help=argparse.SUPPRESS)
    goals.add_arguments(parser)
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port, *rest = args.serve
        if kind == "emulator":
            serve_emulator(int(port))
        elif kind == "echo":
            serve_echo(int(port))
        else:
            serve_paywire(int(port), *rest)
        return
    sized(args, SIZES)
    if args.deliveries < 10 or min(args.concurrency) < 1:
        parser.error("--deliveries must be at least 10 and --concurrency at least 1")
    passes, shop = run(args.deliveries, args.concurrency, args.store, args.warm_orders)
    report(passes, args.store, shop)
    goals.report(figures(passes, args.store), bench="webhook_ingest", json_path=args.json,
                 settings=settings(args))


if __name__ == "__main__":
    main()
