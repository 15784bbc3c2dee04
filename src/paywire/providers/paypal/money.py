"""PayPal's money objects <-> paywire's exact `Money`, and which amounts PayPal can take at all.

Pure: no I/O. PayPal's decimals per currency are not always ISO 4217's (HUF and TWD are whole
units at PayPal), so every conversion goes through `PAYPAL_EXPONENTS`, and a value is read from
its decimal string, never through a float.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from paywire.domain.errors import ValidationError
from paywire.domain.money import Money, exponent

# PayPal's REST currency codes and their decimal places *at PayPal*. HUF and TWD have two
# decimals under ISO 4217 but PayPal takes them in whole units (JPY is whole under both).
PAYPAL_EXPONENTS: dict[str, int] = {
    **dict.fromkeys("AUD BRL CAD CNY CZK DKK EUR HKD ILS MYR MXN NZD NOK PHP PLN GBP SGD SEK "
                    "CHF THB USD".split(), 2),
    **dict.fromkeys(("HUF", "JPY", "TWD"), 0),
}
# PayPal's `value` carries at most 15 integer digits.
MAX_WHOLE_UNITS = 10**15 - 1
_VALUE = re.compile(r"(-?)([0-9]{1,32})(?:\.([0-9]{1,32}))?")


def _step(currency: str) -> int:
    """ISO minor units per PayPal minor unit (100 for HUF: 1 forint = 100 fillér)."""
    return int(10 ** (exponent(currency) - PAYPAL_EXPONENTS[currency]))


def check_amount(amount: Money) -> None:
    """Refuse (ValidationError) an amount PayPal cannot take: currency, precision, sign, size."""
    cur = amount.currency
    if cur not in PAYPAL_EXPONENTS:
        raise ValidationError(f"PayPal does not accept {cur}", field="currency")
    if amount.minor <= 0:
        raise ValidationError(f"PayPal amounts are positive; got {amount}", field="amount")
    if amount.minor % _step(cur):
        raise ValidationError(f"PayPal takes {cur} in whole units; {amount} cannot be paid",
                              field="amount")
    if amount.minor // 10 ** exponent(cur) > MAX_WHOLE_UNITS:
        raise ValidationError(f"{amount} is larger than PayPal accepts", field="amount")


def to_paypal_money(amount: Money) -> dict[str, str]:
    """`{"currency_code", "value"}` with exactly PayPal's decimals for the currency."""
    check_amount(amount)
    exp = PAYPAL_EXPONENTS[amount.currency]
    whole, frac = divmod(amount.minor // _step(amount.currency), 10**exp)
    value = f"{whole}.{frac:0{exp}d}" if exp else str(whole)
    return {"currency_code": amount.currency, "value": value}


def from_paypal_money(data: Any) -> Money:
    """A PayPal money object as exact Money in ISO minor units (strings only, never floats)."""
    if not isinstance(data, Mapping):
        raise ValidationError("a PayPal money object is a JSON object", field="amount")
    code, value = data.get("currency_code"), data.get("value")
    if not isinstance(code, str) or code not in PAYPAL_EXPONENTS:
        raise ValidationError(f"PayPal currency {code!r} is unknown", field="currency")
    m = _VALUE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ValidationError(f"PayPal value {value!r} is not a decimal string", field="amount")
    frac = (m.group(3) or "").rstrip("0")
    iso = exponent(code)
    if len(frac) > iso:
        raise ValidationError(f"{value} {code} has more decimals than {code} has",
                              field="amount")
    minor = int(m.group(2)) * 10**iso + int(frac.ljust(iso, "0") or "0")
    return Money(-minor if m.group(1) else minor, code)
