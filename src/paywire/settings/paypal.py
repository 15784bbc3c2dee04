"""PayPal's settings: `PAYWIRE_PAYPAL_*`, read into `Settings.paypal`.

The environment picks PayPal's host (`url`), which a base URL may replace (an emulator on
another port, a proxy) but never across environments: live credentials must not reach a
sandbox or emulator host, nor sandbox ones PayPal's live API. Sandbox and live need the app's
credentials and the webhook subscription's id, unless the process loading them needs neither
(`paywire.settings.purpose`). The webhook's certificate hosts and trust are `PAYWIRE_WEBHOOK_*`,
top-level settings.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from paywire.settings.errors import env_name
from paywire.settings.provider import ProviderSettings, blank_is_unset, csv_items
from paywire.settings.purpose import Purpose
from paywire.settings.urls import EMULATOR_CA_PATH, LOOPBACK, PAYPAL_BASE_URLS, http_url

ENVIRONMENTS_WITH_CREDENTIALS = ("sandbox", "live")


class PayPalSettings(ProviderSettings):
    """`PAYWIRE_PAYPAL_<FIELD>`: which PayPal, as whom, how patiently, and our webhook's id."""

    base_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    max_retries: int = Field(default=3, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    # PayPal's approval window (3 h by default; PayPal can set 24/48/72 h): a 404 for an order
    # younger than this is not taken as expiry.
    approval_window_seconds: float = Field(default=3 * 3600.0, ge=0, le=30 * 86400)
    # The id PayPal gave our webhook subscription (required for sandbox and live).
    webhook_id: str | None = None
    # Our other environments' webhook ids: never accepted, only named when a delivery signed
    # for one of them arrives (a sandbox/live mix-up).
    other_webhook_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("base_url", "client_id", "client_secret", "webhook_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return blank_is_unset(value)

    @field_validator("other_webhook_ids", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        return csv_items(value)

    @property
    def url(self) -> str:
        """The PayPal API base URL: the explicit one, else the environment's."""
        return (self.base_url or PAYPAL_BASE_URLS[self.env]).rstrip("/")

    @property
    def emulator_ca_url(self) -> str | None:
        """Where the emulator serves its webhook CA (None unless PAYWIRE_PAYPAL_ENV=emulator)."""
        return f"{self.url}{EMULATOR_CA_PATH}" if self.env == "emulator" else None

    def check(self, *, offered: bool, purpose: Purpose) -> None:
        """PayPal's URL matches its environment; sandbox and live need credentials (when PayPal
        is offered and the process calls it)."""
        env = self.env
        if self.base_url is not None:
            http_url("paypal_base_url", self.base_url, https_only=env == "live")
            host = (urlsplit(self.base_url).hostname or "").lower()
            if env == "live" and ("sandbox" in host or host in LOOPBACK):
                raise ValueError("PAYWIRE_PAYPAL_BASE_URL points at a sandbox or emulator while "
                                 "PAYWIRE_PAYPAL_ENV=live: live credentials would be sent there")
            if env == "sandbox" and host == "api-m.paypal.com":
                raise ValueError("PAYWIRE_PAYPAL_BASE_URL is PayPal's live API while "
                                 "PAYWIRE_PAYPAL_ENV=sandbox: set PAYWIRE_PAYPAL_ENV=live")
        if env in ENVIRONMENTS_WITH_CREDENTIALS and offered and purpose.needs_credentials:
            missing = [env_name(f"paypal_{f}") for f in ("client_id", "client_secret")
                       if getattr(self, f) is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} must be set for "
                                 f"PAYWIRE_PAYPAL_ENV={env}")

    def check_webhook_ids(self, *, offered: bool, purpose: Purpose) -> None:
        """Sandbox and live need our webhook's id (unless the process makes it, or verifies no
        webhook), and the other environments' ids never list ours."""
        if self.env in ENVIRONMENTS_WITH_CREDENTIALS and self.webhook_id is None and (
                offered and purpose.needs_webhook_id):
            raise ValueError(f"PAYWIRE_PAYPAL_WEBHOOK_ID must be set for "
                             f"PAYWIRE_PAYPAL_ENV={self.env} (the id PayPal shows for the "
                             "webhook subscription)")
        if self.webhook_id is not None and self.webhook_id in self.other_webhook_ids:
            raise ValueError("PAYWIRE_PAYPAL_OTHER_WEBHOOK_IDS must not list "
                             "PAYWIRE_PAYPAL_WEBHOOK_ID (ours is accepted, the others never)")
