"""`paywire admin`: the operator dashboard's own commands (`hash-password`)."""

from __future__ import annotations

from typing import Annotated

import typer

admin_app = typer.Typer(help="The operator dashboard at /admin.", no_args_is_help=True)


@admin_app.command("hash-password")
def hash_password(
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input (one line).")] = False,
) -> None:
    """Print a scrypt hash of a dashboard password, for PAYWIRE_ADMIN_PASSWORD_HASH (the
    password itself is never stored or printed)."""
    import sys

    from paywire.admin.auth import hash_password as make_hash

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Dashboard password", hide_input=True,
                                confirmation_prompt=True)
    if len(password) < 12:
        typer.echo("a dashboard password has at least 12 characters", err=True)
        raise typer.Exit(code=2)
    typer.echo(make_hash(password))
