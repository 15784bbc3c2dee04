"""`paywire webhooks register|list|delete|trigger`: PayPal's webhook subscriptions for this app.

They call PayPal's webhooks API with the configured credentials. `register` stores the new id
where paywire reads the id it verifies against (`PAYWIRE_PAYPAL_WEBHOOK_ID` in an env file).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from paywire.cli.common import console, emit_json, fail, load_settings
from paywire.domain.errors import ProviderError
from paywire.providers.paypal.webhooks_api import WebhooksApi
from paywire.settings import Purpose

if TYPE_CHECKING:
    from paywire.settings import Settings

T = TypeVar("T")
WEBHOOK_ID_VAR = "PAYWIRE_PAYPAL_WEBHOOK_ID"
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


webhooks_app = typer.Typer(help="PayPal webhooks: this app's subscriptions, and a test event.",
                           no_args_is_help=True)


def webhooks_api(settings: Settings) -> WebhooksApi:
    """The webhooks API for the configured app (exit 2 without credentials)."""
    if settings.paypal.client_id is None or settings.paypal.client_secret is None:
        fail("configuration: PAYWIRE_PAYPAL_CLIENT_ID and PAYWIRE_PAYPAL_CLIENT_SECRET must be "
             "set", code=2)
    return WebhooksApi(settings.paypal.url, settings.paypal.client_id,
                       settings.paypal.client_secret.get_secret_value(),
                       timeout=settings.paypal.timeout_seconds)


def credentials_hint(exc: ProviderError, settings: Settings) -> str:
    """What a refused token most likely means, and the fix."""
    if exc.name != "invalid_client":
        return exc.message
    other = "live" if settings.paypal.env != "live" else "sandbox"
    return (f"{exc.message}. PayPal at {settings.paypal.url} ({settings.paypal.env}) does not "
            f"know this client id/secret: most likely the {other} app's credentials are used "
            f"against {settings.paypal.env}, or the secret was rotated. Fix: copy the "
            f"{settings.paypal.env} app's client id and secret (developer.paypal.com, Apps & "
            "Credentials, the matching Sandbox/Live tab) into PAYWIRE_PAYPAL_CLIENT_ID and "
            "PAYWIRE_PAYPAL_CLIENT_SECRET, or set PAYWIRE_PAYPAL_ENV to the credentials' "
            "environment")


def call(settings: Settings, fn: Callable[[WebhooksApi], Awaitable[T]]) -> T:
    """Run `fn` on the webhooks API (in a trace of its own, logged as the operator commands
    are); PayPal's refusals exit 1 with the explanation."""
    from paywire import logs
    from paywire.domain import trace

    logs.setup(settings, "text")
    api = webhooks_api(settings)

    async def main() -> T:
        with trace.scope(trace.start()):
            try:
                return await fn(api)
            finally:
                await api.aclose()

    try:
        return asyncio.run(main())
    except ProviderError as exc:
        fail(credentials_hint(exc, settings))


def write_env(path: Path, name: str, value: str) -> None:
    """Set `name=value` in a .env-style file (the line replaced, or appended)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    pattern = re.compile(rf"^\s*(export\s+)?{re.escape(name)}\s*=")
    kept = [line for line in lines if not pattern.match(line)]
    kept.append(f"{name}={value}")
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")


@webhooks_app.command("register")
def register(
    url: Annotated[str, typer.Option(help="paywire's public webhook URL (…/webhooks/paypal).")],
    events: Annotated[str, typer.Option(help="Comma-separated event types, or '*'.")] = "*",
    env_file: Annotated[Path | None, typer.Option(
        help=f"Write {WEBHOOK_ID_VAR} into this .env file.")] = None,
    as_json: Json = False,
) -> None:
    """Subscribe paywire's URL at PayPal and store the webhook id paywire verifies against."""
    settings = load_settings(Purpose.WEBHOOK_SETUP)
    types = [t.strip() for t in events.split(",") if t.strip()]
    if not types:
        raise typer.BadParameter("give at least one event type, or '*'", param_hint="--events")
    made = call(settings, lambda api: api.create(url, types))
    if env_file is not None:
        try:
            write_env(env_file, WEBHOOK_ID_VAR, made.id)
        except OSError as exc:
            fail(f"registered {made.id}, but cannot write {env_file}: {exc.strerror or exc}")
    if as_json:
        emit_json({**made.as_json(), "env_file": str(env_file) if env_file else None})
        return
    console.print(f"registered webhook {made.id} for {made.url} "
                  f"({', '.join(made.event_types)})", highlight=False, markup=False)
    if env_file is not None:
        console.print(f"wrote {WEBHOOK_ID_VAR} to {env_file}; restart paywire to use it",
                      highlight=False, markup=False)
    else:
        console.print(f"set this where paywire runs:\n{WEBHOOK_ID_VAR}={made.id}",
                      highlight=False, markup=False)


@webhooks_app.command("list")
def list_webhooks(as_json: Json = False) -> None:
    """This app's webhook subscriptions at PayPal (ours marked)."""
    settings = load_settings(Purpose.WEBHOOK_SETUP)
    hooks = call(settings, lambda api: api.list_all())
    ours = settings.paypal.webhook_id
    if as_json:
        emit_json({"data": [{**h.as_json(), "configured": h.id == ours} for h in hooks]})
        return
    if not hooks:
        console.print("no webhooks registered for this app")
        return
    table = Table(title=f"webhooks at PayPal ({settings.paypal.env})")
    for col in ("id", "url", "event types", "configured"):
        table.add_column(col, no_wrap=col != "event types")
    for h in hooks:
        table.add_row(h.id, h.url, ", ".join(h.event_types), "yes" if h.id == ours else "")
    console.print(table, highlight=False)


@webhooks_app.command("delete")
def delete(webhook_id: Annotated[str, typer.Argument(help="The webhook id.")]) -> None:
    """Delete a webhook subscription at PayPal."""
    settings = load_settings(Purpose.WEBHOOK_SETUP)
    if not call(settings, lambda api: api.delete(webhook_id)):
        fail(f"PayPal knows no webhook {webhook_id} for this app")
    console.print(f"deleted webhook {webhook_id}", highlight=False, markup=False)
    if webhook_id == settings.paypal.webhook_id:
        console.print(f"[yellow]warning:[/] it was {WEBHOOK_ID_VAR}: register a new one",
                      highlight=False)


@webhooks_app.command("trigger")
def trigger(
    event_type: Annotated[str, typer.Argument(help="e.g. PAYMENT.CAPTURE.COMPLETED.")],
    url: Annotated[str | None, typer.Option(
        help="Send to this URL (default: the configured webhook).")] = None,
    as_json: Json = False,
) -> None:
    """Have PayPal send a mock event (emulator and sandbox only)."""
    settings = load_settings()
    if settings.paypal.env == "live":
        fail("webhooks trigger is for the emulator and sandbox only (PAYWIRE_PAYPAL_ENV=live)")
    webhook_id = None if url else settings.paypal.webhook_id
    if url is None and webhook_id is None:
        raise typer.BadParameter(f"give --url, or set {WEBHOOK_ID_VAR}", param_hint="--url")
    sent = call(settings, lambda api: api.simulate(event_type, webhook_id=webhook_id, url=url))
    if as_json:
        emit_json({"event_id": sent.get("id"), "event_type": sent.get("event_type"),
                   "webhook_id": webhook_id, "url": url})
        return
    console.print(f"PayPal sends {sent.get('event_type')} {sent.get('id')} to "
                  f"{url or 'webhook ' + str(webhook_id)}", highlight=False, markup=False)
