"""paywire's one settings object: `PAYWIRE_*` environment variables (and `.env`), checked once.

Every field maps to `PAYWIRE_<FIELD>`; CLI flags map onto the same fields. `Settings.load()` is
the start-up entry point: anything that cannot work raises `ConfigError` naming the setting, and
no secret (client secret, API keys, a database password) ever appears in a repr, str or error.

A *stage* (`PAYWIRE_STAGE`, e.g. `prod`) is a deployment whose secrets live in AWS Secrets
Manager: `paywire.aws.secrets.stage_settings()` reads them (`StageSource` says where from) and
builds `Settings` with them. The stage's PayPal secret records its environment, which selects
PayPal's host; `PAYWIRE_PAYPAL_ENV`, if set too, must agree. APS's environment is the stage's
too: `aps.env` follows it (a sandbox stage takes APS test cards, a live stage real ones), one
set otherwise (`PAYWIRE_APS_ENV`, an SSM parameter, an override) fails naming both, and a live
stage's APS URLs are APS's live hosts over https. A stage's settings cannot be loaded from the
environment alone (`Settings.load()` refuses `PAYWIRE_STAGE` without them).

Each provider's settings are a section: `PAYWIRE_PAYPAL_*` are `settings.paypal`
(`PayPalSettings`), `PAYWIRE_APS_*` are `settings.aps` (`ApsSettings`), under the same variable
names. A setting is named by its variable without `PAYWIRE_`, lower case, wherever it is named
rather than read: overrides (`Settings.load(paypal_client_id=...)`), CLI flags, SSM parameters,
a stage's secrets; `Settings.setting_paths()` says where each lives.

What a process loads settings for is an argument, never a variable: `Settings.load(purpose=
Purpose.WEBHOOK_SETUP)` for the commands that make the webhook id, `Purpose.OUTBOX` for the
processes that only move the outbox (`paywire.settings.purpose`).

The package's modules, each importing only those listed before it: `errors` (how a problem is
reported: by variable, never by value), `purpose` (what a process needs), `urls` (the
providers' hosts and URL checks), `stage` (`StageSource` and a stage's secret names),
`provider` (what a provider's section is), `paypal` and `aps` (their sections), `fields` (each
field on its own), `checks` (the fields together) and `model` (`Settings`). Import from
`paywire.settings` itself: the names below are its interface.
"""

from __future__ import annotations

from paywire.settings.aps import APS_SECRETS, ApsSettings
from paywire.settings.checks import (
    MIN_API_KEY_CHARS,
    MIN_SESSION_SECRET_CHARS,
    PAYPAL_RETRY_HORIZON_SECONDS,
    valid_password_hash,
)
from paywire.settings.errors import SettingsT, env_name, load_validated
from paywire.settings.fields import DEMO_CATALOG, ProviderName
from paywire.settings.model import Settings
from paywire.settings.paypal import PayPalSettings
from paywire.settings.provider import ProviderSettings
from paywire.settings.purpose import Purpose
from paywire.settings.stage import StageSource, app_secret_name, paypal_secret_name, ssm_path
from paywire.settings.urls import (
    APS_URLS,
    DYNAMODB_SCHEME,
    DYNAMODB_URL_OPTIONS,
    EMULATOR_CA_PATH,
    PAYPAL_BASE_URLS,
    PAYPAL_CERT_HOSTS,
    PayPalEnv,
    dynamodb_table,
)

__all__ = [
    "APS_SECRETS",
    "APS_URLS",
    "DEMO_CATALOG",
    "DYNAMODB_SCHEME",
    "DYNAMODB_URL_OPTIONS",
    "EMULATOR_CA_PATH",
    "MIN_API_KEY_CHARS",
    "MIN_SESSION_SECRET_CHARS",
    "PAYPAL_BASE_URLS",
    "PAYPAL_CERT_HOSTS",
    "PAYPAL_RETRY_HORIZON_SECONDS",
    "ApsSettings",
    "PayPalEnv",
    "PayPalSettings",
    "ProviderName",
    "ProviderSettings",
    "Purpose",
    "Settings",
    "SettingsT",
    "StageSource",
    "app_secret_name",
    "dynamodb_table",
    "env_name",
    "load_validated",
    "paypal_secret_name",
    "ssm_path",
    "valid_password_hash",
]
