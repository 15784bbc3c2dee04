"""The `paywire` command's shape: every command hung on the app in one place, each once."""

from __future__ import annotations

import typer
from typer.main import get_command

from paywire.cli import app
from paywire.cli.ops import rejections_list
from paywire.cli.webhooks import webhooks_app

TOP = {"emulator", "serve", "migrate", "dev", "webhooks", "reconcile", "orders", "events",
       "rejections", "outbox", "refund", "doctor", "worker", "admin"}


def test_the_top_level_commands() -> None:
    """`paywire --help` lists exactly the commands and groups the docs name."""
    group = get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert set(group.commands) == TOP


def test_webhooks_rejections_is_an_alias_of_rejections_list() -> None:
    """`paywire webhooks rejections` runs the very function behind `paywire rejections list`
    (so the two cannot drift) and is hidden, so `--help` shows the command once."""
    alias = [c for c in webhooks_app.registered_commands if c.name == "rejections"]
    assert len(alias) == 1 and alias[0].callback is rejections_list and alias[0].hidden
    shown = {c.name for c in webhooks_app.registered_commands if not c.hidden}
    assert shown == {"register", "list", "delete", "trigger"}
