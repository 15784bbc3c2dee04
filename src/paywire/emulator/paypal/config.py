"""The PayPal emulator's configuration: sandbox apps, token lifetime, expiry windows, retention,
time scale."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Literal

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class AppCredentials:
    """One REST app: a client id/secret pair, labelled sandbox or live.

    On PayPal's sandbox host only sandbox apps get a token, on its live host only live apps; on
    any other host (loopback) both do (see `oauth.host_environment`).
    """

    client_id: str
    client_secret: str = field(repr=False)
    environment: Literal["sandbox", "live"] = "sandbox"
    app_id: str = ""

    @classmethod
    def generate(cls, environment: Literal["sandbox", "live"] = "sandbox") -> AppCredentials:
        """A fresh random app, as PayPal's developer dashboard would issue."""
        prefix = "EMU-SB-" if environment == "sandbox" else "EMU-LV-"
        return cls(
            client_id=prefix + secrets.token_urlsafe(24),
            client_secret=secrets.token_urlsafe(32),
            environment=environment,
        )


@dataclass
class PayPalConfig:
    """Everything the PayPal emulator can be told at start; every field has PayPal's default."""

    apps: list[AppCredentials] = field(default_factory=lambda: [AppCredentials.generate()])
    token_ttl_seconds: int = 32400
    # The payer must approve within this window (PayPal's default: 3 hours).
    order_expiry_seconds: float = 3 * HOUR
    # What a GET of an expired order answers: PayPal does not document it; 404 is commonly seen.
    expired_order_get: Literal["not_found", "voided"] = "not_found"
    # PayPal-Request-Id retention per operation kind.
    orders_idempotency_seconds: float = 6 * HOUR
    refunds_idempotency_seconds: float = 45 * DAY
    # Real seconds per emulated second for webhook retry delays (1.0 = PayPal's real schedule).
    webhook_time_scale: float = 1.0
    webhook_timeout_seconds: float = 10.0
    # Public base URL used in HATEOAS links; None = taken from each request's Host.
    public_base_url: str | None = None
    # Host name in the leaf certificate's URL and the certificate's subject.
    cert_host: str | None = None
    seed: int | None = None
    # Keep every response body in the request log (schema-conformance tests read them).
    record_responses: bool = False
    authorization_honor_seconds: float = 3 * DAY
    authorization_valid_seconds: float = 29 * DAY
