"""settings.PAYWIRE read as paywire's settings: the same names and checks as PAYWIRE_*,
named by key in every problem, the project's database as paywire's store, and a Django system
check that refuses what cannot work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from paywire.contrib.django import conf
from paywire.contrib.django.checks import check_settings
from paywire.domain.errors import ConfigError

pytestmark = pytest.mark.usefixtures("site")  # the catalog file the settings name


def with_paywire(**changes: Any) -> Any:
    """settings.PAYWIRE with `changes` (None removes a key)."""
    values = {**settings.PAYWIRE, **changes}
    return override_settings(PAYWIRE={k: v for k, v in values.items() if v is not None})


def test_keys_are_the_variables_without_their_prefix() -> None:
    """Strings as in the environment or Python values, any case, a PAYWIRE_ prefix tolerated."""
    with with_paywire(PROVIDERS=["paypal"], outbox_batch="7", PAYWIRE_API_KEYS="k" * 32,
                      WEBHOOK_CONFIRM_INLINE=False):
        loaded = conf.paywire_settings()
    assert loaded.providers == ["paypal"]
    assert loaded.outbox_batch == 7
    assert [k.get_secret_value() for k in loaded.api_keys] == ["k" * 32]
    assert loaded.webhook_confirm_inline is False
    assert loaded.paypal.client_id == settings.PAYWIRE["PAYPAL_CLIENT_ID"]
    # The outbox delivers into the shop's transaction, which calls the shop's function.
    assert loaded.fulfilment_callable == conf.DELIVER
    assert conf.options().handler == "shop.fulfilment:on_paywire"


def test_the_environment_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """settings.PAYWIRE is the one truth: a PAYWIRE_* variable changes nothing."""
    monkeypatch.setenv("PAYWIRE_OUTBOX_BATCH", "3")
    assert conf.paywire_settings().outbox_batch == 50


def test_problems_name_the_key_never_the_value() -> None:
    """A bad value is named by its settings.PAYWIRE key; a secret never appears."""
    with with_paywire(PAYPAL_ENV="sandbox", PAYPAL_CLIENT_SECRET=None,
                      PAYPAL_CLIENT_ID="id-visible", API_KEYS="short-secret-value"
                      ), pytest.raises(ConfigError) as caught:
        conf.paywire_settings()
    message = caught.value.message
    assert 'PAYWIRE["PAYPAL_CLIENT_SECRET"]' in message or 'PAYWIRE["API_KEYS"]' in message
    assert "short-secret-value" not in message
    assert "PAYWIRE_" not in message.replace('PAYWIRE["', "")


def test_a_key_that_is_no_setting_is_refused() -> None:
    """A typo is an error, not silently ignored as an unknown environment variable would be."""
    with with_paywire(PAYPAL_CLIENTID="x"), pytest.raises(ConfigError, match="PAYPAL_CLIENTID"):
        conf.paywire_settings()


def test_paywire_stores_in_the_projects_database() -> None:
    """Unless DATABASE_URL says otherwise, paywire's URL is the Django database's, as it is now
    (the test database, here)."""
    url = conf.paywire_settings().database_url
    config = connections["default"].settings_dict
    if connections["default"].vendor == "sqlite":
        assert url == f"sqlite+aiosqlite:///{Path(config['NAME']).resolve()}"
    else:
        assert url.startswith("postgresql+psycopg://")
        assert url.endswith(f"/{config['NAME']}")
    with with_paywire(DATABASE_URL="sqlite+aiosqlite:////tmp/elsewhere.db"):
        assert conf.paywire_settings().database_url == "sqlite+aiosqlite:////tmp/elsewhere.db"


def test_databases_paywire_cannot_use_are_refused() -> None:
    """An in-memory SQLite database (paywire's connections cannot share it), another vendor, or
    an alias settings.DATABASES lacks; PostgreSQL's settings become paywire's URL, password and
    libpq options included."""
    with pytest.raises(ConfigError, match="in-memory"):
        conf.url_for("default", "sqlite", {"NAME": ":memory:"})
    with pytest.raises(ConfigError, match="mysql"):
        conf.url_for("default", "mysql", {"NAME": "shop"})
    with with_paywire(DATABASE_ALIAS="reports"), pytest.raises(ConfigError, match="reports"):
        conf.paywire_settings()
    assert conf.url_for("default", "postgresql", {
        "NAME": "shop", "USER": "app", "PASSWORD": "p@ss", "HOST": "db", "PORT": "5433",
        "OPTIONS": {"sslmode": "require", "pool": True}}) == (
        "postgresql+psycopg://app:p%40ss@db:5433/shop?sslmode=require")


def test_system_check_refuses_bad_settings() -> None:
    """`manage.py check` (and runserver, migrate) report paywire.E001 naming the key."""
    assert check_settings() == []
    with with_paywire(OUTBOX_BATCH=0):
        [error] = check_settings()
    assert error.id == "paywire.E001"
    assert 'PAYWIRE["OUTBOX_BATCH"]' in error.msg
    with with_paywire(FULFILMENT_CALLABLE="shop.fulfilment:nowhere"):
        conf._import.cache_clear()
        [error] = check_settings()
    assert error.id == "paywire.E002"
