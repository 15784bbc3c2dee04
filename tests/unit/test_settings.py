"""Settings (PAYWIRE_*, .env, cross-field checks, secrets) and the catalog file loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paywire.bootstrap.catalog import load_catalog
from paywire.domain.errors import ConfigError
from paywire.domain.money import Money
from paywire.providers.paypal.money import check_amount
from paywire.settings import DEMO_CATALOG, Settings

SECRET = "s3cr3t-client-secret-value"
KEY_A, KEY_B = "admin-key-aaaaaaaaaaaaaaaa", "server-key-bbbbbbbbbbbbbbb"


def load(**values: Any) -> Settings:
    """Settings from `values` only (no .env file, no PAYWIRE_* a developer may have set)."""
    return Settings.load(_env_file=None, **values)


def refused(**values: Any) -> str:
    """The ConfigError message for settings that must not load."""
    with pytest.raises(ConfigError) as info:
        load(**values)
    return info.value.message


def test_defaults_run_against_the_emulator_on_embedded_sqlite() -> None:
    """With nothing set: the emulator, SQLite in .paywire, the demo catalog, 24 h keys."""
    s = load()
    assert s.paypal.env == "emulator" and s.paypal.url == "http://127.0.0.1:8090"
    assert s.database_url == "sqlite+aiosqlite:///.paywire/paywire.db" and s.is_sqlite
    assert s.catalog_file == DEMO_CATALOG
    assert s.idempotency_ttl_seconds == 24 * 3600 and s.api_keys == []


def test_environment_picks_the_paypal_host() -> None:
    """sandbox and live map to PayPal's hosts; an explicit base URL wins."""
    creds = {"paypal_client_id": "id", "paypal_client_secret": SECRET, "paypal_webhook_id": "WH-X",
             "catalog_path": DEMO_CATALOG}
    assert load(paypal_env="sandbox", **creds).paypal.url == "https://api-m.sandbox.paypal.com"
    assert load(paypal_env="live", **creds).paypal.url == "https://api-m.paypal.com"
    assert load(paypal_base_url="http://127.0.0.1:9999/").paypal.url == "http://127.0.0.1:9999"


@pytest.mark.parametrize("url", ["https://api-m.sandbox.paypal.com", "http://127.0.0.1:8090",
                                 "https://localhost:8090"])
def test_live_with_a_sandbox_or_emulator_url_is_refused(url: str) -> None:
    """Live credentials are never sent to a sandbox or emulator; the message names the setting."""
    message = refused(paypal_env="live", paypal_base_url=url, paypal_client_id="id",
                      paypal_client_secret=SECRET, catalog_path=DEMO_CATALOG)
    assert "PAYWIRE_PAYPAL_BASE_URL" in message and SECRET not in message


def test_sandbox_with_the_live_url_is_refused() -> None:
    """A sandbox configuration pointed at PayPal's live API is refused."""
    message = refused(paypal_env="sandbox", paypal_base_url="https://api-m.paypal.com",
                      paypal_client_id="id", paypal_client_secret=SECRET,
                      catalog_path=DEMO_CATALOG)
    assert "PAYWIRE_PAYPAL_ENV" in message


@pytest.mark.parametrize("env", ["sandbox", "live"])
def test_missing_credentials_are_named(env: str) -> None:
    """Sandbox and live need both credentials; the message names what is missing."""
    message = refused(paypal_env=env, catalog_path=DEMO_CATALOG, paypal_client_id="id")
    assert "PAYWIRE_PAYPAL_CLIENT_SECRET" in message
    assert "PAYWIRE_PAYPAL_CLIENT_ID" not in message


def test_unreadable_or_missing_catalogs_are_refused(tmp_path: Path) -> None:
    """A catalog that cannot be read, or none outside the emulator, fails at start-up."""
    assert "PAYWIRE_CATALOG_PATH" in refused(catalog_path=tmp_path / "missing.toml")
    assert "PAYWIRE_CATALOG_PATH" in refused(catalog_path=tmp_path / "catalog.yaml")
    assert "PAYWIRE_CATALOG_PATH" in refused(paypal_env="sandbox", paypal_client_id="id",
                                             paypal_client_secret=SECRET)


@pytest.mark.parametrize(("field", "value"), [
    ("return_url", "javascript:alert(1)"), ("cancel_url", "ftp://shop.example/cancel"),
    ("return_url", "https://"), ("cors_origins", "https://shop.example/path"),
    ("database_url", "mysql://db/paywire"), ("api_keys", "short"),
    ("paypal_base_url", "file:///etc/passwd"), ("max_body_bytes", 10),
])
def test_bad_values_are_refused_naming_the_setting(field: str, value: Any) -> None:
    """Each bad value is refused with the PAYWIRE_ variable it came from."""
    assert f"PAYWIRE_{field.upper()}" in refused(**{field: value})


def test_live_return_urls_must_be_https() -> None:
    """In live mode the buyer only ever returns over https."""
    message = refused(paypal_env="live", paypal_client_id="id", paypal_client_secret=SECRET,
                      catalog_path=DEMO_CATALOG, return_url="http://shop.example/return")
    assert "PAYWIRE_RETURN_URL" in message


def test_env_file_lists_and_secrets(tmp_path: Path) -> None:
    """A .env file sets fields; comma-separated keys and origins split; secrets stay hidden."""
    env = tmp_path / ".env"
    env.write_text(f"PAYWIRE_API_KEYS={KEY_A}, {KEY_B}\n"
                   "PAYWIRE_CORS_ORIGINS=https://shop.example,http://localhost:3000\n"
                   f"PAYWIRE_PAYPAL_CLIENT_SECRET={SECRET}\n"
                   "PAYWIRE_PAYPAL_CLIENT_ID=my-client\n"
                   "PAYWIRE_DATABASE_URL=postgresql+psycopg://paywire:hunter22@db/paywire\n"
                   "UNRELATED=ignored\n")
    s = Settings.load(_env_file=env)
    assert [k.get_secret_value() for k in s.api_keys] == [KEY_A, KEY_B]
    assert s.cors_origins == ["https://shop.example", "http://localhost:3000"]
    assert s.paypal.client_secret is not None
    assert s.paypal.client_secret.get_secret_value() == SECRET
    assert not s.is_sqlite
    assert s.database_url_redacted == "postgresql+psycopg://paywire:***@db/paywire"
    for text in (repr(s), str(s)):
        for secret in (SECRET, KEY_A, KEY_B, "hunter22"):
            assert secret not in text


def test_errors_never_quote_secrets() -> None:
    """A refused configuration holding secrets does not echo them in its message."""
    message = refused(paypal_client_secret=SECRET, api_keys=[KEY_A, "short"], port=0)
    assert "PAYWIRE_PORT" in message
    for secret in (SECRET, KEY_A, "short"):
        assert secret not in message


def test_operation_lease_outlives_a_provider_call() -> None:
    """A provider call cannot outlast the lease that keeps others from repeating it."""
    message = refused(paypal_timeout_seconds=30, operation_lease_seconds=10)
    assert "PAYWIRE_OPERATION_LEASE_SECONDS" in message


# --- the catalog file ------------------------------------------------------------------------


def test_demo_catalog_loads_under_paypal_rules() -> None:
    """The bundled demo catalog loads with PayPal's amount check, in USD."""
    catalog = load_catalog(DEMO_CATALOG, check_amount)
    assert catalog.products["mug"].unit_price == Money(1250, "USD")
    assert catalog.products["poster"].in_stock is False


def test_json_catalogs_load(tmp_path: Path) -> None:
    """A JSON catalog with per-product currencies loads."""
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"products": [
        {"sku": "book", "name": "Book", "unit_price": "1500", "currency": "JPY"}]}))
    assert load_catalog(path, check_amount).products["book"].unit_price == Money(1500, "JPY")


@pytest.mark.parametrize(("product", "needle"), [
    ({"sku": "a", "name": "A", "unit_price": 12.5, "currency": "USD"}, "decimal string"),
    ({"sku": "a", "name": "A", "unit_price": "10.50", "currency": "HUF"}, "whole units"),
    ({"sku": "a", "name": "A", "unit_price": "1.00", "currency": "ZAR"}, "does not accept"),
    ({"sku": "a", "name": "A", "unit_price": "1.001", "currency": "USD"}, "decimal places"),
    ({"sku": "a", "name": "A", "unit_price": "1.00", "currency": "USD", "price": "1"},
     "unknown field"),
    ({"sku": "a", "name": "A", "unit_price": "1.00"}, "currency"),
    ({"sku": "a", "name": "A", "unit_price": "0.00", "currency": "USD"}, "positive"),
])
def test_catalog_refuses_what_paypal_cannot_take(tmp_path: Path, product: dict[str, Any],
                                                 needle: str) -> None:
    """Bad products stop the load with the file and product named."""
    path = tmp_path / "shop.json"
    path.write_text(json.dumps({"products": [product]}))
    with pytest.raises(ConfigError) as info:
        load_catalog(path, check_amount)
    assert str(path) in info.value.message and "'a'" in info.value.message
    assert needle in info.value.message


def test_catalog_file_level_problems(tmp_path: Path) -> None:
    """Broken TOML, an empty list and mixed currencies are refused, naming the file."""
    broken = tmp_path / "broken.toml"
    broken.write_text("[[products]\nsku=")
    empty = tmp_path / "empty.toml"
    empty.write_text("products = []\n")
    mixed = tmp_path / "mixed.toml"
    mixed.write_text('[[products]]\nsku="a"\nname="A"\nunit_price="1.00"\ncurrency="USD"\n'
                     '[[products]]\nsku="b"\nname="B"\nunit_price="1.00"\ncurrency="EUR"\n')
    for path in (broken, empty, mixed, tmp_path / "absent.toml"):
        with pytest.raises(ConfigError) as info:
            load_catalog(path, check_amount)
        assert str(path) in info.value.message


def test_password_sign_in_needs_a_session_secret() -> None:
    """A dashboard password without PAYWIRE_ADMIN_SESSION_SECRET (or with a short one) is
    refused, naming the variables and quoting neither value; API keys alone need none, nor
    a disabled dashboard."""
    hashed = "scrypt$1024$8$1$" + "ab" * 16 + "$" + "cd" * 32
    message = refused(admin_password_hash=hashed)
    assert "PAYWIRE_ADMIN_SESSION_SECRET" in message and hashed not in message
    short = "too-short-secret"
    message = refused(admin_password_hash=hashed, admin_session_secret=short)
    assert "PAYWIRE_ADMIN_SESSION_SECRET is shorter than 32" in message
    assert short not in message
    assert load(admin_password_hash=hashed, admin_session_secret="x" * 32).admin_enabled
    assert load(admin_password_hash=hashed, admin_enabled=False).admin_password_hash
    assert load(api_keys=[KEY_A]).admin_session_secret is None


@pytest.mark.parametrize("bad", ["hunter2-plain-password", "scrypt$1024$8$1$zz$cd",
                                 "scrypt$1000$8$1$ab$cd", "bcrypt$1024$8$1$ab$cd",
                                 "scrypt$1024$8$1$$cd"])
def test_the_dashboard_password_hash_is_checked(bad: str) -> None:
    """PAYWIRE_ADMIN_PASSWORD_HASH must read as a hash `paywire admin hash-password` prints;
    the refusal names the variable and never echoes the value (it may be a password pasted
    by mistake)."""
    message = refused(admin_password_hash=bad, admin_session_secret="x" * 32)
    assert "PAYWIRE_ADMIN_PASSWORD_HASH is not a password hash" in message
    assert bad not in message and "hunter2" not in message
