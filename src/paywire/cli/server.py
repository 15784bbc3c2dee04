"""The commands that run paywire: `serve` (the HTTP API), `worker` (the outbox), `dev` (the
emulator, the API and the demo shop in one process) and `migrate` (the schema, a deploy step).

`app_from_env` is `serve`'s app factory for uvicorn's worker processes: it lives here, not in the
composition root, because it reads a stage's settings from AWS (`paywire.aws.secrets`), which
sits above the composition root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from paywire.cli.common import console, local_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from paywire.settings import Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Interface (PAYWIRE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (PAYWIRE_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (PAYWIRE_WORKERS).")
                       ] = None,
    worker: Annotated[bool, typer.Option(
        "--worker", help="Also deliver the outbox to the shop in-process (each process).")
    ] = False,
) -> None:
    """Run the paywire HTTP API for production (any PAYWIRE_DATABASE_URL).

    An embedded SQLite database is migrated on start; PostgreSQL needs `paywire migrate` first.
    """
    import uvicorn

    from paywire import logs
    from paywire.bootstrap import create_app, migrate_embedded
    from paywire.domain.errors import ConfigError
    from paywire.serving import uvicorn_options

    settings = local_settings(host=host, port=port, workers=workers,
                         outbox_worker_enabled=True if worker else None)
    # uvicorn's lines go through paywire's handler (log_config=None: uvicorn installs none),
    # and paywire's access line, with the trace, replaces uvicorn's.
    logs.setup(settings, "json", uvicorn=True)
    console.print(f"[bold]paywire[/] on http://{settings.host}:{settings.port} "
                  f"({settings.workers} worker(s)); PayPal {settings.paypal.env} at "
                  f"{settings.paypal.url}; store {settings.database_url_redacted}",
                  highlight=False)
    if settings.workers == 1:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                    proxy_headers=True, log_config=None, access_log=False, **uvicorn_options())
        return
    if settings.is_sqlite:
        try:
            migrate_embedded(settings)  # once, before the workers start (no DDL races)
        except ConfigError as exc:
            console.print(f"[red]configuration error:[/] {exc.message}", highlight=False)
            raise typer.Exit(code=2) from None
    # Each worker builds its app from the same environment (uvicorn imports the factory).
    if worker:
        os.environ["PAYWIRE_OUTBOX_WORKER_ENABLED"] = "true"
    with multiprocess_metrics(settings):
        uvicorn.run("paywire.cli.server:app_from_env", factory=True, host=settings.host,
                    port=settings.port, workers=settings.workers, proxy_headers=True,
                    log_config=None, access_log=False, **uvicorn_options())


@contextmanager
def multiprocess_metrics(settings: Settings) -> Iterator[None]:
    """Prometheus's multiprocess mode for several workers (`PAYWIRE_METRICS` on): each worker
    process writes its counts to a file of one directory, and a scrape of any of them adds up
    all. A fresh directory per run (`paywire-metrics-*` in the temporary directory), removed
    at the end, so counts never carry over from a previous run; a `PROMETHEUS_MULTIPROC_DIR`
    given is used instead, emptied of its files first."""
    if settings.metrics == "off":
        yield
        return
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink(missing_ok=True)
        yield
        return
    path = tempfile.mkdtemp(prefix="paywire-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # set before the workers start
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(path, ignore_errors=True)



def _migrate_dynamodb(settings: Settings) -> None:
    """Create the table and its indexes if absent, enable TTL and check it, backfill the
    by_order keys of items written before them (idempotent)."""
    import asyncio

    from paywire.domain.errors import PaywireError
    from paywire.store.dynamo import DynamoStore

    async def setup() -> tuple[str, str]:
        store = DynamoStore.from_url(settings.database_url)
        try:
            backfill = await store.setup()
        finally:
            await store.close()
        return store.table_name, str(backfill)

    try:
        table, backfill = asyncio.run(setup())
    except PaywireError as exc:
        console.print(f"[red]migration failed:[/] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"DynamoDB table {table} is ready (indexes and TTL checked)", highlight=False)
    console.print(f"backfill: {backfill}", highlight=False, soft_wrap=True)



def migrate(
    database_url: Annotated[str | None, typer.Option(
        help="Database to migrate (default: PAYWIRE_DATABASE_URL).")] = None,
) -> None:
    """Migrate the database (PAYWIRE_DATABASE_URL) to the newest schema (alembic upgrade head)."""
    from sqlalchemy.exc import SQLAlchemyError

    from paywire.bootstrap import migrate_embedded
    from paywire.domain.errors import PaywireError
    from paywire.store import migrate as migrations

    settings = local_settings(database_url=database_url)
    if settings.is_dynamodb:
        _migrate_dynamodb(settings)
        return
    try:
        if settings.is_sqlite:
            migrate_embedded(settings)
        else:
            migrations.upgrade(settings.database_url)
        revision = migrations.current(settings.database_url)
    except PaywireError as exc:
        console.print(f"[red]migration failed:[/] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        console.print(f"[red]migration failed:[/] {type(exc).__name__}: {reason}",
                      highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"{settings.database_url_redacted} is at revision {revision}",
                  highlight=False)



def dev(
    host: Annotated[str, typer.Option(help="Interface for every server.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of paywire's API and the demo shop.")] = 8000,
    emulator_port: Annotated[int, typer.Option(help="Port of the PayPal emulator.")] = 8090,
    data_dir: Annotated[Path, typer.Option(help="Where the SQLite database lives.")] = Path(
        ".paywire"),
    aws: Annotated[bool, typer.Option(
        "--aws", help="Serve paywire through its Lambda handlers against a local moto server "
        "(DynamoDB, SQS, Secrets Manager), as deployed on AWS.")] = False,
) -> None:
    """Run the PayPal emulator, paywire's API and the demo shop in one process (Ctrl-C stops)."""
    from paywire.dev.runner import run
    from paywire.dev.stack import DevOptions

    code = run(DevOptions(host=host, port=port, emulator_port=emulator_port, data_dir=data_dir),
               out=typer.echo, aws=aws)
    if code:
        raise typer.Exit(code=code)



def outbox_worker(
    interval: Annotated[float | None, typer.Option(
        help="Seconds between polls when nothing is due (PAYWIRE_OUTBOX_INTERVAL_SECONDS).")
    ] = None,
) -> None:
    """Deliver the outbox to the shop until SIGINT/SIGTERM (then exit 0).

    With PAYWIRE_METRICS on, its counts and the health gauges are served at GET /metrics on
    PAYWIRE_METRICS_HOST:PAYWIRE_METRICS_PORT (it has no API port).
    """
    import asyncio
    import contextlib
    import signal

    from paywire import logs
    from paywire.bootstrap import (
        SystemClock,
        migrate_embedded,
        outbox_worker,
        store_for,
    )
    from paywire.bootstrap.adapters import stuck_after
    from paywire.domain.errors import PaywireError

    settings = local_settings(outbox_interval_seconds=interval)
    logs.setup(settings, "json")

    async def serve() -> None:
        store = store_for(settings)
        clock = SystemClock()
        scrapes = None
        if settings.metrics != "off":  # no API port here: /metrics on the metrics port
            from paywire.bootstrap.metrics import Scrapes
            from paywire.services.metering import MeteredStore

            scrapes = Scrapes(settings)
            store = MeteredStore(store, scrapes.sink)
        try:
            worker = outbox_worker(settings, store, clock)
            if worker is None:
                raise typer.BadParameter("set PAYWIRE_FULFILMENT_URL (and _SECRET) or "
                                         "PAYWIRE_FULFILMENT_CALLABLE")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            console.print(f"outbox worker {worker.owner}: delivering to "
                          f"{', '.join(t.name for t in worker.targets)}", highlight=False)
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if scrapes is not None:
                        await stack.enter_async_context(scrapes.serving(
                            store, clock, stuck_after=stuck_after(settings), listen=True))
                    await worker.run(stop, settings.outbox_interval_seconds)
            finally:
                await worker.aclose()
        finally:
            await store.close()

    try:
        migrate_embedded(settings)
        asyncio.run(serve())
    except PaywireError as exc:
        console.print(f"[red]outbox worker failed:[/] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print("outbox worker stopped", highlight=False)



def app_from_env() -> FastAPI:
    """`paywire serve`'s app factory (uvicorn workers import it): settings from the environment,
    or the stage's (Secrets Manager and SSM) when `PAYWIRE_STAGE` is set."""
    from paywire import logs
    from paywire.aws.secrets import load_settings  # imports boto3 only for a stage
    from paywire.bootstrap import create_app

    settings = load_settings()
    logs.setup(settings, "json", uvicorn=True)  # each worker process logs as its parent
    return create_app(settings)
