"""The checks across settings: what the fields say together, run once all are read.

Each check refuses a combination that cannot work or would be unsafe -- live credentials sent
to a sandbox or emulator host, a live stage taking APS test cards, a webhook nobody can verify,
a lease shorter than the call it covers -- with a ValueError naming the variables to change
(`paywire.settings.errors` turns it into the ConfigError start-up reports). The checks that
concern one provider alone are its section's (`paywire.settings.paypal`, `paywire.settings.aps`),
run from here in order. The processes that need less (`paywire.settings.purpose`) are let
through without what they never use.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from paywire.settings.errors import env_name
from paywire.settings.fields import SettingsFields
from paywire.settings.purpose import Purpose
from paywire.settings.urls import HOST_PORT, dynamodb_table, http_url

MIN_API_KEY_CHARS = 16
# The dashboard's session-signing secret: long enough that it cannot be guessed.
MIN_SESSION_SECRET_CHARS = 32
# PayPal retries a delivery for 3 days; refusing younger transmissions would refuse retries.
PAYPAL_RETRY_HORIZON_SECONDS = 3 * 86400


def check_all(settings: SettingsFields, purpose: Purpose) -> None:
    """Every check, in order, for what the settings are loaded for; the default SQLite store
    filled in when no URL is set."""
    check_stage(settings)
    settings.paypal.check(offered="paypal" in settings.providers, purpose=purpose)
    check_shop(settings, purpose)
    check_timing(settings)
    check_webhooks(settings, purpose)
    check_aps(settings, purpose)
    check_metrics(settings)
    check_admin(settings)
    if not settings.database_url:
        settings.database_url = f"sqlite+aiosqlite:///{settings.data_dir / 'paywire.db'}"
    elif dynamodb_table(settings.database_url) is None and not settings.is_sqlite and (
            not settings.database_url.startswith("postgresql")):
        raise ValueError("PAYWIRE_DATABASE_URL must be a sqlite+aiosqlite://, "
                         "postgresql+psycopg:// or dynamodb://<table> URL")


def check_aps(settings: SettingsFields, purpose: Purpose) -> None:
    """A provider named once; APS's own checks when it is offered."""
    if len(set(settings.providers)) != len(settings.providers):
        raise ValueError("PAYWIRE_PROVIDERS names a provider twice")
    if "aps" in settings.providers:
        settings.aps.check(purpose=purpose, stage=settings.stage, paypal=settings.paypal)


def check_stage(settings: SettingsFields) -> None:
    """A stage's environment comes from its secret, and PayPal's and APS's follow it."""
    if settings.stage is None:
        if settings.stage_environment is not None:
            raise ValueError("PAYWIRE_STAGE_ENVIRONMENT comes from a stage's secret, and "
                             "PAYWIRE_STAGE is not set")
        return
    if settings.stage_environment is None:
        raise ValueError(f"PAYWIRE_STAGE={settings.stage}: a stage's settings come from its "
                         f"secrets ({settings.paypal_secret_name} in AWS Secrets Manager); load "
                         "them with paywire.aws.secrets.stage_settings() (pip install "
                         "'paywire[aws]')")
    if settings.paypal.env != settings.stage_environment:
        raise ValueError(f"the stage secret {settings.paypal_secret_name} records environment "
                         f"{settings.stage_environment} but PAYWIRE_PAYPAL_ENV is "
                         f"{settings.paypal.env}: make them agree (or unset PAYWIRE_PAYPAL_ENV "
                         "and let the stage choose)")
    # APS's environment is the stage's: a live stage must not take APS test cards (nor a
    # sandbox stage real ones). Unset, it follows; set, it must agree.
    if "env" not in settings.aps.model_fields_set:
        settings.aps.env = settings.stage_environment
    elif settings.aps.env != settings.stage_environment:
        raise ValueError(f"the stage secret {settings.paypal_secret_name} records environment "
                         f"{settings.stage_environment} but PAYWIRE_APS_ENV is {settings.aps.env}: "
                         "a stage's APS environment is its PayPal environment (unset "
                         "PAYWIRE_APS_ENV and let the stage choose)")


def check_shop(settings: SettingsFields, purpose: Purpose) -> None:
    """The shop's URLs, CORS origins, API keys and catalog are usable."""
    live = settings.is_live
    for field in ("return_url", "cancel_url"):
        value = getattr(settings, field)
        if value is not None:
            http_url(field, value, https_only=live)
    for origin in settings.cors_origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname
                              or parts.path not in ("", "/") or parts.query):
            raise ValueError(f"PAYWIRE_CORS_ORIGINS: {origin!r} is not an origin "
                             "(scheme://host[:port])")
    for i, key in enumerate(settings.api_keys, start=1):
        if len(key.get_secret_value()) < MIN_API_KEY_CHARS:
            raise ValueError(f"PAYWIRE_API_KEYS: key #{i} is shorter than "
                             f"{MIN_API_KEY_CHARS} characters")
    if settings.catalog_path is None:
        if not settings.is_emulated and purpose.needs_catalog:
            raise ValueError("PAYWIRE_CATALOG_PATH must be set (the demo catalog is for the "
                             "emulator only)")
        return
    path = settings.catalog_path
    if path.suffix.lower() not in (".toml", ".json"):
        raise ValueError(f"PAYWIRE_CATALOG_PATH: {path} must be a .toml or .json file")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ValueError(f"PAYWIRE_CATALOG_PATH: cannot read {path} "
                         f"({exc.strerror or type(exc).__name__})") from None


def valid_password_hash(encoded: str) -> bool:
    """Whether `encoded` reads as a hash `paywire admin hash-password` writes:
    `scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`, n a power of two above 1, r and p positive."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(v) for v in parts[1:4])
        salt, digest = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return False
    return n > 1 and n & (n - 1) == 0 and r > 0 and p > 0 and bool(salt) and bool(digest)


def check_admin(settings: SettingsFields) -> None:
    """A dashboard password hash reads as one, and the dashboard's sessions are signed with a
    secret: password sign-in needs `admin_session_secret` (with API keys alone, a key is
    derived from them by HMAC), and a secret set is long enough. `paywire dev` sets a random
    one per process."""
    if settings.admin_password_hash is not None and not valid_password_hash(
            settings.admin_password_hash.get_secret_value()):
        raise ValueError("PAYWIRE_ADMIN_PASSWORD_HASH is not a password hash `paywire admin "
                         "hash-password` prints (scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>)")
    secret = (settings.admin_session_secret.get_secret_value()
              if settings.admin_session_secret is not None else "")
    if secret and len(secret) < MIN_SESSION_SECRET_CHARS:
        raise ValueError(f"PAYWIRE_ADMIN_SESSION_SECRET is shorter than "
                         f"{MIN_SESSION_SECRET_CHARS} characters")
    if settings.admin_enabled and settings.admin_password_hash is not None and not secret:
        raise ValueError("PAYWIRE_ADMIN_PASSWORD_HASH (password sign-in to the dashboard) "
                         "needs PAYWIRE_ADMIN_SESSION_SECRET: at least "
                         f"{MIN_SESSION_SECRET_CHARS} random characters that sign its sessions "
                         "(python -c 'import secrets; print(secrets.token_urlsafe(32))'), the "
                         "same on every instance")


def check_metrics(settings: SettingsFields) -> None:
    """`/metrics` on the API's own port is never open to all: `app` needs its token (long
    enough to resist guessing), and the separate port must differ from the API's."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if settings.metrics == "app" and not token:
        raise ValueError("PAYWIRE_METRICS=app needs PAYWIRE_METRICS_TOKEN (scrapers send "
                         "Authorization: Bearer <token>), or use PAYWIRE_METRICS=port")
    if token and len(token) < MIN_API_KEY_CHARS:
        raise ValueError(f"PAYWIRE_METRICS_TOKEN is shorter than {MIN_API_KEY_CHARS} "
                         "characters")
    if settings.metrics == "port" and settings.metrics_port == settings.port:
        raise ValueError("PAYWIRE_METRICS_PORT must differ from PAYWIRE_PORT")


def check_timing(settings: SettingsFields) -> None:
    """Each lease and deadline covers what it must (a reserve within its budget)."""
    if settings.request_deadline_reserve_seconds >= settings.request_budget_seconds:
        raise ValueError("PAYWIRE_REQUEST_DEADLINE_RESERVE_SECONDS must be less than "
                         "PAYWIRE_REQUEST_BUDGET_SECONDS (the reserve is kept back from it)")
    if settings.operation_lease_seconds < settings.paypal.timeout_seconds:
        raise ValueError("PAYWIRE_OPERATION_LEASE_SECONDS must be at least "
                         "PAYWIRE_PAYPAL_TIMEOUT_SECONDS (a live call must keep its lease)")


def check_webhooks(settings: SettingsFields, purpose: Purpose) -> None:
    """A webhook can be verified: an id, PayPal's cert hosts and a trust that fits."""
    env = settings.paypal.env
    settings.paypal.check_webhook_ids(offered="paypal" in settings.providers, purpose=purpose)
    for field in ("webhook_cert_hosts", "webhook_cert_http_hosts"):
        for host in getattr(settings, field):
            if not HOST_PORT.fullmatch(host):
                raise ValueError(f"{env_name(field)}: {host!r} is not a host or host:port "
                                 "(no scheme, no path)")
    if settings.webhook_cert_http_hosts and env != "emulator":
        raise ValueError("PAYWIRE_WEBHOOK_CERT_HTTP_HOSTS is for the emulator only: PayPal "
                         "serves certificates over https (PAYWIRE_PAYPAL_ENV is "
                         f"{env})")
    if settings.webhook_max_age_seconds < PAYPAL_RETRY_HORIZON_SECONDS:
        raise ValueError("PAYWIRE_WEBHOOK_MAX_AGE_SECONDS must be at least 259200 (PayPal "
                         "retries a delivery for 3 days)")
    if settings.webhook_cert_trust == "fetched" and settings.webhook_ca_bundle is not None:
        raise ValueError("PAYWIRE_WEBHOOK_CA_BUNDLE is read only with "
                         "PAYWIRE_WEBHOOK_CERT_TRUST=bundle: unset one of them")
    if settings.webhook_cert_trust == "fetched" and env == "emulator":
        raise ValueError("PAYWIRE_WEBHOOK_CERT_TRUST=fetched is for sandbox and live: the "
                         "emulator's certificate is trusted through its CA (bundle)")
    if settings.cert_trust == "fetched":
        foreign = [h for h in settings.webhook_cert_hosts
                   if not (h.lower().partition(":")[0] == "paypal.com"
                           or h.lower().partition(":")[0].endswith(".paypal.com"))]
        if foreign:
            raise ValueError(f"PAYWIRE_WEBHOOK_CERT_HOSTS: {', '.join(foreign)} is not a "
                             "PayPal host; PAYWIRE_WEBHOOK_CERT_TRUST=fetched trusts a "
                             "certificate for where it was fetched from, so only "
                             "*.paypal.com hosts may serve it (use bundle trust otherwise)")
    if settings.webhook_cert_trust == "bundle" and env != "emulator" and (
            settings.webhook_ca_bundle is None):
        raise ValueError("PAYWIRE_WEBHOOK_CERT_TRUST=bundle needs PAYWIRE_WEBHOOK_CA_BUNDLE "
                         "(PEM: PayPal's root and intermediate, since PayPal serves the "
                         "signing certificate alone), or leave it unset for fetched trust")
    if settings.webhook_ca_bundle is not None:
        try:
            with settings.webhook_ca_bundle.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ValueError(f"PAYWIRE_WEBHOOK_CA_BUNDLE: cannot read "
                             f"{settings.webhook_ca_bundle} "
                             f"({exc.strerror or type(exc).__name__})") from None
    if settings.truth_fetch_max_delay_seconds < settings.truth_fetch_base_delay_seconds:
        raise ValueError("PAYWIRE_TRUTH_FETCH_MAX_DELAY_SECONDS must be at least "
                         "PAYWIRE_TRUTH_FETCH_BASE_DELAY_SECONDS")
    if settings.truth_fetch_lease_seconds < settings.paypal.timeout_seconds:
        raise ValueError("PAYWIRE_TRUTH_FETCH_LEASE_SECONDS must be at least "
                         "PAYWIRE_PAYPAL_TIMEOUT_SECONDS (a fetch must keep its lease)")
