"""Currencies PayPal accepts and their decimal places at PayPal."""

from __future__ import annotations

import re

# PayPal's REST currency codes. HUF, JPY and TWD are whole units at PayPal.
EXPONENTS: dict[str, int] = {
    "AUD": 2, "BRL": 2, "CAD": 2, "CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "HKD": 2,
    "HUF": 0, "ILS": 2, "JPY": 0, "MYR": 2, "MXN": 2, "TWD": 0, "NZD": 2, "NOK": 2,
    "PHP": 2, "PLN": 2, "GBP": 2, "SGD": 2, "SEK": 2, "CHF": 2, "THB": 2, "USD": 2,
}

_VALUE = re.compile(r"^(?P<int>[0-9]{1,15})(?:\.(?P<frac>[0-9]+))?$")
MAX_MINOR = 999_999_999_999_999_99


class MoneyFormatError(ValueError):
    """A value string PayPal would refuse; `issue` is PayPal's issue name."""

    def __init__(self, issue: str) -> None:
        super().__init__(issue)
        self.issue = issue


def parse_value(currency: str, value: str) -> int:
    """Parse a PayPal amount string into minor units, refusing what PayPal refuses."""
    exp = EXPONENTS.get(currency)
    if exp is None:
        raise MoneyFormatError("INVALID_CURRENCY_CODE")
    m = _VALUE.match(value)
    if m is None:
        raise MoneyFormatError("INVALID_PARAMETER_SYNTAX")
    frac = m.group("frac") or ""
    if len(frac) > exp:
        raise MoneyFormatError("DECIMALS_NOT_SUPPORTED" if exp == 0 else "DECIMAL_PRECISION")
    minor: int = int(m.group("int")) * 10**exp + int((frac + "0" * exp)[:exp] or "0")
    if minor > MAX_MINOR:
        raise MoneyFormatError("MAX_VALUE_EXCEEDED")
    return minor


def format_value(currency: str, minor: int) -> str:
    """Minor units back to PayPal's string with exactly the currency's decimals."""
    exp = EXPONENTS[currency]
    if exp == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}"


def money(currency: str, minor: int) -> dict[str, str]:
    """A PayPal money object."""
    return {"currency_code": currency, "value": format_value(currency, minor)}
