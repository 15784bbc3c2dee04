"""Where the providers live, and how a URL setting is read.

The hosts each environment talks to (PayPal's API, APS's API and payment page, the emulator)
are tables here so that the settings and their checks agree on them: a live setting must never
reach a sandbox or emulator host, nor a sandbox one a live host. The store's URL is read here
too, since a `dynamodb://` URL names a table rather than a host.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from paywire.settings.errors import env_name

PayPalEnv = Literal["sandbox", "live", "emulator"]
APS_URLS = {  # (server-to-server API, hosted payment page)
    "sandbox": ("https://sbpaymentservices.payfort.com/FortAPI/paymentApi",
                "https://sbcheckout.payfort.com/FortAPI/paymentPage"),
    "live": ("https://paymentservices.payfort.com/FortAPI/paymentApi",
             "https://checkout.payfort.com/FortAPI/paymentPage"),
}

PAYPAL_BASE_URLS: dict[str, str] = {
    "sandbox": "https://api-m.sandbox.paypal.com",
    "live": "https://api-m.paypal.com",
    "emulator": "http://127.0.0.1:8090",
}
# Where PayPal serves webhook signing certificates (`PAYPAL-CERT-URL`), live and sandbox.
PAYPAL_CERT_HOSTS = ("api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com",
                     "api-m.sandbox.paypal.com")
EMULATOR_CA_PATH = "/_emulator/ca.pem"
LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")  # noqa: S104 - compared, not bound


HOST_PORT = re.compile(r"(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?",
                       re.IGNORECASE)


# DynamoDB table names: 3 to 255 of letters, digits, `_`, `-` and `.`.
_DYNAMODB_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
DYNAMODB_SCHEME = "dynamodb://"
DYNAMODB_URL_OPTIONS = ("region", "endpoint_url")


def http_url(field: str, value: str, *, https_only: bool = False) -> None:
    """ValueError naming the setting unless `value` is an http(s) URL with a host (https only
    when a live setting would send credentials or cards there)."""
    parts = urlsplit(value)
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        need = "an https:// URL" if https_only else "an http(s):// URL"
        raise ValueError(f"{env_name(field)} must be {need} with a host")


def dynamodb_table(url: str) -> str | None:
    """The table of a `dynamodb://<table>[?region=...&endpoint_url=...]` URL (None for any
    other URL); ValueError if malformed."""
    if not url.startswith(DYNAMODB_SCHEME):
        return None
    parts = urlsplit(url)
    table = parts.netloc
    unknown = set(parse_qs(parts.query, keep_blank_values=True)) - set(DYNAMODB_URL_OPTIONS)
    if parts.path not in ("", "/") or parts.fragment or unknown or not (
            _DYNAMODB_TABLE.fullmatch(table)):
        raise ValueError("PAYWIRE_DATABASE_URL: a DynamoDB store is dynamodb://<table> (3-255 "
                         "letters, digits, '_', '-' or '.'; region and endpoint from AWS_REGION "
                         "and AWS_ENDPOINT_URL, or ?region= and ?endpoint_url=)")
    return table
