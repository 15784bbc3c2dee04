"""The browser side of APS: signed hosted-page / tokenization forms, and verified feedback.

The shop's server builds the form (signed with the request phrase) and the browser posts it to
APS's payment page; the buyer's card fields go from the browser to APS and never through
paywire. Results come back signed with the response phrase on three channels — direct
transaction feedback, notification feedback (both server-to-server) and the buyer's redirect to
`return_url` (informative only) — and all three are checked by `FeedbackVerifier.verify`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from paywire.domain.errors import ConfigError, SignatureError, ValidationError
from paywire.domain.money import Money
from paywire.providers.aps.amounts import (
    DEFAULT_CURRENCIES,
    check_reference,
    to_aps_amount,
)
from paywire.providers.aps.mapping import PAYMENT_COMMANDS, TOKENIZATION
from paywire.providers.aps.results import ApsResult, parse_result
from paywire.providers.aps.signature import Signer, delivery_key

SANDBOX_PAGE_URL = "https://sbcheckout.payfort.com/FortAPI/paymentPage"
LIVE_PAGE_URL = "https://checkout.payfort.com/FortAPI/paymentPage"
SANDBOX_API_URL = "https://sbpaymentservices.payfort.com/FortAPI/paymentApi"
LIVE_API_URL = "https://paymentservices.payfort.com/FortAPI/paymentApi"
LANGUAGES = ("en", "ar")


@dataclass(frozen=True)
class Merchant:
    """One APS merchant account: its access code, identifier, signer and page language.

    The phrases inside `signer` are the secrets. The access code travels in every browser
    form, yet it is a credential all the same: it stays out of reprs and errors too.
    """

    access_code: str = field(repr=False)
    merchant_identifier: str
    signer: Signer = field(repr=False)
    language: str = "en"

    def __post_init__(self) -> None:
        if not self.access_code or not self.merchant_identifier:
            raise ConfigError("APS: access_code and merchant_identifier are required")
        if self.language not in LANGUAGES:
            raise ConfigError(f"APS language must be one of {LANGUAGES}")

    def base_params(self, language: str | None = None) -> dict[str, str]:
        """The parameters every request carries."""
        lang = language or self.language
        if lang not in LANGUAGES:
            raise ValidationError(f"APS language must be one of {LANGUAGES}", field="language")
        return {"access_code": self.access_code,
                "merchant_identifier": self.merchant_identifier, "language": lang}


@dataclass(frozen=True, slots=True)
class HostedForm:
    """A signed form: post `params` (hidden inputs) to `url` from the buyer's browser."""

    url: str
    params: dict[str, str]


class FormBuilder:
    """Builds signed hosted payment page and tokenization forms for one merchant account."""

    def __init__(self, merchant: Merchant, page_url: str = SANDBOX_PAGE_URL, *,
                 currencies: frozenset[str] = DEFAULT_CURRENCIES) -> None:
        if not page_url.startswith(("https://", "http://")):
            raise ConfigError("APS page URL must be an absolute http(s) URL")
        self.merchant = merchant
        self.page_url = page_url
        self.currencies = currencies

    def payment_page(self, *, command: str, merchant_reference: str, amount: Money,
                     customer_email: str, return_url: str, order_description: str | None = None,
                     customer_name: str | None = None,
                     language: str | None = None) -> HostedForm:
        """The redirection (hosted payment page) form for PURCHASE or AUTHORIZATION."""
        if command not in PAYMENT_COMMANDS:
            raise ValidationError("the payment page takes PURCHASE or AUTHORIZATION",
                                  field="command")
        params = self.merchant.base_params(language)
        params.update({
            "command": command, "merchant_reference": check_reference(merchant_reference),
            "amount": to_aps_amount(amount, self.currencies), "currency": amount.currency,
            "customer_email": _required(customer_email, "customer_email"),
            "return_url": _url(return_url)})
        if order_description:
            params["order_description"] = order_description[:150]
        if customer_name:
            params["customer_name"] = customer_name[:40]
        return HostedForm(self.page_url, self.merchant.signer.sign_request(params))

    def tokenization(self, *, merchant_reference: str, return_url: str,
                     language: str | None = None) -> HostedForm:
        """The tokenization form (`service_command=TOKENIZATION`): the browser adds the card
        fields (left out of the signature) and APS answers a `token_name` on `return_url`."""
        params = self.merchant.base_params(language)
        params.update({"service_command": TOKENIZATION,
                       "merchant_reference": check_reference(merchant_reference),
                       "return_url": _url(return_url)})
        return HostedForm(self.page_url, self.merchant.signer.sign_request(params))


def _required(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"APS {name} is required", field=name)
    return value.strip()


def _url(value: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValidationError("return_url must be an absolute http(s) URL", field="return_url")
    return value


@dataclass(frozen=True, slots=True)
class ApsFeedback:
    """A verified feedback delivery (or return_url visit): its result and redelivery key."""

    result: ApsResult
    delivery_key: str


class FeedbackVerifier:
    """Checks feedback and return_url parameters against the response phrase."""

    def __init__(self, merchant: Merchant) -> None:
        self.merchant = merchant

    def verify(self, params: Mapping[str, Any]) -> ApsFeedback:
        """Verify over every received parameter, then parse; `SignatureError` if refused.

        The signature is checked first (constant time), then that the delivery names this
        merchant account where it names one: a valid signature for another account's
        identifier means a sandbox/live or multi-account mix-up, refused like a forgery.
        """
        self.merchant.signer.verify_response(params)
        for key, ours in (("merchant_identifier", self.merchant.merchant_identifier),
                          ("access_code", self.merchant.access_code)):
            if key in params and params[key] != ours:
                raise SignatureError(f"APS feedback {key} is not this merchant account's",
                                     check="merchant",
                                     likely_cause="a delivery for another APS account (sandbox "
                                     "and live mixed up, or two accounts share a phrase)")
        return ApsFeedback(parse_result(params), delivery_key(params))


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a repeated JSON key")
    return out


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """A feedback body as received: JSON (numbers kept as their text) or, as a tolerance,
    form-encoded. ValidationError if malformed; a repeated form field is refused (ambiguous)."""
    ctype = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("APS feedback is not UTF-8", field="body") from exc
    if ctype == "application/x-www-form-urlencoded":
        pairs = parse_qsl(text, keep_blank_values=True)
        params = dict(pairs)
        if len(params) != len(pairs):
            raise ValidationError("APS feedback repeats a field", field="body")
        return params
    try:
        data = json.loads(text, parse_int=str, parse_float=str, parse_constant=_no_constant,
                          object_pairs_hook=_unique)
    except (ValueError, RecursionError) as exc:
        raise ValidationError("APS feedback is neither JSON (with unique keys) nor "
                              "form-encoded", field="body") from exc
    if not isinstance(data, dict):
        raise ValidationError("APS feedback must be a JSON object", field="body")
    return data
