"""The `paywire` command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from paywire.settings import Settings

app = typer.Typer(help="paywire: server-priced, crash-proof PayPal payments.", no_args_is_help=True)
console = Console()


@app.callback()
def _root() -> None:
    """paywire: server-priced, crash-proof PayPal payments."""


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    client_id: Annotated[str | None, typer.Option(help="Sandbox app client id.")] = None,
    client_secret: Annotated[str | None, typer.Option(help="Sandbox app client secret.")] = None,
    token_ttl: Annotated[int, typer.Option(help="Access token lifetime, seconds.")] = 32400,
    order_expiry: Annotated[float, typer.Option(help="Unapproved order lifetime, s.")] = 10800,
    webhook_time_scale: Annotated[
        float, typer.Option(help="Real seconds per emulated second in webhook retries.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Seed for fault rules and shuffles.")] = None,
    aps_access_code: Annotated[str | None, typer.Option(
        help="APS merchant account: access code (random unless given).")] = None,
    aps_merchant_identifier: Annotated[str | None, typer.Option(
        help="APS merchant account: merchant identifier.")] = None,
    aps_request_phrase: Annotated[str | None, typer.Option(
        help="APS merchant account: SHA request phrase.")] = None,
    aps_response_phrase: Annotated[str | None, typer.Option(
        help="APS merchant account: SHA response phrase.")] = None,
    aps_sha_type: Annotated[str, typer.Option(
        help="APS merchant account: SHA type.")] = "SHA-256",
    aps_feedback_url: Annotated[str | None, typer.Option(
        help="Where APS's direct and notification feedback go (paywire's /webhooks/aps).")
    ] = None,
) -> None:
    """Run the stateful PayPal sandbox emulator, with Amazon Payment Services under /aps."""
    import uvicorn

    from paywire.cli_aps import emulator_config, print_account
    from paywire.emulator import AppCredentials, EmulatorConfig, create_app

    if (client_id is None) != (client_secret is None):
        raise typer.BadParameter("give both --client-id and --client-secret, or neither")
    creds = (AppCredentials(client_id, client_secret) if client_id and client_secret
             else AppCredentials.generate())
    aps = emulator_config(access_code=aps_access_code, merchant_identifier=aps_merchant_identifier,
                          request_phrase=aps_request_phrase, response_phrase=aps_response_phrase,
                          sha_type=aps_sha_type, feedback_url=aps_feedback_url, seed=seed)
    cfg = EmulatorConfig(apps=[creds], aps=aps, token_ttl_seconds=token_ttl,
                         order_expiry_seconds=order_expiry,
                         webhook_time_scale=webhook_time_scale, seed=seed)
    base = f"http://{host}:{port}"
    console.print(f"[bold]paywire PayPal emulator[/] on {base}")
    console.print(f"  client id:     {creds.client_id}")
    # The emulator's own throwaway sandbox credentials: printing them is the point.
    console.print(f"  client secret: {creds.client_secret}")
    console.print(f"  control API:   {base}/_emulator/")
    print_account(console, aps, base, paypal_lines=(
        "PAYWIRE_PAYPAL_ENV=emulator", f"PAYWIRE_PAYPAL_BASE_URL={base}",
        f"PAYWIRE_PAYPAL_CLIENT_ID={creds.client_id}",
        f"PAYWIRE_PAYPAL_CLIENT_SECRET={creds.client_secret}"))
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info")


def _settings(**overrides: object) -> Settings:
    """Settings from PAYWIRE_* and .env, or a one-line error naming the setting (exit 2)."""
    from paywire.domain.errors import ConfigError
    from paywire.settings import Settings

    try:
        return Settings.load(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {exc.message}", markup=True, highlight=False)
        raise typer.Exit(code=2) from None


@app.command()
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

    from paywire.bootstrap import create_app, migrate_embedded
    from paywire.domain.errors import ConfigError

    settings = _settings(host=host, port=port, workers=workers,
                         outbox_worker_enabled=True if worker else None)
    console.print(f"[bold]paywire[/] on http://{settings.host}:{settings.port} "
                  f"({settings.workers} worker(s)); PayPal {settings.paypal_env} at "
                  f"{settings.paypal_url}; store {settings.database_url_redacted}",
                  highlight=False)
    if settings.workers == 1:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                    proxy_headers=True, log_level="info")
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
    uvicorn.run("paywire.bootstrap:app_from_env", factory=True, host=settings.host,
                port=settings.port, workers=settings.workers, proxy_headers=True,
                log_level="info")


def _migrate_dynamodb(settings: Settings) -> None:
    """Create the table and its indexes if absent, enable TTL and check it (idempotent)."""
    import asyncio

    from paywire.domain.errors import PaywireError
    from paywire.store.dynamo import DynamoStore

    async def setup() -> str:
        store = DynamoStore.from_url(settings.database_url)
        try:
            await store.setup()
        finally:
            await store.close()
        return store.table_name

    try:
        table = asyncio.run(setup())
    except PaywireError as exc:
        console.print(f"[red]migration failed:[/] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"DynamoDB table {table} is ready (indexes and TTL checked)", highlight=False)


@app.command()
def migrate(
    database_url: Annotated[str | None, typer.Option(
        help="Database to migrate (default: PAYWIRE_DATABASE_URL).")] = None,
) -> None:
    """Migrate the database (PAYWIRE_DATABASE_URL) to the newest schema (alembic upgrade head)."""
    from sqlalchemy.exc import SQLAlchemyError

    from paywire.bootstrap import migrate_embedded
    from paywire.domain.errors import PaywireError
    from paywire.store import migrate as migrations

    settings = _settings(database_url=database_url)
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


@app.command()
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
    from paywire.devserver import DevOptions, run

    code = run(DevOptions(host=host, port=port, emulator_port=emulator_port, data_dir=data_dir),
               out=typer.echo, aws=aws)
    if code:
        raise typer.Exit(code=code)


# --- webhooks and the truth queue ----------------------------------------------------------

webhooks_app = typer.Typer(help="PayPal webhooks: what was refused, and why.",
                           no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
# Rounds of `run_once` one `reconcile --truth-queue` makes at most (a guard, not a budget).
MAX_TRUTH_ROUNDS = 1000


@webhooks_app.command("rejections")
def webhook_rejections(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
) -> None:
    """List webhook deliveries refused for good: time, transmission id, check, reason, cause."""
    import asyncio

    from rich.table import Table

    from paywire.bootstrap import migrate_embedded, store_for
    from paywire.domain.errors import PaywireError
    from paywire.ports import WebhookRejection

    settings = _settings()

    async def fetch() -> list[WebhookRejection]:
        store = store_for(settings)
        try:
            async with store.transaction() as uow:
                return await uow.list_rejections(limit=limit)
        finally:
            await store.close()

    try:
        migrate_embedded(settings)
        rows = asyncio.run(fetch())
    except PaywireError as exc:
        console.print(f"[red]cannot read the rejection log:[/] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    if not rows:
        console.print("no webhook deliveries have been refused")
        return
    table = Table(title=f"webhook rejections (newest first, {len(rows)} shown)")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("transmission id", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("reason")
    table.add_column("likely cause")
    for r in rows:
        table.add_row(r.received_at.strftime("%Y-%m-%d %H:%M:%S"), r.transmission_id, r.check,
                      r.reason, r.likely_cause or "")
    console.print(table, highlight=False)


@app.command()
def reconcile(
    truth_queue: Annotated[bool, typer.Option(
        "--truth-queue", help="Only work off the queued truth fetches until none is due.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Ask PayPal for the truth about stuck orders, pending refunds and the truth queue
    (one-shot, for cron; exit 1 if anything was flagged or failed in this pass)."""
    if truth_queue:
        _drain_truth_queue()
        return
    import asyncio
    import json

    from rich.table import Table

    from paywire.bootstrap import build
    from paywire.domain.errors import PaywireError
    from paywire.services.reconcile import ReconcileReport

    settings = _settings()

    async def full_pass() -> ReconcileReport:
        container = await build(settings)
        total = ReconcileReport()
        try:
            for _ in range(MAX_TRUTH_ROUNDS):
                report = await container.reconciler.run_once()
                total.add(report)
                if report.checked < settings.reconcile_batch and (
                        report.truth_processed < settings.truth_fetch_batch):
                    break
        finally:
            await container.aclose()
        return total

    try:
        report = asyncio.run(full_pass())
    except PaywireError as exc:
        if as_json:
            typer.echo(json.dumps({"error": exc.message}))
        else:
            console.print(f"[red]reconcile failed:[/] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        table = Table(title="reconciliation pass")
        table.add_column("what")
        table.add_column("count", justify="right")
        for name, value in report.as_json().items():
            if isinstance(value, int):
                table.add_row(name.replace("_", " "), str(value))
        console.print(table, highlight=False)
        for order_id, reason in report.attention:
            console.print(f"[red]needs attention:[/] {order_id} ({reason})", highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)


def _drain_truth_queue() -> None:
    """`paywire reconcile --truth-queue`: the truth queue until nothing is due."""
    import asyncio

    from paywire.bootstrap import build
    from paywire.domain.errors import PaywireError

    settings = _settings()

    async def drain() -> tuple[int, dict[str, int]]:
        container = await build(settings)
        try:
            async with container.store.transaction() as uow:
                before = {t.id: t.attempts for t in await uow.list_truth_tasks(limit=100_000)}
            processed = 0
            for _ in range(MAX_TRUTH_ROUNDS):
                done = await container.truth.run_once()
                if not done:
                    break
                processed += done
            async with container.store.transaction() as uow:
                after = await uow.list_truth_tasks(limit=100_000)
        finally:
            await container.aclose()
        counts = {"done": 0, "retrying": 0, "failed": 0, "pending": 0}
        for task in after:
            if task.status == "pending":
                counts["pending"] += 1
            if task.attempts == before.get(task.id, 0):
                continue  # not worked on in this run
            if task.status == "done":
                counts["done"] += 1
            elif task.status == "failed":
                counts["failed"] += 1
            elif task.last_error:
                counts["retrying"] += 1
        return processed, counts

    try:
        processed, counts = asyncio.run(drain())
    except PaywireError as exc:
        console.print(f"[red]reconcile failed:[/] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"truth queue: {processed} processed; {counts['done']} settled, "
                  f"{counts['retrying']} to retry, {counts['failed']} failed (needs attention); "
                  f"{counts['pending']} pending", highlight=False)
    if counts["retrying"] or counts["failed"]:
        raise typer.Exit(code=1)


from paywire.cli_ops import install as _install_ops  # noqa: E402 - needs webhooks_app

_install_ops(app, webhooks_app)


@app.command("worker")
def outbox_worker(
    interval: Annotated[float | None, typer.Option(
        help="Seconds between polls when nothing is due (PAYWIRE_OUTBOX_INTERVAL_SECONDS).")
    ] = None,
) -> None:
    """Deliver the outbox to the shop until SIGINT/SIGTERM (then exit 0)."""
    import asyncio
    import signal

    from paywire.bootstrap import (
        SystemClock,
        migrate_embedded,
        outbox_worker,
        run_truth_fetcher,
        store_for,
    )
    from paywire.domain.errors import PaywireError

    settings = _settings(outbox_interval_seconds=interval)

    async def serve() -> None:
        store = store_for(settings)
        try:
            worker = outbox_worker(settings, store, SystemClock())
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
                await run_truth_fetcher(worker, stop, settings.outbox_interval_seconds)
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # `python -m paywire.cli`
    main()
