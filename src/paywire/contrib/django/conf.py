"""`settings.PAYWIRE` as paywire's `Settings`: the same names and checks as `PAYWIRE_*`.

Each key is a setting named as its variable without `PAYWIRE_` (`PAYPAL_CLIENT_ID`, `PROVIDERS`,
`OUTBOX_WORKER_ENABLED`; any case, and a `PAYWIRE_` prefix is tolerated), its value a string as
in the environment (`"paypal,aps"`) or the Python value (`["paypal", "aps"]`, `True`). The
project's settings are the one truth: neither the environment nor a `.env` file is read
(`Settings.from_values`), so a key that is not a setting is refused instead of ignored, and a
problem is named by its key (`PAYWIRE["PAYPAL_CLIENT_ID"]`), never by its value.

Keys only Django has:

- `DATABASE_ALIAS` (default `"default"`): the database of `settings.DATABASES` paywire keeps its
  tables in, unless `DATABASE_URL` names another. SQLite on a file or PostgreSQL; read when
  the settings are built, so a test database (pytest-django, `manage.py test`) is followed;
- `MIGRATE_WITH_DJANGO` (default `True`): `manage.py migrate` of that database also runs
  paywire's migrations (`apps`);
- `FULFILMENT_CALLABLE` keeps its name but not its plumbing: the shop's function
  (`"shop.fulfilment:on_paywire"`, or the function itself) is called by
  `paywire.contrib.django.fulfilment.deliver`, inside the shop's `transaction.atomic()` with
  the message's dedupe row, which is what paywire's outbox delivers to.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from django.conf import settings as django_settings
from django.db import connections

from paywire.delivery.python_callable import load_callable
from paywire.domain.errors import ConfigError
from paywire.settings import Purpose, Settings

# What paywire's outbox delivers to in a Django project (`fulfilment.deliver`).
DELIVER = "paywire.contrib.django.fulfilment:deliver"
# libpq parameters a Django PostgreSQL `OPTIONS` may hold that paywire's connections share.
_LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options",
                  "application_name", "target_session_attrs", "passfile", "service")
_VARIABLE = re.compile(r"\bPAYWIRE_([A-Z0-9_]+)\b")


@dataclass(frozen=True)
class DjangoOptions:
    """The keys of `settings.PAYWIRE` that only Django has."""

    database_alias: str = "default"
    migrate_with_django: bool = True
    # The shop's fulfilment function (`FULFILMENT_CALLABLE`): a `module:function` or the function.
    handler: str | Callable[..., Any] | None = None


_OWN = {"database_alias", "migrate_with_django"}


def key(name: str) -> str:
    """How `settings.PAYWIRE` names the setting `name` (`paypal_client_id`):
    `PAYWIRE["PAYPAL_CLIENT_ID"]`."""
    return f'PAYWIRE["{name.upper()}"]'


def django_names(message: str) -> str:
    """`message` with each `PAYWIRE_<SETTING>` variable named as its `settings.PAYWIRE` key."""
    names = Settings.setting_paths()
    return _VARIABLE.sub(
        lambda m: key(m[1]) if m[1].lower() in names or m[1].lower() in _OWN else m[0], message)


def _configured() -> dict[str, Any]:
    value = getattr(django_settings, "PAYWIRE", {})
    if not isinstance(value, Mapping):
        raise ConfigError("settings.PAYWIRE must be a dict of paywire's settings "
                          '({"PAYPAL_CLIENT_ID": ..., ...})')
    return dict(value)


def split() -> tuple[dict[str, Any], DjangoOptions]:
    """`settings.PAYWIRE` as paywire's settings (named in lower case) and Django's own keys;
    ConfigError naming every key that is neither."""
    names = Settings.setting_paths()
    values: dict[str, Any] = {}
    own: dict[str, Any] = {}
    unknown: list[str] = []
    for raw, value in _configured().items():
        name = str(raw).lower()
        name = name.removeprefix("paywire_")
        if name in _OWN:
            own[name] = value
        elif name in names:
            values[name] = value
        else:
            unknown.append(repr(raw))
    if unknown:
        verb = "is not a paywire setting" if len(unknown) == 1 else "are not paywire settings"
        raise ConfigError(f"settings.PAYWIRE: {', '.join(unknown)} {verb}"
                          " (the keys are the PAYWIRE_* variables without PAYWIRE_, e.g. "
                          '"PAYPAL_CLIENT_ID"; or DATABASE_ALIAS, MIGRATE_WITH_DJANGO)')
    alias = own.get("database_alias", "default")
    if not isinstance(alias, str) or not alias:
        raise ConfigError(f"{key('database_alias')} must name a database of settings.DATABASES")
    migrate = own.get("migrate_with_django", True)
    if not isinstance(migrate, bool):
        raise ConfigError(f"{key('migrate_with_django')} must be True or False")
    handler = values.pop("fulfilment_callable", None)
    if handler is not None and not (isinstance(handler, str) or callable(handler)):
        raise ConfigError(f"{key('fulfilment_callable')} must be 'package.module:function' "
                          "or a function")
    return values, DjangoOptions(alias, migrate, handler or None)


def options() -> DjangoOptions:
    """Django's own keys of `settings.PAYWIRE` (ConfigError if any key is wrong)."""
    return split()[1]


def database_url(alias: str) -> str:
    """paywire's URL for the Django database `alias` (as it is now: a test database once the
    test runner made it); ConfigError unless it is SQLite on a file or PostgreSQL."""
    if alias not in connections.settings:
        raise ConfigError(f"{key('database_alias')}: settings.DATABASES has no {alias!r}")
    connection = connections[alias]
    return url_for(alias, connection.vendor, connection.settings_dict)


def url_for(alias: str, vendor: str, config: Mapping[str, Any]) -> str:
    """paywire's URL for a Django database of `vendor` configured by `config` (its
    `settings.DATABASES` entry)."""
    if vendor == "sqlite":
        name = str(config.get("NAME") or "")
        if not name or name == ":memory:" or "mode=memory" in name:
            raise ConfigError(f"settings.DATABASES[{alias!r}] is an in-memory SQLite database, "
                              "which paywire's connections cannot share: give it a file (for "
                              'tests too: its "TEST": {"NAME": "<file>"})')
        return sa.URL.create("sqlite+aiosqlite",
                             database=str(Path(name).resolve())).render_as_string()
    if vendor == "postgresql":
        extra = config.get("OPTIONS") or {}
        port = config.get("PORT")
        url = sa.URL.create(
            "postgresql+psycopg", username=config.get("USER") or None,
            password=config.get("PASSWORD") or None, host=config.get("HOST") or None,
            port=int(port) if port else None, database=config.get("NAME") or None,
            query={k: str(v) for k, v in extra.items() if k in _LIBPQ_OPTIONS})
        return url.render_as_string(hide_password=False)
    raise ConfigError(f"settings.DATABASES[{alias!r}] is {vendor}: paywire keeps its "
                      "tables in SQLite or PostgreSQL (set PAYWIRE[\"DATABASE_ALIAS\"] to one, "
                      'or PAYWIRE["DATABASE_URL"])')


def paywire_database_url() -> str:
    """The database paywire keeps its tables in: `DATABASE_URL`, else the `DATABASE_ALIAS`
    database's (without checking the other settings: migrations need only this)."""
    values, own = split()
    url = values.get("database_url")
    return str(url) if url else database_url(own.database_alias)


def paywire_settings(purpose: Purpose = Purpose.SHOP, **overrides: Any) -> Settings:
    """paywire's settings from `settings.PAYWIRE` and the Django database (`overrides`, named
    as settings, win), checked for `purpose`; ConfigError naming each problem by its key."""
    try:
        values, own = split()
        if "database_url" not in values and "database_url" not in overrides:
            values["database_url"] = database_url(own.database_alias)
        # The outbox delivers to the shop's transaction (`fulfilment.deliver`), which calls
        # the shop's FULFILMENT_CALLABLE.
        values["fulfilment_callable"] = DELIVER
        values.update(overrides)
        return Settings.from_values(purpose=purpose, **values)
    except ConfigError as exc:
        problems = [django_names(str(p)) for p in exc.details.get("problems", [])]
        raise ConfigError(django_names(exc.message),
                          details={"problems": problems} if problems else None) from None


def handler() -> Callable[..., Any] | None:
    """The shop's fulfilment function (`FULFILMENT_CALLABLE`), imported once; None if unset."""
    spec = options().handler
    if spec is None or callable(spec):
        return spec
    return _import(spec)


@functools.cache
def _import(spec: str) -> Callable[..., Any]:
    try:
        return load_callable(spec)
    except ConfigError as exc:
        raise ConfigError(f"{key('fulfilment_callable')}: {exc.message}") from None
