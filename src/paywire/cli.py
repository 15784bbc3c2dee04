"""The `paywire` command line."""

from __future__ import annotations

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
) -> None:
    """Run the stateful PayPal sandbox emulator."""
    import uvicorn

    from paywire.emulator import AppCredentials, EmulatorConfig, create_app

    if (client_id is None) != (client_secret is None):
        raise typer.BadParameter("give both --client-id and --client-secret, or neither")
    creds = (AppCredentials(client_id, client_secret) if client_id and client_secret
             else AppCredentials.generate())
    cfg = EmulatorConfig(apps=[creds], token_ttl_seconds=token_ttl,
                         order_expiry_seconds=order_expiry,
                         webhook_time_scale=webhook_time_scale, seed=seed)
    console.print(f"[bold]paywire PayPal emulator[/] on http://{host}:{port}")
    console.print(f"  client id:     {creds.client_id}")
    # The emulator's own throwaway sandbox credentials: printing them is the point.
    console.print(f"  client secret: {creds.client_secret}")
    console.print(f"  control API:   http://{host}:{port}/_emulator/")
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
) -> None:
    """Run the paywire HTTP API for production (any PAYWIRE_DATABASE_URL).

    An embedded SQLite database is migrated on start; PostgreSQL needs `paywire migrate` first.
    """
    import uvicorn

    from paywire.bootstrap import create_app, migrate_embedded
    from paywire.domain.errors import ConfigError

    settings = _settings(host=host, port=port, workers=workers)
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
    uvicorn.run("paywire.bootstrap:app_from_env", factory=True, host=settings.host,
                port=settings.port, workers=settings.workers, proxy_headers=True,
                log_level="info")


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
) -> None:
    """Run the PayPal emulator, paywire's API and the demo shop in one process (Ctrl-C stops)."""
    from paywire.devserver import DevOptions, run

    code = run(DevOptions(host=host, port=port, emulator_port=emulator_port, data_dir=data_dir),
               out=typer.echo)
    if code:
        raise typer.Exit(code=code)


def main() -> None:
    """Console-script entry point."""
    app()
