"""What the operator commands share: settings, the store or the whole container for one command,
JSON output with stable keys, and exits scripts can trust (1 wrong or not found, 2 usage).

The commands read their settings from the process (`PAYWIRE_*`, `.env`, a stage's secrets)
unless a host framework that runs them says where else (`settings_from`): Django's `manage.py
paywire ...` (`paywire.contrib.django`) gives `settings.PAYWIRE`, so the same commands serve
both and no second copy of them exists.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from paywire.domain import trace
from paywire.domain.errors import ConfigError, PaywireError
from paywire.domain.money import Money

if TYPE_CHECKING:
    from paywire.bootstrap import Container
    from paywire.ports import OpsUnitOfWork
    from paywire.settings import Purpose, Settings

T = TypeVar("T")
console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Say what is wrong on stderr and exit with `code`."""
    errors.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=code)


@dataclass(frozen=True)
class SettingsSource:
    """Where the commands read settings when not from the process: `load(purpose, **overrides)`
    (overrides named as settings, from the command line) gives them or raises ConfigError; `fix`
    says how a problem it names is fixed (for `paywire doctor`)."""

    load: Callable[..., Settings]
    fix: str


_source: ContextVar[SettingsSource | None] = ContextVar("paywire_cli_settings_source",
                                                        default=None)


@contextmanager
def settings_from(source: SettingsSource) -> Iterator[None]:
    """Within the block, the commands read their settings from `source`."""
    token = _source.set(source)
    try:
        yield
    finally:
        _source.reset(token)


def settings_source() -> SettingsSource | None:
    """The source `settings_from` set, if any (None: the process's environment)."""
    return _source.get()


def load_settings(purpose: Purpose | None = None) -> Settings:
    """Settings from PAYWIRE_* and .env — or, with `PAYWIRE_STAGE` set, the stage's (Secrets
    Manager and SSM) — or a one-line error naming the setting (exit 2). `purpose`: what the
    command needs when it is less than a shop (`Purpose.WEBHOOK_SETUP` for the commands that
    make the webhook id, which need neither it nor a catalog)."""
    from paywire.aws.secrets import load_settings as process_settings
    from paywire.settings import Purpose

    source = _source.get()
    try:
        if source is not None:
            return source.load(purpose or Purpose.SHOP)
        return process_settings(purpose=purpose or Purpose.SHOP)
    except ConfigError as exc:
        fail(f"configuration: {exc.message}", code=2)


def local_settings(**overrides: Any) -> Settings:
    """Settings from PAYWIRE_* and .env only (no stage), with `overrides` from the command line,
    or a one-line error naming the setting (exit 2): for the commands that run paywire here."""
    from paywire.settings import Purpose, Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    source = _source.get()
    try:
        if source is not None:
            return source.load(Purpose.SHOP, **given)
        return Settings.load(**given)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/] {exc.message}", markup=True, highlight=False)
        raise typer.Exit(code=2) from None



def emit_json(data: object) -> None:
    """One JSON document on stdout (sorted keys, ISO times)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _plain(value: Any) -> Any:
    if isinstance(value, Money):
        return {"currency_code": value.currency, "value": value.to_decimal()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value  # enums
    return value


def record_json(record: object) -> dict[str, Any]:
    """A port dataclass as JSON-ready values (Money as currency_code/value, ISO times)."""
    assert dataclasses.is_dataclass(record) and not isinstance(record, type)  # noqa: S101
    return {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record)}


def moment(value: object) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM:SS` (blank for None)."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def _run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        with trace.scope(trace.start()):  # one trace per command (it joins an order's)
            return await coro

    try:
        return asyncio.run(main())
    except PaywireError as exc:
        fail(exc.message)


def with_store(fn: Callable[[OpsUnitOfWork], Awaitable[T]]) -> T:
    """Run `fn` in one transaction of the configured store (SQLite migrated first)."""
    from paywire import logs
    from paywire.bootstrap import migrate_embedded, store_for

    settings = load_settings()
    logs.setup(settings, "text")

    async def main() -> T:
        store = store_for(settings)
        try:
            async with store.transaction() as uow:
                return await fn(uow)
        finally:
            await store.close()

    try:
        migrate_embedded(settings)
    except PaywireError as exc:
        fail(exc.message)
    return _run(main())


def with_container(fn: Callable[[Container], Awaitable[T]],
                   settings: Settings | None = None) -> T:
    """Run `fn` on the wired container (store, PayPal client, services), closed afterwards."""
    from paywire import logs
    from paywire.bootstrap import build

    settings = settings or load_settings()
    logs.setup(settings, "text")

    async def main() -> T:
        try:
            container = await build(settings)
        except ConfigError as exc:
            fail(f"configuration: {exc.message}", code=2)
        try:
            return await fn(container)
        finally:
            await container.aclose()

    return _run(main())
