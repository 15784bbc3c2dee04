"""Outbox drain rate on PostgreSQL: 1 worker process against 4, delivering to a local shop.

    .venv/bin/python bench/outbox_drain.py [--rows 100000] [--batch 100] [--concurrency 20]

A fresh PostgreSQL database (PAYWIRE_TEST_POSTGRES_URL, default the local `test` server) is
migrated; `--rows` order.completed announcements are put in its outbox through the store port.
A shop receiver (Starlette under uvicorn, a child process) answers 204 to every signed
Standard Webhooks POST and records each request's `webhook-id` and the fact (order) it was about.
Then one `OutboxWorker` process drains the outbox; the same number of fresh rows are seeded and
four worker processes (distinct lease owners) drain it. Printed: rows per second for each, the
ratio, how many requests each run made, and the count of facts the shop heard under two or
more distinct message ids (must be 0; a message id heard twice is allowed, at least once).
The machines have 2 cores: the shop, the database and the workers share them, so 4 workers are
not expected to be 4 times faster. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from paywire.domain.facts import Announcement
from paywire.store import migrate
from paywire.store.sql import SqlStore
from paywire.testing import free_port

SECRET = "whsec_" + base64.b64encode(b"paywire-bench-outbox-secret-0123").decode()
POSTGRES_URL = os.environ.get("PAYWIRE_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def serve_shop(port: int) -> None:
    """The shop receiver (child process): 204 to everything, remembers ids per fact."""
    import uvicorn
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

    async def stats(request: Request) -> Response:
        return JSONResponse({"requests": requests[0], "facts": len(ids_by_fact),
                             "two_ids": sum(1 for s in ids_by_fact.values() if len(s) > 1)})

    app = Starlette(routes=[Route("/fulfil", fulfil, methods=["POST"]),
                            Route("/stats", stats)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def run_worker(url: str, shop: str, batch: int, concurrency: int) -> None:
    """One worker process (child): drains until nothing is due twice in a row."""
    from paywire.bootstrap import SystemClock, worker_id
    from paywire.delivery.http_callback import HttpCallbackTarget
    from paywire.services.fulfilment import OutboxWorker

    async def drain() -> None:
        store = SqlStore(url)
        target = HttpCallbackTarget(shop, SECRET, timeout=10)
        worker = OutboxWorker(store, [target], SystemClock(), owner=worker_id(),
                              lease=timedelta(seconds=60), batch=batch, concurrency=concurrency)
        idle = 0
        try:
            while idle < 2:
                idle = 0 if await worker.run_once() else idle + 1
                if idle:
                    await asyncio.sleep(0.05)
        finally:
            await target.aclose()
            await store.close()

    asyncio.run(drain())


async def seed(url: str, rows: int, tag: str) -> None:
    """`rows` announcements, 1000 per transaction."""
    store = SqlStore(url)
    now = datetime.now(UTC)
    try:
        for start in range(0, rows, 1000):
            async with store.transaction() as uow:
                for i in range(start, min(rows, start + 1000)):
                    order_id = f"ord_{tag}_{i}"
                    await uow.add_announcement(Announcement(
                        f"order.completed:{order_id}", "order.completed", order_id,
                        {"order_id": order_id, "amount": "10.00", "currency": "USD"}),
                        f"msg_{tag}_{i}", now)
    finally:
        await store.close()


async def pending(url: str) -> int:
    """Messages still pending."""
    store = SqlStore(url)
    try:
        async with store.transaction() as uow:
            return (await uow.outbox_counts()).get("pending", 0)
    finally:
        await store.close()


def drain(url: str, shop: str, workers: int, rows: int, args: argparse.Namespace) -> float:
    """Seed `rows`, start `workers` processes, time until none is pending; rows per second."""
    asyncio.run(seed(url, rows, f"{workers}w{secrets.token_hex(2)}"))
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", url, shop,  # noqa: S603
                               str(args.batch), str(args.concurrency)]) for _ in range(workers)]
    while asyncio.run(pending(url)):
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.wait(timeout=60)
    return rows / elapsed


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--serve-shop", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_shop:
        serve_shop(args.serve_shop)
        return
    if args.worker:
        url, shop, batch, concurrency = args.worker
        run_worker(url, shop, int(batch), int(concurrency))
        return
    server = sa.make_url(POSTGRES_URL)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"paywire_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    port = free_port()
    shop_proc = subprocess.Popen([sys.executable, __file__,  # noqa: S603
                                  "--serve-shop", str(port)])
    try:
        migrate.upgrade(url)
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        shop = f"http://127.0.0.1:{port}/fulfil"
        one = drain(url, shop, 1, args.rows, args)
        four = drain(url, shop, 4, args.rows, args)
        stats = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()
    finally:
        shop_proc.terminate()
        shop_proc.wait(timeout=10)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    print(f"outbox drain on PostgreSQL, {args.rows} rows per run, batch {args.batch}, "
          f"{args.concurrency} in flight per worker, {os.cpu_count()} cores")
    print(f"  1 worker : {one:8.0f} rows/s")
    print(f"  4 workers: {four:8.0f} rows/s   ratio 4/1 = {four / one:.2f}")
    print(f"  shop requests: {stats['requests']} for {stats['facts']} facts "
          f"({stats['requests'] - stats['facts']} redeliveries)")
    print(f"  facts delivered under two or more ids: {stats['two_ids']} (must be 0)")


if __name__ == "__main__":
    main()
