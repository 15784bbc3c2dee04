"""The checks across settings: what the fields say together, run once all are read.

Each check refuses a combination that cannot work or would be unsafe -- live credentials sent
to a sandbox or emulator host, a live stage taking APS test cards, a webhook nobody can verify,
a lease shorter than the call it covers -- with a ValueError naming the variables to change
(`paywire.settings.errors` turns it into the ConfigError start-up reports). The commands that
need less (`paywire.settings.context`) are let through without what they never use.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from paywire.settings.context import outbox_only, webhook_setup
from paywire.settings.errors import env_name
from paywire.settings.fields import SettingsFields
from paywire.settings.urls import APS_URLS, HOST_PORT, LOOPBACK, dynamodb_table, http_url

APS_SECRETS = ("aps_access_code", "aps_request_phrase", "aps_response_phrase")
MIN_API_KEY_CHARS = 16
# PayPal retries a delivery for 3 days; refusing younger transmissions would refuse retries.
PAYPAL_RETRY_HORIZON_SECONDS = 3 * 86400


def check_all(settings: SettingsFields) -> None:
    """Every check, in order; the default SQLite store filled in when no URL is set."""
    check_stage(settings)
    check_paypal(settings)
    check_shop(settings)
    check_timing(settings)
    check_webhooks(settings)
    check_aps(settings)
    if not settings.database_url:
        settings.database_url = f"sqlite+aiosqlite:///{settings.data_dir / 'paywire.db'}"
    elif dynamodb_table(settings.database_url) is None and not settings.is_sqlite and (
            not settings.database_url.startswith("postgresql")):
        raise ValueError("PAYWIRE_DATABASE_URL must be a sqlite+aiosqlite://, "
                         "postgresql+psycopg:// or dynamodb://<table> URL")


def check_aps(settings: SettingsFields) -> None:
    """A provider named once; APS's secrets and URLs when it is offered (https on live)."""
    if len(set(settings.providers)) != len(settings.providers):
        raise ValueError("PAYWIRE_PROVIDERS names a provider twice")
    if "aps" not in settings.providers:
        return
    missing = [env_name(f) for f in (*APS_SECRETS, "aps_merchant_identifier",
                                      "aps_return_url") if getattr(settings, f) is None]
    if missing and not outbox_only.get():
        raise ValueError(f"PAYWIRE_PROVIDERS includes aps, so {', '.join(missing)} must be "
                         "set (`paywire emulator` prints the APS credentials it accepts)")
    live = settings.aps_env == "live"
    for name in ("aps_api_url", "aps_page_url", "aps_return_url"):
        value = getattr(settings, name)
        if value is not None:
            http_url(name, value, https_only=live and name != "aps_return_url")
    if settings.stage is not None and settings.aps_env in APS_URLS:
        check_stage_aps_hosts(settings)
    if settings.aps_env == "emulator" and settings.aps_api_url is None and (
            settings.paypal_env != "emulator"):
        raise ValueError("PAYWIRE_APS_ENV=emulator needs PAYWIRE_APS_API_URL and "
                         "PAYWIRE_APS_PAGE_URL when PayPal is not on the emulator")


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
    if settings.paypal_env != settings.stage_environment:
        raise ValueError(f"the stage secret {settings.paypal_secret_name} records environment "
                         f"{settings.stage_environment} but PAYWIRE_PAYPAL_ENV is "
                         f"{settings.paypal_env}: make them agree (or unset PAYWIRE_PAYPAL_ENV "
                         "and let the stage choose)")
    # APS's environment is the stage's: a live stage must not take APS test cards (nor a
    # sandbox stage real ones). Unset, it follows; set, it must agree.
    if "aps_env" not in settings.model_fields_set:
        settings.aps_env = settings.stage_environment
    elif settings.aps_env != settings.stage_environment:
        raise ValueError(f"the stage secret {settings.paypal_secret_name} records environment "
                         f"{settings.stage_environment} but PAYWIRE_APS_ENV is {settings.aps_env}: "
                         "a stage's APS environment is its PayPal environment (unset "
                         "PAYWIRE_APS_ENV and let the stage choose)")


def check_stage_aps_hosts(settings: SettingsFields) -> None:
    """A live stage sends cards to APS's live hosts only, over https; a sandbox stage
    never to them (`aps_api_url`/`aps_page_url` may move APS's URLs, not its environment)."""
    api, page = settings.aps_urls
    for name, url, live_url in (("aps_api_url", api, APS_URLS["live"][0]),
                                ("aps_page_url", page, APS_URLS["live"][1])):
        parts, live_host = urlsplit(url), urlsplit(live_url).hostname
        on_live = parts.hostname == live_host
        if settings.aps_env == "live" and (parts.scheme != "https" or not on_live):
            raise ValueError(f"{env_name(name)} is not APS's live host over https "
                             f"(https://{live_host}) and the stage {settings.stage} is live: "
                             f"unset {env_name(name)} (the stage's environment chooses "
                             "APS's hosts)")
        if settings.aps_env == "sandbox" and on_live:
            raise ValueError(f"{env_name(name)} is APS's live host {live_host} and the "
                             f"stage {settings.stage} is a sandbox stage: unset "
                             f"{env_name(name)} (the stage's environment chooses APS's "
                             "hosts)")


def check_paypal(settings: SettingsFields) -> None:
    """PayPal's URL matches its environment; sandbox and live need credentials."""
    env = settings.paypal_env
    if settings.paypal_base_url is not None:
        http_url("paypal_base_url", settings.paypal_base_url, https_only=env == "live")
        host = (urlsplit(settings.paypal_base_url).hostname or "").lower()
        if env == "live" and ("sandbox" in host or host in LOOPBACK):
            raise ValueError("PAYWIRE_PAYPAL_BASE_URL points at a sandbox or emulator while "
                             "PAYWIRE_PAYPAL_ENV=live: live credentials would be sent there")
        if env == "sandbox" and host == "api-m.paypal.com":
            raise ValueError("PAYWIRE_PAYPAL_BASE_URL is PayPal's live API while "
                             "PAYWIRE_PAYPAL_ENV=sandbox: set PAYWIRE_PAYPAL_ENV=live")
    if env in ("sandbox", "live") and "paypal" in settings.providers and not outbox_only.get():
        missing = [env_name(f) for f in ("paypal_client_id", "paypal_client_secret")
                   if getattr(settings, f) is None]
        if missing:
            raise ValueError(f"{' and '.join(missing)} must be set for "
                             f"PAYWIRE_PAYPAL_ENV={env}")


def check_shop(settings: SettingsFields) -> None:
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
        if not settings.is_emulated and not (webhook_setup.get() or outbox_only.get()):
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


def check_timing(settings: SettingsFields) -> None:
    """Each lease and deadline covers what it must (a reserve within its budget)."""
    if settings.request_deadline_reserve_seconds >= settings.request_budget_seconds:
        raise ValueError("PAYWIRE_REQUEST_DEADLINE_RESERVE_SECONDS must be less than "
                         "PAYWIRE_REQUEST_BUDGET_SECONDS (the reserve is kept back from it)")
    if settings.operation_lease_seconds < settings.paypal_timeout_seconds:
        raise ValueError("PAYWIRE_OPERATION_LEASE_SECONDS must be at least "
                         "PAYWIRE_PAYPAL_TIMEOUT_SECONDS (a live call must keep its lease)")


def check_webhooks(settings: SettingsFields) -> None:
    """A webhook can be verified: an id, PayPal's cert hosts and a trust that fits."""
    env = settings.paypal_env
    if env in ("sandbox", "live") and settings.paypal_webhook_id is None and (
            "paypal" in settings.providers) and not (webhook_setup.get() or outbox_only.get()):
        raise ValueError(f"PAYWIRE_PAYPAL_WEBHOOK_ID must be set for PAYWIRE_PAYPAL_ENV={env} "
                         "(the id PayPal shows for the webhook subscription)")
    if settings.paypal_webhook_id is not None and (
            settings.paypal_webhook_id in settings.paypal_other_webhook_ids):
        raise ValueError("PAYWIRE_PAYPAL_OTHER_WEBHOOK_IDS must not list "
                         "PAYWIRE_PAYPAL_WEBHOOK_ID (ours is accepted, the others never)")
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
    if settings.truth_fetch_lease_seconds < settings.paypal_timeout_seconds:
        raise ValueError("PAYWIRE_TRUTH_FETCH_LEASE_SECONDS must be at least "
                         "PAYWIRE_PAYPAL_TIMEOUT_SECONDS (a fetch must keep its lease)")
