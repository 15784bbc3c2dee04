"""The `paywire` command line: every command and group is hung on `app` here, in one place.

- `server`: `serve`, `worker`, `dev`, `migrate` (running paywire);
- `emulator`: `emulator` (the PayPal and APS emulators);
- `reconcile`: `reconcile` (the providers' truth, for cron);
- `ops`: `orders`, `events`, `rejections`, `outbox`, `refund` (operators);
- `webhooks`: `webhooks register|list|delete|trigger` (PayPal's subscriptions);
- `doctor`: `doctor` (is this paywire set up right);
- `admin`: `admin hash-password` (the operator dashboard's password).

`paywire webhooks rejections` is kept as a hidden alias of `paywire rejections list` (the same
function, so the two can never drift): operators' scripts and muscle memory keep working.
Commands import what they run lazily, so `paywire --help` stays fast and the core install never
loads the AWS extra.
"""

from __future__ import annotations

import typer

from paywire.cli.admin import admin_app
from paywire.cli.doctor import doctor
from paywire.cli.emulator import emulator
from paywire.cli.ops import events_app, orders_app, outbox_app, refund, rejections_app
from paywire.cli.ops import rejections_list as _rejections_list
from paywire.cli.reconcile import reconcile
from paywire.cli.server import dev, migrate, outbox_worker, serve
from paywire.cli.webhooks import webhooks_app

app = typer.Typer(help="paywire: server-priced, crash-proof PayPal payments.", no_args_is_help=True)


@app.callback()
def _root() -> None:
    """paywire: server-priced, crash-proof PayPal payments."""


app.command()(emulator)
app.command()(serve)
app.command()(migrate)
app.command()(dev)
app.add_typer(webhooks_app, name="webhooks")
webhooks_app.command("rejections", hidden=True,
                     help="Alias of `paywire rejections list`.")(_rejections_list)
app.command()(reconcile)
app.add_typer(orders_app, name="orders")
app.add_typer(events_app, name="events")
app.add_typer(rejections_app, name="rejections")
app.add_typer(outbox_app, name="outbox")
app.command("refund")(refund)
app.command("doctor")(doctor)
app.command("worker")(outbox_worker)
app.add_typer(admin_app, name="admin")


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
