"""The `paywire` command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

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


def main() -> None:
    """Console-script entry point."""
    app()
