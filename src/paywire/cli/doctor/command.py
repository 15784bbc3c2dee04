"""`paywire doctor`: is this paywire set up right, and if not, the exact fix.

Checks, in order: settings load (a stage's from its secrets in AWS, when `PAYWIRE_STAGE` is
set); the database is reachable and its schema current; PayPal takes the credentials (one token
request to the configured host; a refusal is explained as a sandbox/live mix-up naming the host
and the environment claimed, see `paywire.bootstrap.credentials`); the configured webhook
id exists at PayPal with our URL and the event types paywire acts on; the webhook certificate
trust model in use (docs/webhook-trust.md) and whether PayPal's certificate host answers over
verified TLS (only hosts on the allowlist are contacted; a short deadline, so an offline machine
gets its answer at once); the outbox backlog; orders flagged as
needing attention; webhook deliveries refused in the last day with their explained causes; and,
when `aps` is in PAYWIRE_PROVIDERS, Amazon Payment Services (`paywire.cli.doctor.aps`: the
account's settings, the signature self-test, a CHECK_STATUS naming a wrong credential or
phrase, the feedback URL to enter in APS's dashboard). The PayPal checks are skipped when
`paypal` is not in PAYWIRE_PROVIDERS. Exit 1 when any check fails (`--strict`: or warns).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from paywire.cli.common import console, emit_json, settings_source
from paywire.cli.doctor.checks import Check
from paywire.cli.doctor.paypal import certs_check, paypal_checks
from paywire.cli.doctor.store import database_check, store_checks
from paywire.domain.errors import ConfigError

if TYPE_CHECKING:
    from paywire.settings import Settings


def doctor(
    url: Annotated[str | None, typer.Option(
        help="paywire's public webhook URL, to compare with PayPal's subscription.")] = None,
    aps_url: Annotated[str | None, typer.Option(
        "--aps-feedback-url", help="paywire's public APS feedback URL (default: "
        "PAYWIRE_APS_RETURN_URL's base + /webhooks/aps).")] = None,
    strict: Annotated[bool, typer.Option(help="Warnings fail too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check settings, database, PayPal and APS credentials, webhooks, certs, outbox, orders."""
    settings, check = _settings()
    checks = [check]
    if settings is not None:
        checks += asyncio.run(_all(settings, url, aps_url))
    bad = {"fail", "warn"} if strict else {"fail"}
    failed = any(c.status in bad for c in checks)
    if as_json:
        emit_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        _print(checks, failed)
    if failed:
        raise typer.Exit(code=1)


def _settings() -> tuple[Settings | None, Check]:
    """The settings (a stage's read from AWS without the start-up token request: the
    credentials check below asks), and the verdict on loading them."""
    from paywire.settings import Purpose, Settings, StageSource

    stage: str | None = None
    source = settings_source()
    try:
        if source is not None:  # a host framework's settings (Django's settings.PAYWIRE)
            settings = source.load(Purpose.SHOP)
        elif (stage := StageSource.load().stage) is None:
            settings = Settings.load()
        else:
            from paywire.aws.secrets import StageSecrets

            settings = StageSecrets(check_credentials=False).settings()
    except ConfigError as exc:
        fix = ("create or correct the stage's secret named (its JSON keys, its environment), "
               "or this role's access to it" if stage is not None else
               source.fix if source is not None else
               "set the named PAYWIRE_* variable (environment or .env)")
        return None, Check("settings", "fail", exc.message, fix)
    found = (f"providers {','.join(settings.providers)}; PayPal {settings.paypal.env} at "
             f"{settings.paypal.url}; store {settings.database_url_redacted}")
    if settings.stage is not None:
        found = (f"stage {settings.stage} (secrets {settings.paypal_secret_name}, "
                 f"{settings.app_secret_name}): {found}")
    return settings, Check("settings", "ok", found)


def _print(checks: list[Check], failed: bool) -> None:
    colour = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
    table = Table(title="paywire doctor")
    table.add_column("check", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("found")
    table.add_column("fix")
    for c in checks:
        table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail, c.fix)
    console.print(table, highlight=False)
    console.print("[red]something is wrong: see the fixes above[/]" if failed
                  else "[green]all good[/]")


async def _all(settings: Settings, url: str | None, aps_url: str | None) -> list[Check]:
    checks = [await asyncio.to_thread(database_check, settings)]
    if checks[0].status == "ok":
        checks += await store_checks(settings)
    else:
        checks += [Check(n, "skip", "the database is not usable") for n in
                   ("outbox", "orders", "rejections")]
    if "paypal" in settings.providers:
        checks += await paypal_checks(settings, url)
        checks.append(await certs_check(settings))
    else:
        checks += [Check(n, "skip", "paypal is not in PAYWIRE_PROVIDERS")
                   for n in ("credentials", "webhook", "certs")]
    if "aps" in settings.providers:
        from paywire.cli.doctor.aps import aps_checks

        checks += await aps_checks(settings, aps_url)
    return checks

