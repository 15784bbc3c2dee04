"""paywire's one settings object: `PAYWIRE_*` environment variables (and `.env`), checked once.

Every field maps to `PAYWIRE_<FIELD>`; CLI flags map onto the same fields. `Settings.load()` is
the start-up entry point: anything that cannot work raises `ConfigError` naming the setting, and
no secret (client secret, API keys, a database password) ever appears in a repr, str or error.

A *stage* (`PAYWIRE_STAGE`, e.g. `prod`) is a deployment whose secrets live in AWS Secrets
Manager: `paywire.aws.secrets.stage_settings()` reads them (`StageSource` says where from) and
builds `Settings` with them. The stage's PayPal secret records its environment, which selects
PayPal's host; `PAYWIRE_PAYPAL_ENV`, if set too, must agree. APS's environment is the stage's
too: `aps_env` follows it (a sandbox stage takes APS test cards, a live stage real ones), one
set otherwise (`PAYWIRE_APS_ENV`, an SSM parameter, an override) fails naming both, and a live
stage's APS URLs are APS's live hosts over https. A stage's settings cannot be loaded from the
environment alone (`Settings.load()` refuses `PAYWIRE_STAGE` without them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from paywire.settings.context import outbox_only, webhook_setup
from paywire.settings.errors import SettingsT, env_name, load_validated
from paywire.settings.stage import (
    StageSource,
    app_secret_name,
    paypal_secret_name,
    ssm_path,
    stage_name,
)
from paywire.settings.urls import (
    APS_URLS,
    DYNAMODB_SCHEME,
    DYNAMODB_URL_OPTIONS,
    EMULATOR_CA_PATH,
    HOST_PORT,
    LOOPBACK,
    PAYPAL_BASE_URLS,
    PAYPAL_CERT_HOSTS,
    PayPalEnv,
    dynamodb_table,
    http_url,
)

__all__ = [
    "APS_SECRETS",
    "APS_URLS",
    "DEMO_CATALOG",
    "DYNAMODB_SCHEME",
    "DYNAMODB_URL_OPTIONS",
    "EMULATOR_CA_PATH",
    "MIN_API_KEY_CHARS",
    "PAYPAL_BASE_URLS",
    "PAYPAL_CERT_HOSTS",
    "PAYPAL_RETRY_HORIZON_SECONDS",
    "PayPalEnv",
    "ProviderName",
    "Settings",
    "SettingsT",
    "StageSource",
    "app_secret_name",
    "dynamodb_table",
    "env_name",
    "load_validated",
    "outbox_only",
    "paypal_secret_name",
    "ssm_path",
    "webhook_setup",
]

# A provider's name in PAYWIRE_PROVIDERS: each names a provider kit (`paywire.bootstrap.kits`),
# which the composition root looks up (an unknown name fails there, listing the known kits).
ProviderName = str
_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
APS_SECRETS = ("aps_access_code", "aps_request_phrase", "aps_response_phrase")
DEMO_CATALOG = Path(__file__).parent.parent / "web" / "catalog.toml"
MIN_API_KEY_CHARS = 16
# PayPal retries a delivery for 3 days; refusing younger transmissions would refuse retries.
PAYPAL_RETRY_HORIZON_SECONDS = 3 * 86400


def _csv(value: Any) -> Any:
    """Accept "a,b" (an env var) as well as a list; blanks dropped."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value



class Settings(BaseSettings):
    """Everything paywire reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="PAYWIRE_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore",
                                      hide_input_in_errors=True, validate_default=True)

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

    # PayPal
    paypal_env: PayPalEnv = "emulator"
    paypal_base_url: str | None = None
    paypal_client_id: str | None = None
    paypal_client_secret: SecretStr | None = None
    paypal_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    paypal_max_retries: int = Field(default=3, ge=0, le=10)
    paypal_retry_backoff_seconds: float = Field(default=0.5, ge=0, le=60)

    # The payment providers this shop offers; the first is the default for new orders.
    providers: Annotated[list[ProviderName], NoDecode] = Field(
        default_factory=lambda: list[ProviderName](["paypal"]), min_length=1)

    # Amazon Payment Services (when "aps" is in `providers`). In emulator mode the URLs
    # default to the APS emulator inside `paywire emulator` (`<PayPal emulator URL>/aps/...`).
    # On a stage it is the stage's environment (sandbox: APS's test environment), never chosen
    # apart (`_check_stage`).
    aps_env: PayPalEnv = "emulator"
    aps_api_url: str | None = None
    aps_page_url: str | None = None
    aps_access_code: SecretStr | None = None
    aps_merchant_identifier: str | None = None
    aps_request_phrase: SecretStr | None = None
    aps_response_phrase: SecretStr | None = None
    aps_sha_type: str = "SHA-256"  # checked where the signer is made (bootstrap)
    aps_language: Literal["en", "ar"] = "en"
    # Where APS sends the buyer back: paywire's `/v1/aps/return` as the browser reaches it.
    aps_return_url: str | None = None
    aps_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # "hosted": the buyer pays on APS's payment page; "tokenization": APS's tokenization form
    # makes a token of the card, and paywire pays with it server to server (3-D Secure then
    # sends the buyer to APS's 3ds_url).
    aps_checkout: Literal["hosted", "tokenization"] = "hosted"

    # the shop
    catalog_path: Path | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Admin and trusted server-to-server callers: `Authorization: Bearer <key>`.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

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
    # How long one API request may take, provider calls and all (under Lambda, also at most the
    # invocation's remaining time); `request_deadline_reserve_seconds` of it is kept back to
    # settle the request and answer, so a slow provider ends in paywire's own 503 with
    # Retry-After, before a proxy or API Gateway (30 s) gives up on the request.
    request_budget_seconds: float = Field(default=25.0, gt=0, le=3600)
    request_deadline_reserve_seconds: float = Field(default=2.0, ge=0, le=60)
    # How long a caller holds a provider operation before another may retry it (a crash).
    operation_lease_seconds: float = Field(default=120.0, gt=0, le=3600)
    # PayPal's approval window (3 h by default; PayPal can set 24/48/72 h): a 404 for an order
    # younger than this is not taken as expiry.
    paypal_approval_window_seconds: float = Field(default=3 * 3600.0, ge=0, le=30 * 86400)

    # webhooks: what `POST /webhooks/paypal` accepts and how it checks signatures
    # The id PayPal gave our webhook subscription (required for sandbox and live).
    paypal_webhook_id: str | None = None
    # Our other environments' webhook ids: never accepted, only named when a delivery signed
    # for one of them arrives (a sandbox/live mix-up).
    paypal_other_webhook_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
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

    @field_validator("paypal_base_url", "paypal_client_id", "return_url", "cancel_url",
                     "catalog_path", "paypal_webhook_id", "webhook_ca_bundle",
                     "webhook_cert_trust", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("stage", mode="before")
    @classmethod
    def _stage(cls, value: Any) -> Any:
        return stage_name(value) if isinstance(value, str) else value

    @field_validator("paypal_secret_id", "app_secret_id", mode="before")
    @classmethod
    def _blank_id_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("paypal_client_secret", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("aps_api_url", "aps_page_url", "aps_merchant_identifier", "aps_return_url",
                     mode="before")
    @classmethod
    def _blank_aps_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("aps_access_code", "aps_request_phrase", "aps_response_phrase",
                     mode="before")
    @classmethod
    def _blank_aps_secret_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("cors_origins", "api_keys", "paypal_other_webhook_ids", "webhook_cert_hosts",
                     "providers",
                     "webhook_cert_http_hosts", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _PROVIDER_NAME.fullmatch(name):
                raise ValueError(f"PAYWIRE_PROVIDERS: {name!r} is not a provider name (lower-case "
                                 "letters, digits and `_`, as paypal or aps)")
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        self._check_stage()
        self._check_paypal()
        self._check_shop()
        self._check_timing()
        self._check_webhooks()
        self._check_aps()
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'paywire.db'}"
        elif dynamodb_table(self.database_url) is None and not self.is_sqlite and (
                not self.database_url.startswith("postgresql")):
            raise ValueError("PAYWIRE_DATABASE_URL must be a sqlite+aiosqlite://, "
                             "postgresql+psycopg:// or dynamodb://<table> URL")
        return self

    def _check_aps(self) -> None:
        if len(set(self.providers)) != len(self.providers):
            raise ValueError("PAYWIRE_PROVIDERS names a provider twice")
        if "aps" not in self.providers:
            return
        missing = [env_name(f) for f in (*APS_SECRETS, "aps_merchant_identifier",
                                          "aps_return_url") if getattr(self, f) is None]
        if missing and not outbox_only.get():
            raise ValueError(f"PAYWIRE_PROVIDERS includes aps, so {', '.join(missing)} must be "
                             "set (`paywire emulator` prints the APS credentials it accepts)")
        live = self.aps_env == "live"
        for name in ("aps_api_url", "aps_page_url", "aps_return_url"):
            value = getattr(self, name)
            if value is not None:
                http_url(name, value, https_only=live and name != "aps_return_url")
        if self.stage is not None and self.aps_env in APS_URLS:
            self._check_stage_aps_hosts()
        if self.aps_env == "emulator" and self.aps_api_url is None and (
                self.paypal_env != "emulator"):
            raise ValueError("PAYWIRE_APS_ENV=emulator needs PAYWIRE_APS_API_URL and "
                             "PAYWIRE_APS_PAGE_URL when PayPal is not on the emulator")

    @property
    def is_live(self) -> bool:
        """Whether any provider this shop offers takes real money."""
        return (("paypal" in self.providers and self.paypal_env == "live")
                or ("aps" in self.providers and self.aps_env == "live"))

    @property
    def is_emulated(self) -> bool:
        """Whether every provider this shop offers is an emulator."""
        return (("paypal" not in self.providers or self.paypal_env == "emulator")
                and ("aps" not in self.providers or self.aps_env == "emulator"))

    @property
    def aps_urls(self) -> tuple[str, str]:
        """(server-to-server API URL, hosted payment page URL) for `aps_env`."""
        if self.aps_env == "emulator":
            base = f"{self.paypal_url}/aps/FortAPI"
            default = (f"{base}/paymentApi", f"{base}/paymentPage")
        else:
            default = APS_URLS[self.aps_env]
        return self.aps_api_url or default[0], self.aps_page_url or default[1]

    def _check_stage(self) -> None:
        if self.stage is None:
            if self.stage_environment is not None:
                raise ValueError("PAYWIRE_STAGE_ENVIRONMENT comes from a stage's secret, and "
                                 "PAYWIRE_STAGE is not set")
            return
        if self.stage_environment is None:
            raise ValueError(f"PAYWIRE_STAGE={self.stage}: a stage's settings come from its "
                             f"secrets ({self.paypal_secret_name} in AWS Secrets Manager); load "
                             "them with paywire.aws.secrets.stage_settings() (pip install "
                             "'paywire[aws]')")
        if self.paypal_env != self.stage_environment:
            raise ValueError(f"the stage secret {self.paypal_secret_name} records environment "
                             f"{self.stage_environment} but PAYWIRE_PAYPAL_ENV is "
                             f"{self.paypal_env}: make them agree (or unset PAYWIRE_PAYPAL_ENV "
                             "and let the stage choose)")
        # APS's environment is the stage's: a live stage must not take APS test cards (nor a
        # sandbox stage real ones). Unset, it follows; set, it must agree.
        if "aps_env" not in self.model_fields_set:
            self.aps_env = self.stage_environment
        elif self.aps_env != self.stage_environment:
            raise ValueError(f"the stage secret {self.paypal_secret_name} records environment "
                             f"{self.stage_environment} but PAYWIRE_APS_ENV is {self.aps_env}: "
                             "a stage's APS environment is its PayPal environment (unset "
                             "PAYWIRE_APS_ENV and let the stage choose)")

    def _check_stage_aps_hosts(self) -> None:
        """A live stage sends cards to APS's live hosts only, over https; a sandbox stage
        never to them (`aps_api_url`/`aps_page_url` may move APS's URLs, not its environment)."""
        api, page = self.aps_urls
        for name, url, live_url in (("aps_api_url", api, APS_URLS["live"][0]),
                                    ("aps_page_url", page, APS_URLS["live"][1])):
            parts, live_host = urlsplit(url), urlsplit(live_url).hostname
            on_live = parts.hostname == live_host
            if self.aps_env == "live" and (parts.scheme != "https" or not on_live):
                raise ValueError(f"{env_name(name)} is not APS's live host over https "
                                 f"(https://{live_host}) and the stage {self.stage} is live: "
                                 f"unset {env_name(name)} (the stage's environment chooses "
                                 "APS's hosts)")
            if self.aps_env == "sandbox" and on_live:
                raise ValueError(f"{env_name(name)} is APS's live host {live_host} and the "
                                 f"stage {self.stage} is a sandbox stage: unset "
                                 f"{env_name(name)} (the stage's environment chooses APS's "
                                 "hosts)")

    def _check_paypal(self) -> None:
        env = self.paypal_env
        if self.paypal_base_url is not None:
            http_url("paypal_base_url", self.paypal_base_url, https_only=env == "live")
            host = (urlsplit(self.paypal_base_url).hostname or "").lower()
            if env == "live" and ("sandbox" in host or host in LOOPBACK):
                raise ValueError("PAYWIRE_PAYPAL_BASE_URL points at a sandbox or emulator while "
                                 "PAYWIRE_PAYPAL_ENV=live: live credentials would be sent there")
            if env == "sandbox" and host == "api-m.paypal.com":
                raise ValueError("PAYWIRE_PAYPAL_BASE_URL is PayPal's live API while "
                                 "PAYWIRE_PAYPAL_ENV=sandbox: set PAYWIRE_PAYPAL_ENV=live")
        if env in ("sandbox", "live") and "paypal" in self.providers and not outbox_only.get():
            missing = [env_name(f) for f in ("paypal_client_id", "paypal_client_secret")
                       if getattr(self, f) is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} must be set for "
                                 f"PAYWIRE_PAYPAL_ENV={env}")

    def _check_shop(self) -> None:
        live = self.is_live
        for field in ("return_url", "cancel_url"):
            value = getattr(self, field)
            if value is not None:
                http_url(field, value, https_only=live)
        for origin in self.cors_origins:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname
                                  or parts.path not in ("", "/") or parts.query):
                raise ValueError(f"PAYWIRE_CORS_ORIGINS: {origin!r} is not an origin "
                                 "(scheme://host[:port])")
        for i, key in enumerate(self.api_keys, start=1):
            if len(key.get_secret_value()) < MIN_API_KEY_CHARS:
                raise ValueError(f"PAYWIRE_API_KEYS: key #{i} is shorter than "
                                 f"{MIN_API_KEY_CHARS} characters")
        if self.catalog_path is None:
            if not self.is_emulated and not (webhook_setup.get() or outbox_only.get()):
                raise ValueError("PAYWIRE_CATALOG_PATH must be set (the demo catalog is for the "
                                 "emulator only)")
            return
        path = self.catalog_path
        if path.suffix.lower() not in (".toml", ".json"):
            raise ValueError(f"PAYWIRE_CATALOG_PATH: {path} must be a .toml or .json file")
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ValueError(f"PAYWIRE_CATALOG_PATH: cannot read {path} "
                             f"({exc.strerror or type(exc).__name__})") from None

    def _check_timing(self) -> None:
        if self.request_deadline_reserve_seconds >= self.request_budget_seconds:
            raise ValueError("PAYWIRE_REQUEST_DEADLINE_RESERVE_SECONDS must be less than "
                             "PAYWIRE_REQUEST_BUDGET_SECONDS (the reserve is kept back from it)")
        if self.operation_lease_seconds < self.paypal_timeout_seconds:
            raise ValueError("PAYWIRE_OPERATION_LEASE_SECONDS must be at least "
                             "PAYWIRE_PAYPAL_TIMEOUT_SECONDS (a live call must keep its lease)")

    def _check_webhooks(self) -> None:
        env = self.paypal_env
        if env in ("sandbox", "live") and self.paypal_webhook_id is None and (
                "paypal" in self.providers) and not (webhook_setup.get() or outbox_only.get()):
            raise ValueError(f"PAYWIRE_PAYPAL_WEBHOOK_ID must be set for PAYWIRE_PAYPAL_ENV={env} "
                             "(the id PayPal shows for the webhook subscription)")
        if self.paypal_webhook_id is not None and (
                self.paypal_webhook_id in self.paypal_other_webhook_ids):
            raise ValueError("PAYWIRE_PAYPAL_OTHER_WEBHOOK_IDS must not list "
                             "PAYWIRE_PAYPAL_WEBHOOK_ID (ours is accepted, the others never)")
        for field in ("webhook_cert_hosts", "webhook_cert_http_hosts"):
            for host in getattr(self, field):
                if not HOST_PORT.fullmatch(host):
                    raise ValueError(f"{env_name(field)}: {host!r} is not a host or host:port "
                                     "(no scheme, no path)")
        if self.webhook_cert_http_hosts and env != "emulator":
            raise ValueError("PAYWIRE_WEBHOOK_CERT_HTTP_HOSTS is for the emulator only: PayPal "
                             "serves certificates over https (PAYWIRE_PAYPAL_ENV is "
                             f"{env})")
        if self.webhook_max_age_seconds < PAYPAL_RETRY_HORIZON_SECONDS:
            raise ValueError("PAYWIRE_WEBHOOK_MAX_AGE_SECONDS must be at least 259200 (PayPal "
                             "retries a delivery for 3 days)")
        if self.webhook_cert_trust == "fetched" and self.webhook_ca_bundle is not None:
            raise ValueError("PAYWIRE_WEBHOOK_CA_BUNDLE is read only with "
                             "PAYWIRE_WEBHOOK_CERT_TRUST=bundle: unset one of them")
        if self.webhook_cert_trust == "fetched" and env == "emulator":
            raise ValueError("PAYWIRE_WEBHOOK_CERT_TRUST=fetched is for sandbox and live: the "
                             "emulator's certificate is trusted through its CA (bundle)")
        if self.cert_trust == "fetched":
            foreign = [h for h in self.webhook_cert_hosts
                       if not (h.lower().partition(":")[0] == "paypal.com"
                               or h.lower().partition(":")[0].endswith(".paypal.com"))]
            if foreign:
                raise ValueError(f"PAYWIRE_WEBHOOK_CERT_HOSTS: {', '.join(foreign)} is not a "
                                 "PayPal host; PAYWIRE_WEBHOOK_CERT_TRUST=fetched trusts a "
                                 "certificate for where it was fetched from, so only "
                                 "*.paypal.com hosts may serve it (use bundle trust otherwise)")
        if self.webhook_cert_trust == "bundle" and env != "emulator" and (
                self.webhook_ca_bundle is None):
            raise ValueError("PAYWIRE_WEBHOOK_CERT_TRUST=bundle needs PAYWIRE_WEBHOOK_CA_BUNDLE "
                             "(PEM: PayPal's root and intermediate, since PayPal serves the "
                             "signing certificate alone), or leave it unset for fetched trust")
        if self.webhook_ca_bundle is not None:
            try:
                with self.webhook_ca_bundle.open("rb") as fh:
                    fh.read(1)
            except OSError as exc:
                raise ValueError(f"PAYWIRE_WEBHOOK_CA_BUNDLE: cannot read "
                                 f"{self.webhook_ca_bundle} "
                                 f"({exc.strerror or type(exc).__name__})") from None
        if self.truth_fetch_max_delay_seconds < self.truth_fetch_base_delay_seconds:
            raise ValueError("PAYWIRE_TRUTH_FETCH_MAX_DELAY_SECONDS must be at least "
                             "PAYWIRE_TRUTH_FETCH_BASE_DELAY_SECONDS")
        if self.truth_fetch_lease_seconds < self.paypal_timeout_seconds:
            raise ValueError("PAYWIRE_TRUTH_FETCH_LEASE_SECONDS must be at least "
                             "PAYWIRE_PAYPAL_TIMEOUT_SECONDS (a fetch must keep its lease)")

    # --- resolved values ------------------------------------------------------------------

    @property
    def paypal_url(self) -> str:
        """The PayPal API base URL: the explicit one, else the environment's."""
        return (self.paypal_base_url or PAYPAL_BASE_URLS[self.paypal_env]).rstrip("/")

    @property
    def cert_hosts(self) -> tuple[list[str], list[str]]:
        """(https hosts, http hosts) a webhook's `PAYPAL-CERT-URL` may name.

        In emulator mode the emulator's own host:port is added, over the scheme it serves.
        """
        https_hosts = [h.lower() for h in self.webhook_cert_hosts]
        http_hosts = [h.lower() for h in self.webhook_cert_http_hosts]
        if self.paypal_env == "emulator":
            parts = urlsplit(self.paypal_url)
            (http_hosts if parts.scheme == "http" else https_hosts).append(parts.netloc.lower())
        return https_hosts, http_hosts

    @property
    def cert_trust(self) -> Literal["fetched", "bundle"]:
        """The trust model for webhook signing certificates: as set, else `bundle` with a CA
        bundle or in emulator mode, else `fetched`."""
        if self.webhook_cert_trust is not None:
            return self.webhook_cert_trust
        if self.webhook_ca_bundle is not None or self.paypal_env == "emulator":
            return "bundle"
        return "fetched"

    @property
    def emulator_ca_url(self) -> str | None:
        """Where the emulator serves its webhook CA (None unless PAYWIRE_PAYPAL_ENV=emulator)."""
        return f"{self.paypal_url}{EMULATOR_CA_PATH}" if self.paypal_env == "emulator" else None

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

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from the environment and `.env` (overridden by `overrides`), or ConfigError.

        The message names each offending setting and never quotes a value.
        """
        return load_validated(cls, overrides)

