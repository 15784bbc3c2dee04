"""Amazon Payment Services' settings: `PAYWIRE_APS_*`, read into `Settings.aps`.

Checked only when "aps" is in `PAYWIRE_PROVIDERS`: then the merchant account's secrets, its
identifier and the return URL must be set (unless the process calls no provider,
`paywire.settings.purpose`), and on live its URLs are https. On a stage the environment is the
stage's (`paywire.settings.checks.check_stage`) and so are APS's hosts: a live stage sends cards
to APS's live hosts only, a sandbox stage never to them. In emulator mode the URLs default to
the APS emulator inside `paywire emulator`, under PayPal's URL.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from paywire.settings.errors import env_name
from paywire.settings.paypal import PayPalSettings
from paywire.settings.provider import ProviderSettings
from paywire.settings.purpose import Purpose
from paywire.settings.urls import APS_URLS, http_url

# The merchant account's secrets (Secrets Manager only on a stage), by field.
SECRETS = ("access_code", "request_phrase", "response_phrase")
# ... by setting name (the variable without PAYWIRE_, lower case).
APS_SECRETS = tuple(f"aps_{name}" for name in SECRETS)


class ApsSettings(ProviderSettings):
    """`PAYWIRE_APS_<FIELD>`: which APS, the merchant account, and how the buyer pays."""

    api_url: str | None = None
    page_url: str | None = None
    access_code: SecretStr | None = None
    merchant_identifier: str | None = None
    request_phrase: SecretStr | None = None
    response_phrase: SecretStr | None = None
    sha_type: str = "SHA-256"  # checked where the signer is made (bootstrap)
    language: Literal["en", "ar"] = "en"
    # Where APS sends the buyer back: paywire's `/v1/aps/return` as the browser reaches it.
    return_url: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # "hosted": the buyer pays on APS's payment page; "tokenization": APS's tokenization form
    # makes a token of the card, and paywire pays with it server to server (3-D Secure then
    # sends the buyer to APS's 3ds_url).
    checkout: Literal["hosted", "tokenization"] = "hosted"

    @field_validator("api_url", "page_url", "merchant_identifier", "return_url",
                     "access_code", "request_phrase", "response_phrase", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    def urls(self, paypal: PayPalSettings) -> tuple[str, str]:
        """(server-to-server API URL, hosted payment page URL): as set, else the environment's
        (in emulator mode APS's emulator under PayPal's URL, where `paywire emulator` serves
        both)."""
        if self.env == "emulator":
            base = f"{paypal.url}/aps/FortAPI"
            default = (f"{base}/paymentApi", f"{base}/paymentPage")
        else:
            default = APS_URLS[self.env]
        return self.api_url or default[0], self.page_url or default[1]

    def check(self, *, purpose: Purpose, stage: str | None, paypal: PayPalSettings) -> None:
        """APS's secrets and URLs when it is offered (https on live; a stage's hosts)."""
        missing = [env_name(f"aps_{f}") for f in (*SECRETS, "merchant_identifier", "return_url")
                   if getattr(self, f) is None]
        if missing and purpose.needs_credentials:
            raise ValueError(f"PAYWIRE_PROVIDERS includes aps, so {', '.join(missing)} must be "
                             "set (`paywire emulator` prints the APS credentials it accepts)")
        live = self.env == "live"
        for name in ("api_url", "page_url", "return_url"):
            value = getattr(self, name)
            if value is not None:
                http_url(f"aps_{name}", value, https_only=live and name != "return_url")
        if stage is not None and self.env in APS_URLS:
            self.check_stage_hosts(stage, paypal)
        if self.env == "emulator" and self.api_url is None and not paypal.is_emulated:
            raise ValueError("PAYWIRE_APS_ENV=emulator needs PAYWIRE_APS_API_URL and "
                             "PAYWIRE_APS_PAGE_URL when PayPal is not on the emulator")

    def check_stage_hosts(self, stage: str, paypal: PayPalSettings) -> None:
        """A live stage sends cards to APS's live hosts only, over https; a sandbox stage
        never to them (`api_url`/`page_url` may move APS's URLs, not its environment)."""
        api, page = self.urls(paypal)
        for name, url, live_url in (("aps_api_url", api, APS_URLS["live"][0]),
                                    ("aps_page_url", page, APS_URLS["live"][1])):
            parts, live_host = urlsplit(url), urlsplit(live_url).hostname
            on_live = parts.hostname == live_host
            if self.env == "live" and (parts.scheme != "https" or not on_live):
                raise ValueError(f"{env_name(name)} is not APS's live host over https "
                                 f"(https://{live_host}) and the stage {stage} is live: "
                                 f"unset {env_name(name)} (the stage's environment chooses "
                                 "APS's hosts)")
            if self.env == "sandbox" and on_live:
                raise ValueError(f"{env_name(name)} is APS's live host {live_host} and the "
                                 f"stage {stage} is a sandbox stage: unset "
                                 f"{env_name(name)} (the stage's environment chooses APS's "
                                 "hosts)")
