"""APS emulator configuration: the merchant account's credentials, feedback URLs, schedules.

Defaults are APS's documented behaviour where it is documented; the rest is labelled as an
assumption (aps.md *(check)*) and configurable.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Literal

SHA_TYPES = ("SHA-256", "SHA-512", "SHA-128", "HMAC-SHA256", "HMAC-SHA512")
_ALNUM = string.ascii_letters + string.digits

# ISO 4217 decimals of the currencies the emulated merchant account accepts (assumption: the
# set an APS account in the Gulf typically has; APS takes amounts in these minor units).
DEFAULT_CURRENCIES: dict[str, int] = {
    "AED": 2, "SAR": 2, "KWD": 3, "BHD": 3, "OMR": 3, "QAR": 2, "JOD": 3, "EGP": 2, "USD": 2,
    "EUR": 2, "GBP": 2,
}


def _token(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


@dataclass(frozen=True)
class ApsCredentials:
    """One merchant account as APS's dashboard shows it (Integration settings > Security)."""

    access_code: str = field(repr=False)
    merchant_identifier: str
    request_phrase: str = field(repr=False)
    response_phrase: str = field(repr=False)
    sha_type: str = "SHA-256"

    def __post_init__(self) -> None:
        if self.sha_type not in SHA_TYPES:
            raise ValueError(f"sha_type must be one of {', '.join(SHA_TYPES)}")
        if not (self.access_code and self.merchant_identifier and self.request_phrase
                and self.response_phrase):
            raise ValueError("access code, merchant identifier and both phrases are required")

    @classmethod
    def generate(cls, sha_type: str = "SHA-256") -> ApsCredentials:
        """A fresh random account, as the dashboard's "Generate" buttons would issue."""
        return cls(access_code=_token(20), merchant_identifier=_token(8),
                   request_phrase=_token(24), response_phrase=_token(24), sha_type=sha_type)


@dataclass
class ApsEmulatorConfig:
    """Everything the APS emulator can be told at start."""

    credentials: ApsCredentials = field(default_factory=ApsCredentials.generate)
    # The dashboard's "Direct Transaction Feedback" and "Notification Transaction Feedback"
    # URLs (None: that channel sends nothing).
    direct_feedback_url: str | None = None
    notification_feedback_url: str | None = None
    # JSON by default; APS can be asked to send form-encoded feedback instead.
    feedback_format: Literal["json", "form"] = "json"
    # Assumption (aps.md: the schedule is not documented): PayFort's older guide said it
    # retries a feedback that is not answered 2xx/302 ten times, 10 seconds apart.
    feedback_retry_delays: tuple[float, ...] = (10.0,) * 10
    # Real seconds per emulated second of those delays (tests use a small factor).
    feedback_time_scale: float = 1.0
    feedback_timeout_seconds: float = 10.0
    # How the buyer returns to `return_url`: an auto-submitted POST form (assumption: APS's
    # redirection posts) or a GET with the parameters in the query string.
    return_method: Literal["POST", "GET"] = "POST"
    # Public base URL of this app (including its mount prefix); None = from each request.
    public_base_url: str | None = None
    currencies: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CURRENCIES))
    # Assumption (aps.md *(check)*): a maintenance_reference reused on one transaction is
    # refused like a reused merchant_reference (message 066).
    refuse_duplicate_maintenance_reference: bool = True
    seed: int | None = None
