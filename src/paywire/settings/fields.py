"""The settings' fields: each `PAYWIRE_<FIELD>`, how its value is read, and what it resolves to.

Only what one field says on its own is checked here (a range, a blank taken as unset, a list
given as "a,b"); what fields say together is `paywire.settings.checks`, run by `Settings` once
all are read. The resolved values (the certificate trust, the store, ...) live here too, as the
checks reason about them as well.

Each provider's settings are a section (`paypal`, `aps`: `paywire.settings.provider`) whose
variables keep the flat names: `PAYWIRE_PAYPAL_CLIENT_ID` is `settings.paypal.client_id`, split
once after the section's name (`env_nested_max_split=1`), so `PAYWIRE_DATA_DIR` or
`PAYWIRE_OUTBOX_MAX_AGE_SECONDS` stay the top-level fields they name. A setting's *name* is its
variable without `PAYWIRE_`, lower case (`paypal_client_id`): overrides, CLI flags, SSM
parameters and a stage's secrets name settings so, and `setting_paths` says where each lives.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from paywire.settings.aps import ApsSettings
from paywire.settings.paypal import PayPalSettings
from paywire.settings.provider import ProviderSettings, blank_is_unset, csv_items
from paywire.settings.stage import app_secret_name, paypal_secret_name, stage_name
from paywire.settings.urls import DYNAMODB_SCHEME, PAYPAL_CERT_HOSTS, PayPalEnv, dynamodb_table

# A provider's name in PAYWIRE_PROVIDERS: each names a provider kit (`paywire.bootstrap.kits`),
# which the composition root looks up (an unknown name fails there, listing the known kits).
ProviderName = str
_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
DEMO_CATALOG = Path(__file__).parent.parent / "web" / "catalog.toml"


@functools.cache
def provider_sections(cls: type[BaseSettings]) -> frozenset[str]:
    """The fields of `cls` that are a provider's section (`paypal`, `aps`)."""
    return frozenset(name for name, field in cls.model_fields.items()
                     if isinstance(field.annotation, type)
                     and issubclass(field.annotation, ProviderSettings))


@functools.cache
def setting_paths(cls: type[BaseSettings]) -> dict[str, tuple[str, ...]]:
    """Every setting of `cls` by name (its variable without `PAYWIRE_`, lower case), with
    where it lives: `("data_dir",)`, `("paypal", "client_id")`. A section's field named like a
    top-level one would make two settings of one variable: refused."""
    paths: dict[str, tuple[str, ...]] = {}
    for top, info in cls.model_fields.items():
        section = info.annotation
        named: dict[str, tuple[str, ...]]
        if isinstance(section, type) and issubclass(section, ProviderSettings):
            named = {f"{top}_{field}": (top, field) for field in section.model_fields}
        else:
            named = {top: (top,)}
        for name, path in named.items():
            if name in paths:
                raise TypeError(f"{cls.__name__}: two settings named {name}")
            paths[name] = path
    return paths


class SettingsFields(BaseSettings):
    """Every field `Settings` reads, each checked on its own; `Settings` adds the checks across
    fields (kept apart so that those checks can be typed against the fields without an import
    loop)."""

    model_config = SettingsConfigDict(env_prefix="PAYWIRE_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore",
                                      hide_input_in_errors=True, validate_default=True,
                                      env_nested_delimiter="_", env_nested_max_split=1)

    # the stage (AWS): its secrets are read by `paywire.aws.secrets.stage_settings()`
    stage: str | None = None
    # The environment the stage's PayPal secret records; set from the secret, never by hand.
    stage_environment: PayPalEnv | None = None
    # Secret ids when not `paywire/<stage>/paypal` and `paywire/<stage>/app`.
    paypal_secret_id: str | None = None
    app_secret_id: str | None = None
    # Ask PayPal for a token at a stage's start-up (a refused one fails it, explained).
    startup_credentials_check: bool = True

    # storage
    data_dir: Path = Path(".paywire")
    # Default: an embedded SQLite file in `data_dir`. Kept out of reprs (it may hold a password).
    database_url: str = Field(default="", repr=False)

    # PayPal (`PAYWIRE_PAYPAL_*`: `paywire.settings.paypal`)
    paypal: PayPalSettings = Field(default_factory=PayPalSettings)

    # The payment providers this shop offers; the first is the default for new orders.
    providers: Annotated[list[ProviderName], NoDecode] = Field(
        default_factory=lambda: list[ProviderName](["paypal"]), min_length=1)

    # Amazon Payment Services (`PAYWIRE_APS_*`: `paywire.settings.aps`), when "aps" is in
    # `providers`. On a stage its environment is the stage's, never chosen apart
    # (`paywire.settings.checks.check_stage`).
    aps: ApsSettings = Field(default_factory=ApsSettings)

    # the shop
    catalog_path: Path | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Admin and trusted server-to-server callers: `Authorization: Bearer <key>`.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    # The operator's dashboard at /admin (`paywire.admin`): signed in with an API key, or with
    # the password whose hash `paywire admin hash-password` prints (scrypt, never the
    # password itself). Its session cookie is signed with `admin_session_secret` (at least 32
    # characters; required with the password); with API keys alone and no secret, with a key
    # derived from the keys by HMAC (so every instance of a deployment agrees, and rotating
    # them ends every session).
    admin_enabled: bool = True
    admin_user: str = Field(default="admin", min_length=1, max_length=64)
    admin_password_hash: SecretStr | None = Field(default=None, repr=False)
    admin_session_secret: SecretStr | None = Field(default=None, repr=False)
    admin_session_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 86400)
    # Failed sign-ins allowed per client address in `admin_login_window_seconds` (then 429).
    admin_login_attempts: int = Field(default=5, ge=1, le=1000)
    admin_login_window_seconds: int = Field(default=300, ge=1, le=86400)

    # Log lines (`paywire.logs`): one JSON object per line, or text for a person. Unset: JSON
    # for `serve`, `worker` and `reconcile`, text for `dev` and the operator commands.
    log_format: Literal["json", "text"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # the HTTP API
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    # Whether the app serves its OpenAPI document (/openapi.json) and Swagger page (/docs); the
    # AWS template turns both off on a live stage (they map the whole admin API for a prober).
    api_docs: bool = True
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    # How long one API request may hold an Idempotency-Key before a retry may take it over
    # (never longer than the request's deadline plus a little grace).
    request_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    # Prometheus metrics (docs/metrics.md) of `paywire serve`: `off`; `app` (GET /metrics on the
    # API's port, behind `Authorization: Bearer <metrics_token>`, which app needs); or `port`
    # (GET /metrics alone on metrics_host:metrics_port, for a scraper on a private network; the
    # token, if set, is asked there too). Never on Lambda, which publishes EMF instead.
    metrics: Literal["off", "app", "port"] = "off"
    metrics_token: SecretStr | None = Field(default=None, repr=False)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=1, le=65535)
    # How long the gauges read from the store (backlog, dead, stuck, ...) are reused between
    # scrapes, so a scrape storm costs the database one set of counts per period.
    metrics_gauge_cache_seconds: float = Field(default=5.0, ge=0, le=300)

    # How long one API request may take, provider calls and all (under Lambda, also at most the
    # invocation's remaining time); `request_deadline_reserve_seconds` of it is kept back to
    # settle the request and answer, so a slow provider ends in paywire's own 503 with
    # Retry-After, before a proxy or API Gateway (30 s) gives up on the request.
    request_budget_seconds: float = Field(default=25.0, gt=0, le=3600)
    request_deadline_reserve_seconds: float = Field(default=2.0, ge=0, le=60)
    # How long a caller holds a provider operation before another may retry it (a crash).
    operation_lease_seconds: float = Field(default=120.0, gt=0, le=3600)

    # webhooks: what `POST /webhooks/paypal` accepts and how it checks signatures (its webhook
    # ids are PayPal's: `PAYWIRE_PAYPAL_WEBHOOK_ID`, `PAYWIRE_PAYPAL_OTHER_WEBHOOK_IDS`)
    webhook_verification: Literal["local", "postback"] = "local"
    # Hosts (host or host:port) a `PAYPAL-CERT-URL` may name, over https; `_http_hosts` over
    # plain http (emulator mode only; the emulator's own host:port is added there anyway).
    webhook_cert_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(PAYPAL_CERT_HOSTS))
    webhook_cert_http_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # What makes the signing certificate trusted (docs/webhook-trust.md): `fetched` (default for
    # sandbox/live) -- it came over verified https from an allowlisted PayPal host and names
    # PayPal's message-verification service; `bundle` -- it chains to the CA certificates in
    # PAYWIRE_WEBHOOK_CA_BUNDLE (the default when that is set, and in emulator mode, where the
    # emulator's CA is fetched at start-up unless a bundle is set). Unset: chosen as said.
    webhook_cert_trust: Literal["fetched", "bundle"] | None = None
    # PEM trust anchors for the signing certificate's chain (PAYWIRE_WEBHOOK_CERT_TRUST=bundle).
    webhook_ca_bundle: Path | None = None
    # Confirm a PayPal event's claim with PayPal's API right after answering the delivery, in
    # this process; off, the truth fetcher (or `paywire reconcile`) confirms it from the queue.
    webhook_confirm_inline: bool = True
    # How long that in-process confirmation may take before the queue is left to finish it
    # (it runs after the answer is sent, but a Lambda function's answer waits for it).
    webhook_confirm_inline_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=10 * 1024 * 1024)
    # Transmissions older than this are refused; at least PayPal's 3-day retry horizon.
    webhook_max_age_seconds: float = Field(default=4 * 86400.0, le=90 * 86400)
    webhook_cert_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_cert_max_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    webhook_cert_cache_seconds: float = Field(default=24 * 3600.0, ge=0, le=30 * 86400)
    # The rejection log keeps this many rows (oldest go first).
    max_rejections: int = Field(default=10_000, ge=1, le=10_000_000)

    # truth fetch: queued "ask PayPal" tasks, worked off the request path
    # Run the fetcher inside `paywire serve`/`dev` (off: only `paywire reconcile --truth-queue`).
    truth_fetch_enabled: bool = True
    truth_fetch_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    # How long a claimed task is ours before another worker may take it (covers a provider call).
    truth_fetch_lease_seconds: float = Field(default=120.0, gt=0, le=3600)
    truth_fetch_base_delay_seconds: float = Field(default=10.0, ge=0, le=3600)
    truth_fetch_max_delay_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    truth_fetch_max_attempts: int = Field(default=12, ge=1, le=100)
    truth_fetch_batch: int = Field(default=20, ge=1, le=500)

    # fulfilment: announcements delivered to the shop (at least once, one message id per fact)
    # The shop's Standard Webhooks endpoint, and its `whsec_` signing secret.
    fulfilment_url: str | None = None
    fulfilment_secret: SecretStr | None = Field(default=None, repr=False)
    fulfilment_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # `package.module:function`, called with (message_id, type, payload); beside or instead of
    # the URL.
    fulfilment_callable: str | None = None
    # Run the outbox worker inside `paywire serve` (`--worker`; `paywire dev` always does).
    outbox_worker_enabled: bool = False
    outbox_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    # A claimed message is ours this long (must cover a delivery's timeout).
    outbox_lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    outbox_batch: int = Field(default=50, ge=1, le=1000)
    outbox_concurrency: int = Field(default=10, ge=1, le=200)
    outbox_base_delay_seconds: float = Field(default=5.0, ge=0, le=3600)
    outbox_max_delay_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    # A message still failing after this long goes dead (an ERROR log line; `outbox retry`).
    outbox_max_age_seconds: float = Field(default=3 * 86400.0, gt=0, le=90 * 86400)

    # reconciliation: ask PayPal about orders whose webhooks never came (also `paywire reconcile`)
    # Run it inside the serving process beside the truth fetcher.
    reconcile_enabled: bool = True
    reconcile_interval_seconds: float = Field(default=60.0, gt=0, le=86400)
    reconcile_batch: int = Field(default=100, ge=1, le=10_000)
    # An order is first checked once it has sat this long in its state.
    reconcile_created_after_seconds: float = Field(default=30 * 60.0, ge=0, le=30 * 86400)
    reconcile_approved_after_seconds: float = Field(default=10 * 60.0, ge=0, le=30 * 86400)
    reconcile_pending_after_seconds: float = Field(default=3600.0, ge=0, le=30 * 86400)
    reconcile_authorized_after_seconds: float = Field(default=86400.0, ge=0, le=30 * 86400)
    # ... and flagged needs-attention once it has sat this long (CREATED: unset = the approval
    # window plus an hour). Never by how many checks it took.
    reconcile_created_max_age_seconds: float | None = Field(default=None, gt=0, le=90 * 86400)
    reconcile_approved_max_age_seconds: float = Field(default=86400.0, gt=0, le=90 * 86400)
    reconcile_pending_max_age_seconds: float = Field(default=7 * 86400.0, gt=0, le=90 * 86400)
    reconcile_authorized_max_age_seconds: float = Field(default=29 * 86400.0, gt=0,
                                                        le=90 * 86400)
    # Checks of one order back off from this seed, doubling, up to the cap (then every cap).
    reconcile_backoff_base_seconds: float = Field(default=5.0, gt=0, le=86400)
    reconcile_backoff_max_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)
    reconcile_refund_pending_after_seconds: float = Field(default=3600.0, ge=0, le=30 * 86400)

    @classmethod
    def setting_paths(cls) -> dict[str, tuple[str, ...]]:
        """Every setting by name (its variable without `PAYWIRE_`, lower case) with where it
        lives: `{"data_dir": ("data_dir",), "paypal_client_id": ("paypal", "client_id"), ...}`."""
        return setting_paths(cls)

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, data: Any) -> Any:
        """Overrides named as their settings (`paypal_client_id=...`: the variable without
        PAYWIRE_, as the CLI, SSM parameters and a stage's secrets name them) moved into their
        provider's section, over what the environment put there: an override wins, as for any
        setting. Only overrides can be named so: the environment's `PAYWIRE_PAYPAL_*` arrive
        as the section already."""
        if not isinstance(data, dict):
            return data
        paths = setting_paths(cls)
        flat = [key for key in data
                if key not in cls.model_fields and len(paths.get(key, ())) == 2]
        if not flat:
            return data
        data = dict(data)
        for key in flat:
            section, field = paths[key]
            current = data.get(section)
            if isinstance(current, ProviderSettings):
                current = current.model_dump(exclude_unset=True)
            nested = dict(current) if isinstance(current, dict) else {}
            nested[field] = data.pop(key)
            data[section] = nested
        return data

    @field_validator("return_url", "cancel_url", "catalog_path", "webhook_ca_bundle",
                     "webhook_cert_trust", "paypal_secret_id", "app_secret_id", "log_format",
                     mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return blank_is_unset(value)

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @field_validator("stage", mode="before")
    @classmethod
    def _stage(cls, value: Any) -> Any:
        return stage_name(value) if isinstance(value, str) else value

    @field_validator("cors_origins", "api_keys", "webhook_cert_hosts", "providers",
                     "webhook_cert_http_hosts", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        return csv_items(value)

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _PROVIDER_NAME.fullmatch(name):
                raise ValueError(f"PAYWIRE_PROVIDERS: {name!r} is not a provider name (lower-case "
                                 "letters, digits and `_`, as paypal or aps)")
        return value

    # --- resolved values ------------------------------------------------------------------

    @property
    def provider_settings(self) -> dict[str, ProviderSettings]:
        """The section of each provider this shop offers that has one here, by name (a
        plug-in's kit reads its own settings)."""
        sections = provider_sections(type(self))
        return {name: getattr(self, name) for name in self.providers if name in sections}

    @property
    def is_live(self) -> bool:
        """Whether any provider this shop offers takes real money."""
        return any(section.is_live for section in self.provider_settings.values())

    @property
    def is_emulated(self) -> bool:
        """Whether every provider this shop offers is an emulator."""
        return all(section.is_emulated for section in self.provider_settings.values())

    @property
    def cert_hosts(self) -> tuple[list[str], list[str]]:
        """(https hosts, http hosts) a webhook's `PAYPAL-CERT-URL` may name.

        In emulator mode the emulator's own host:port is added, over the scheme it serves.
        """
        https_hosts = [h.lower() for h in self.webhook_cert_hosts]
        http_hosts = [h.lower() for h in self.webhook_cert_http_hosts]
        if self.paypal.is_emulated:
            parts = urlsplit(self.paypal.url)
            (http_hosts if parts.scheme == "http" else https_hosts).append(parts.netloc.lower())
        return https_hosts, http_hosts

    @property
    def cert_trust(self) -> Literal["fetched", "bundle"]:
        """The trust model for webhook signing certificates: as set, else `bundle` with a CA
        bundle or in emulator mode, else `fetched`."""
        if self.webhook_cert_trust is not None:
            return self.webhook_cert_trust
        if self.webhook_ca_bundle is not None or self.paypal.is_emulated:
            return "bundle"
        return "fetched"

    @property
    def catalog_file(self) -> Path:
        """The catalog to load: the configured one, else the bundled demo catalog."""
        return self.catalog_path or DEMO_CATALOG

    @property
    def paypal_secret_name(self) -> str | None:
        """The stage's PayPal secret id (None without a stage)."""
        return None if self.stage is None else paypal_secret_name(self.stage,
                                                                  self.paypal_secret_id)

    @property
    def app_secret_name(self) -> str | None:
        """The stage's app secret id (None without a stage)."""
        return None if self.stage is None else app_secret_name(self.stage, self.app_secret_id)

    @property
    def is_dynamodb(self) -> bool:
        """True when the store is a DynamoDB table (`dynamodb://<table>`)."""
        return self.database_url.startswith(DYNAMODB_SCHEME)

    @property
    def dynamodb_table(self) -> str | None:
        """The DynamoDB table of the store (None for SQL stores)."""
        return dynamodb_table(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        """True when the store is an embedded SQLite file (migrated automatically)."""
        return self.database_url.startswith("sqlite")

    @property
    def database_url_redacted(self) -> str:
        """The database URL with any password masked, for logs and messages."""
        parts = urlsplit(self.database_url)
        if parts.password is None:
            return self.database_url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()
