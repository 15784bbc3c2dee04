"""Webhook ingest: paywire's `POST /webhooks/paypal` against a bare ASGI echo app, same server.

    .venv/bin/python bench/webhook_ingest.py [--deliveries 600] [--concurrency 8]
                                             [--store sqlite|postgres]

Processes: the PayPal emulator; paywire with local verification (one uvicorn worker, SQLite, or
with `--store postgres` a fresh database on $PAYWIRE_TEST_POSTGRES_URL's server, dropped at the
end); paywire with postback verification (its own copy of the same database, asking the
emulator about every delivery); a bare ASGI app that reads the body and echoes it, under the same
uvicorn settings; and this load generator.

Setup: a webhook subscription is registered for the echo app, so the emulator's real signed
deliveries land there; paywire (local) creates `deliveries / 3` orders, each approved and then
captured at the emulator directly (CHECKOUT.ORDER.APPROVED, PAYMENT.CAPTURE.COMPLETED,
CHECKOUT.ORDER.COMPLETED: distinct event ids). Those deliveries, exactly as sent (bytes and
headers), are recorded from the emulator's log. The postback paywire starts on a copy of the
database taken then (on PostgreSQL every table but the history log, whose ids a sequence hands
out), so both paywires know the orders and have applied none of the events.

Measured, in one run with `--concurrency` workers over loopback HTTP: the same deliveries to the
echo app, to paywire (local: RSA verification with the certificate cached, inbox insert and the
confirmation task in one transaction, answered `confirming`; then, after the answer, one GET of
the order at the emulator and the transition and outbox row) and to paywire (postback: one more
HTTP round trip to the emulator per delivery); each after a warm-up of its own deliveries. Then,
from the local paywire's own database: the time from an order's first delivery being stored to
its `order.completed` announcement being written for the shop (PayPal's claims are confirmed
with its API first, so this is what a shop waits for). Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import benchkit
import httpx
import sqlalchemy as sa
from benchkit import Result, load, serve_echo, wait_up

from paywire.testing import free_port

CLIENT_ID, CLIENT_SECRET = "bench-client-id", "bench-client-secret"
WARMUP_ORDERS = 10
POSTGRES_SERVER = os.environ.get("PAYWIRE_TEST_POSTGRES_URL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- the servers (each in a child process) ---------------------------------------------------


def serve_emulator(port: int) -> None:
    """The emulator, quiet."""
    import uvicorn

    from paywire.emulator import AppCredentials, EmulatorConfig, create_app

    app = create_app(EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_paywire(port: int, emulator_url: str, data_dir: str, webhook_id: str,
                  mode: str, database_url: str = "") -> None:
    """paywire for the emulator, on `database_url` (SQLite in `data_dir` if empty), verifying
    webhooks `mode`-ly."""
    import uvicorn

    from paywire.bootstrap import create_app
    from paywire.settings import Settings

    settings = Settings.load(paypal_env="emulator", paypal_base_url=emulator_url,
                             paypal_client_id=CLIENT_ID, paypal_client_secret=CLIENT_SECRET,
                             data_dir=Path(data_dir), database_url=database_url,
                             paypal_webhook_id=webhook_id, webhook_verification=mode)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)


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


@contextlib.contextmanager
def postgres_databases(names: tuple[str, ...]) -> Iterator[list[str]]:
    """Fresh, migrated PostgreSQL databases on the test server, one per name, dropped after."""
    from paywire.store import migrate

    server = sa.make_url(POSTGRES_SERVER)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    made = [f"paywire_bench_{name}_{secrets.token_hex(4)}" for name in names]
    try:
        urls = []
        for name in made:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            urls.append(server.set(database=name).render_as_string(hide_password=False))
            migrate.upgrade(urls[-1])
        yield urls
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def copy_postgres(src: str, dst: str) -> None:
    """Every table but `history` from one migrated database into another (empty) one."""
    from paywire.store.sql.tables import metadata

    source, target = sa.create_engine(src), sa.create_engine(dst)
    try:
        with source.connect() as read, target.begin() as write:
            for table in metadata.sorted_tables:
                if table.name != "history":
                    found = [dict(row) for row in read.execute(sa.select(table)).mappings()]
                    if found:
                        write.execute(sa.insert(table), found)
    finally:
        source.dispose()
        target.dispose()


# --- load ----------------------------------------------------------------------------------------


async def measure(targets: list[tuple[str, str]], deliveries: list[Delivery], warm: int,
                  concurrency: int) -> list[Result]:
    """Warm each target up on the first `warm` deliveries, then measure it on the rest."""
    results = []
    for name, url in targets:
        await load("warm-up", url, deliveries[:warm], concurrency)
        results.append(await load(name, url, deliveries[warm:], concurrency))
    return results


@dataclass(frozen=True)
class Announced:
    """Delivery-to-announcement times of the local paywire's orders, in milliseconds."""

    orders: int
    delays: list[float]


def announced(url: str, orders: int, wait: float = 30.0) -> Announced:
    """For each order: first delivery stored (inbox `received_at`) -> `order.completed` written
    (outbox `created_at`), both paywire's own clock; waits for the confirmations to finish."""
    query = sa.text("SELECT MIN(i.received_at), o.created_at FROM outbox o JOIN inbox_events i "
                    "ON i.order_id = o.order_id WHERE o.type = 'order.completed' "
                    "GROUP BY o.order_id, o.created_at")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
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

    def at(value: str | datetime) -> datetime:  # SQLite keeps ISO text, PostgreSQL timestamptz
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    delays = [1000 * (at(done) - at(first)).total_seconds() for first, done in rows]
    return Announced(orders, delays)


def report(results: list[Result], concurrency: int, shop: Announced,
           store: str = "sqlite") -> None:
    """The figures and the ratios against the echo baseline."""
    echo = results[0]
    print(f"webhook ingest: {len(echo.latencies)} signed deliveries per server (distinct event "
          f"ids), concurrency {concurrency}, one uvicorn worker each, paywire on {store}")
    print(f"machine: {os.cpu_count()} cores (CI machines have 2); every process (emulator, "
          "servers, this load generator) shares them, over loopback HTTP")
    print(f"{'':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}   answers")
    for r in results:
        answers = ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items()))
        print(f"{r.name:34} {r.rate:8.1f} {r.percentile(50):8.2f} {r.percentile(99):8.2f}   "
              f"{answers}")
    for r in results[1:]:
        print(f"ratio {r.name.strip()} / echo: throughput {r.rate / echo.rate:.2f}x, "
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


def run(deliveries: int, concurrency: int,
        store: str = "sqlite") -> tuple[list[Result], Announced]:
    """Start everything, record deliveries, measure, stop."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="paywire-bench-") as tmp, \
            contextlib.ExitStack() as stack:
        if store == "postgres":
            local_db, postback_db = stack.enter_context(postgres_databases(("local",
                                                                            "postback")))
        else:
            local_db = postback_db = ""  # SQLite in each paywire's data directory
        ports = [free_port() for _ in range(4)]
        emulator, echo, local, postback = (f"http://127.0.0.1:{p}" for p in ports)
        try:
            procs.append(spawn("emulator", str(ports[0])))
            wait_up(f"{emulator}/_emulator/", procs[-1])
            procs.append(spawn("echo", str(ports[1])))
            wait_up(echo, procs[-1])
            sink = f"{echo}/webhooks/paypal"
            webhook_id = subscribe(emulator, sink)
            local_dir, postback_dir = Path(tmp, "local"), Path(tmp, "postback")
            postback_dir.mkdir()
            procs.append(spawn("paywire", str(ports[2]), emulator, str(local_dir), webhook_id,
                               "local", local_db))
            wait_up(f"{local}/healthz", procs[-1])
            orders = deliveries // 3 + WARMUP_ORDERS
            recorded = asyncio.run(make_deliveries(local, emulator, sink, orders, concurrency))
            if store == "postgres":
                copy_postgres(local_db, postback_db)
            else:
                copy_sqlite(local_dir / "paywire.db", postback_dir / "paywire.db")
            procs.append(spawn("paywire", str(ports[3]), emulator, str(postback_dir),
                               webhook_id, "postback", postback_db))
            wait_up(f"{postback}/healthz", procs[-1])
            results = asyncio.run(measure(
                [("bare ASGI echo", sink), ("paywire, local verification",
                                            f"{local}/webhooks/paypal"),
                 ("paywire, postback verification", f"{postback}/webhooks/paypal")],
                recorded, 3 * WARMUP_ORDERS, concurrency))
            return results, announced(local_db or f"sqlite:///{local_dir / 'paywire.db'}",
                                      orders)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=15)


def subscribe(emulator: str, url: str) -> str:
    """A webhook for every event type, delivering to `url`; its id."""
    token = httpx.post(f"{emulator}/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET),
                       data={"grant_type": "client_credentials"}).json()["access_token"]
    r = httpx.post(f"{emulator}/v1/notifications/webhooks", json={
        "url": url, "event_types": [{"name": "*"}]}, headers={"Authorization": f"Bearer {token}"})
    r.raise_for_status()
    return str(r.json()["id"])


def main() -> None:
    """Parse arguments; serve one side (child) or run the whole benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=600,
                        help="measured deliveries per server (default 600)")
    parser.add_argument("--concurrency", type=int, default=8, help="workers (default 8)")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                        help="paywire's database (default sqlite; postgres: a fresh database "
                             "on $PAYWIRE_TEST_POSTGRES_URL's server)")
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
    if args.deliveries < 30 or args.concurrency < 1:
        parser.error("--deliveries must be at least 30 and --concurrency at least 1")
    results, shop = run(args.deliveries, args.concurrency, args.store)
    report(results, args.concurrency, shop, args.store)


if __name__ == "__main__":
    main()
