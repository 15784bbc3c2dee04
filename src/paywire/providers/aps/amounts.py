"""Money and references on APS's wire: minor-unit amount strings, merchant/maintenance refs.

APS takes `amount` as an integer string in the currency's ISO 4217 minor units (`10000` =
100.00 AED; KWD, BHD, OMR and JOD have three decimals: `1250` = 1.250 KWD), at most 10 digits.
`merchant_reference` (≤ 40 characters of letters, digits, `-`, `_`, `.`) identifies one payment
attempt: paywire uses `<order id>-<attempt>`, saved before the call, so a buyer who retries with
another card gets a fresh reference and a repeated call repeats the same one.
"""

from __future__ import annotations

import hashlib
import re

from paywire.domain.errors import ValidationError
from paywire.domain.money import Money, exponent

# Currencies paywire lets through to APS. An assumption (aps.md *(check)*): what a merchant
# account accepts depends on its acquirer; APS refuses others with message 013, which maps to
# an ERROR, so a narrower or wider set is a configuration choice (the client takes `currencies`).
DEFAULT_CURRENCIES = frozenset(
    "AED SAR KWD BHD OMR QAR JOD EGP USD EUR GBP".split())
MAX_AMOUNT_DIGITS = 10
MAX_REFERENCE = 40
_REFERENCE = re.compile(r"[A-Za-z0-9_.\-]{1,40}")
_AMOUNT = re.compile(r"[0-9]{1,10}")


def check_amount(amount: Money, currencies: frozenset[str] = DEFAULT_CURRENCIES) -> None:
    """Refuse (ValidationError) an amount APS cannot take: currency, sign, size."""
    if amount.currency not in currencies:
        raise ValidationError(f"APS is not configured to accept {amount.currency}",
                              field="currency")
    if amount.minor <= 0:
        raise ValidationError(f"APS amounts are positive; got {amount}", field="amount")
    if len(str(amount.minor)) > MAX_AMOUNT_DIGITS:
        raise ValidationError(f"{amount} is larger than APS accepts ({MAX_AMOUNT_DIGITS} digits "
                              "of minor units)", field="amount")


def to_aps_amount(amount: Money, currencies: frozenset[str] = DEFAULT_CURRENCIES) -> str:
    """`amount` as APS's minor-unit integer string (checked first)."""
    check_amount(amount, currencies)
    return str(amount.minor)


def from_aps_amount(value: object, currency: object) -> Money:
    """An APS amount (digits, as a string or JSON integer) in `currency`; ValidationError if
    either is malformed."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or _AMOUNT.fullmatch(value) is None:
        raise ValidationError(f"APS amount {str(value)[:20]!r} is not minor-unit digits",
                              field="amount")
    if not isinstance(currency, str):
        raise ValidationError("APS currency is missing", field="currency")
    exponent(currency)  # ValidationError for an unknown currency
    return Money(int(value), currency)


def check_reference(value: str, field: str = "merchant_reference") -> str:
    """`value` if APS takes it as a reference (1..40 of `A-Z a-z 0-9 - _ .`)."""
    if not isinstance(value, str) or _REFERENCE.fullmatch(value) is None:
        raise ValidationError(f"APS {field} holds 1..{MAX_REFERENCE} letters, digits, '-', '_' "
                              f"or '.'; got {str(value)[:60]!r}", field=field)
    return value


def merchant_reference(order_id: str, attempt: int) -> str:
    """`<order id>-<attempt>`: one payment attempt's reference (save it before the call)."""
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValidationError("the attempt number is a positive integer", field="attempt")
    return check_reference(f"{order_id}-{attempt}")


def parse_merchant_reference(reference: str) -> tuple[str, int] | None:
    """(order id, attempt) from a reference `merchant_reference` made, else None."""
    order_id, sep, attempt = reference.rpartition("-")
    if not sep or not order_id or not attempt.isdigit() or attempt.startswith("0"):
        return None
    return order_id, int(attempt)


def maintenance_reference(operation_key: str) -> str:
    """Our per-operation reference for a maintenance call, derived from the operation key.

    A key APS can take is used as is; any other (too long, `:` in it) becomes `op-` + 37 hex
    digits of its SHA-256: stable across retries and crashes, collision-free in practice.
    """
    if not operation_key:
        raise ValidationError("an operation key is required", field="maintenance_reference")
    if _REFERENCE.fullmatch(operation_key):
        return operation_key
    return "op-" + hashlib.sha256(operation_key.encode("utf-8")).hexdigest()[:MAX_REFERENCE - 3]
