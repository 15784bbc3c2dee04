"""The `paywire` command line as Django management commands, reading `settings.PAYWIRE`.

`PaywireCommand` runs paywire's own click command (`paywire.cli.app`) with the words of
`cli` before the arguments it was given, inside `paywire.cli.common.settings_from` so that
every command reads paywire's settings from the Django project (`conf.paywire_settings`)
instead of the environment: the commands' options, output and exit codes are the CLI's, and
there is no second copy of them. Django's own options (`--settings`, `--pythonpath`,
`--traceback`, `--no-color`, `--skip-checks`, `-v`) are Django's; everything else is
paywire's (`manage.py paywire_reconcile --help`). A command that exits non-zero raises
`CommandError` with its exit code (`manage.py` exits with it).
"""

from __future__ import annotations

import argparse
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from paywire.contrib.django import conf


class PaywireCommand(BaseCommand):
    """A `paywire ...` command run by `manage.py`."""

    # The paywire command's words (`("reconcile",)`); empty: `manage.py paywire <command>`.
    cli: ClassVar[tuple[str, ...]] = ()

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Django's parser for its own options; every other argument is passed to paywire
        in order (`--help` included)."""
        parser = super().create_parser(prog_name, subcommand, add_help=False, **kwargs)
        parse_known = parser.parse_known_args

        def parse_args(args: Any = None, namespace: Any = None) -> argparse.Namespace:
            options, rest = parse_known(args, namespace)
            options.paywire_args = list(rest)
            parsed: argparse.Namespace = options
            return parsed

        parser.parse_args = parse_args  # type: ignore[method-assign,assignment]
        self._prog = f"{prog_name} {subcommand}"
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        import click
        import typer

        from paywire.cli import app
        from paywire.cli.common import SettingsSource, settings_from

        words = [*self.cli, *[str(a) for a in args], *options.get("paywire_args", [])]
        command = typer.main.get_command(app)
        source = SettingsSource(load=conf.paywire_settings,
                                fix="set the named key of settings.PAYWIRE in the project's "
                                    "settings")
        with settings_from(source):
            try:
                code = command.main(args=words, prog_name=getattr(self, "_prog", "paywire"),
                                    standalone_mode=False)
            except click.ClickException as exc:
                raise CommandError(exc.format_message(), returncode=exc.exit_code) from None
            except click.exceptions.Abort:
                raise CommandError("aborted", returncode=1) from None
        if isinstance(code, int) and code:
            raise CommandError(f"paywire {' '.join(words[:2])} exited with status {code}",
                               returncode=code)
