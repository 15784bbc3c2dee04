"""Validating an Orders v2 create body the way PayPal does: schema, money formats and sums."""

from __future__ import annotations

import re
from typing import Any

from paywire.emulator.paypal.currencies import EXPONENTS, MoneyFormatError, parse_value
from paywire.emulator.paypal.errors import Detail, PayPalError, issue
from paywire.emulator.paypal.state import PurchaseUnit

BREAKDOWN_ADD = ("item_total", "shipping", "handling", "tax_total", "insurance")
BREAKDOWN_SUB = ("shipping_discount", "discount")
MAX_UNITS = 10
_QUANTITY = re.compile(r"^[1-9][0-9]{0,9}$")
STRING_LIMITS = {"reference_id": 256, "description": 127, "custom_id": 255, "invoice_id": 127,
                 "soft_descriptor": 22}


def _field(ref: str, rest: str) -> str:
    return f"/purchase_units/@reference_id=='{ref}'{rest}"


def parse_money(data: Any, where: str, currency: str | None = None, *,
                positive: bool = False) -> tuple[str, int]:
    """Parse a money object at JSON pointer `where` into (currency, minor units)."""
    if not isinstance(data, dict):
        raise issue(400, "MISSING_REQUIRED_PARAMETER" if data is None else
                    "INVALID_PARAMETER_SYNTAX", where)
    code, value = data.get("currency_code"), data.get("value")
    if code is None:
        raise issue(400, "MISSING_REQUIRED_PARAMETER", f"{where}/currency_code")
    if value is None:
        raise issue(400, "MISSING_REQUIRED_PARAMETER", f"{where}/value")
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
        raise issue(400, "INVALID_PARAMETER_SYNTAX", f"{where}/currency_code", code)
    if not isinstance(value, str) or len(value) > 32:
        raise issue(400, "INVALID_PARAMETER_SYNTAX", f"{where}/value", value)
    if code not in EXPONENTS:
        raise issue(422, "INVALID_CURRENCY_CODE", f"{where}/currency_code", code)
    if currency is not None and code != currency:
        raise issue(422, "MULTI_CURRENCY_ORDER", f"{where}/currency_code", code)
    negative = value.startswith("-")
    try:
        minor = parse_value(code, value[1:] if negative else value)
    except MoneyFormatError as exc:
        name = "DECIMAL_PRECISION" if exc.issue == "DECIMALS_NOT_SUPPORTED" else exc.issue
        status = 400 if name == "INVALID_PARAMETER_SYNTAX" else 422
        raise issue(status, name, f"{where}/value", value) from exc
    if positive and (negative or minor == 0):
        raise issue(422, "CANNOT_BE_ZERO_OR_NEGATIVE", f"{where}/value", value)
    if negative and minor:
        raise issue(422, "CANNOT_BE_NEGATIVE", f"{where}/value", value)
    return code, minor


def _check_strings(unit: dict[str, Any], ref: str) -> None:
    for key, limit in STRING_LIMITS.items():
        v = unit.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            raise issue(400, "INVALID_PARAMETER_SYNTAX", _field(ref, f"/{key}"), v)
        if not 1 <= len(v) <= limit:
            raise issue(400, "INVALID_STRING_LENGTH", _field(ref, f"/{key}"), v)


def _items_total(items: Any, ref: str, currency: str) -> tuple[int, int, bool]:
    """Sum of unit_amount × quantity and tax × quantity over `items`."""
    if not isinstance(items, list):
        raise issue(400, "INVALID_PARAMETER_SYNTAX", _field(ref, "/items"))
    total = tax = 0
    any_tax = False
    for i, item in enumerate(items):
        where = _field(ref, f"/items/{i}")
        if not isinstance(item, dict):
            raise issue(400, "INVALID_PARAMETER_SYNTAX", where)
        name = item.get("name")
        if name is None:
            raise issue(400, "MISSING_REQUIRED_PARAMETER", f"{where}/name")
        if not isinstance(name, str) or not 1 <= len(name) <= 127:
            raise issue(400, "INVALID_STRING_LENGTH", f"{where}/name", name)
        qty = item.get("quantity")
        if qty is None:
            raise issue(400, "MISSING_REQUIRED_PARAMETER", f"{where}/quantity")
        if not isinstance(qty, str) or not _QUANTITY.match(qty):
            raise issue(400, "INVALID_PARAMETER_SYNTAX", f"{where}/quantity", qty)
        if "unit_amount" not in item:
            raise issue(400, "MISSING_REQUIRED_PARAMETER", f"{where}/unit_amount")
        _, unit_minor = parse_money(item["unit_amount"], f"{where}/unit_amount", currency)
        total += unit_minor * int(qty)
        if item.get("tax") is not None:
            any_tax = True
            _, tax_minor = parse_money(item["tax"], f"{where}/tax", currency)
            tax += tax_minor * int(qty)
    return total, tax, any_tax


def parse_unit(unit: Any, index: int, single: bool, currency: str | None) -> PurchaseUnit:
    """Validate one purchase unit and compute its total."""
    if not isinstance(unit, dict):
        raise issue(400, "INVALID_PARAMETER_SYNTAX", f"/purchase_units/{index}")
    ref = unit.get("reference_id")
    if ref is None:
        if not single:
            raise issue(422, "REFERENCE_ID_REQUIRED", f"/purchase_units/{index}/reference_id")
        ref = "default"
    if not isinstance(ref, str) or not 1 <= len(ref) <= 256:
        raise issue(400, "INVALID_STRING_LENGTH", f"/purchase_units/{index}/reference_id", ref)
    _check_strings(unit, ref)
    amount = unit.get("amount")
    if amount is None:
        raise issue(400, "MISSING_REQUIRED_PARAMETER", _field(ref, "/amount"))
    code, total = parse_money(amount, _field(ref, "/amount"), currency, positive=True)
    breakdown = amount.get("breakdown")
    items = unit.get("items")
    parts: dict[str, int] = {}
    if breakdown is not None:
        if not isinstance(breakdown, dict):
            raise issue(400, "INVALID_PARAMETER_SYNTAX", _field(ref, "/amount/breakdown"))
        for key in (*BREAKDOWN_ADD, *BREAKDOWN_SUB):
            if breakdown.get(key) is not None:
                _, parts[key] = parse_money(breakdown[key],
                                            _field(ref, f"/amount/breakdown/{key}"), code)
        expected = (sum(parts.get(k, 0) for k in BREAKDOWN_ADD)
                    - sum(parts.get(k, 0) for k in BREAKDOWN_SUB))
        if expected != total:
            raise issue(422, "AMOUNT_MISMATCH", _field(ref, "/amount/value"), amount["value"])
    if items is not None:
        item_sum, tax_sum, any_tax = _items_total(items, ref, code)
        if breakdown is None or breakdown.get("item_total") is None:
            raise issue(422, "ITEM_TOTAL_REQUIRED", _field(ref, "/amount/breakdown/item_total"))
        if item_sum != parts.get("item_total"):
            raise issue(422, "ITEM_TOTAL_MISMATCH", _field(ref, "/amount/breakdown/item_total"),
                        breakdown["item_total"].get("value"))
        if any_tax and "tax_total" not in parts:
            raise issue(422, "TAX_TOTAL_REQUIRED", _field(ref, "/amount/breakdown/tax_total"))
        if any_tax and tax_sum != parts["tax_total"]:
            raise issue(422, "TAX_TOTAL_MISMATCH", _field(ref, "/amount/breakdown/tax_total"),
                        breakdown["tax_total"].get("value"))
    return PurchaseUnit(reference_id=ref, currency=code, amount_minor=total, raw=unit,
                        custom_id=unit.get("custom_id"), invoice_id=unit.get("invoice_id"))


def parse_units(units: Any) -> list[PurchaseUnit]:
    """Validate `purchase_units`: 1–10 units, one currency, distinct reference ids."""
    if units is None:
        raise issue(400, "MISSING_REQUIRED_PARAMETER", "/purchase_units")
    if not isinstance(units, list):
        raise issue(400, "INVALID_PARAMETER_SYNTAX", "/purchase_units")
    if not units:
        raise issue(400, "INVALID_ARRAY_MIN_ITEMS", "/purchase_units")
    if len(units) > MAX_UNITS:
        raise issue(400, "INVALID_ARRAY_MAX_ITEMS", "/purchase_units")
    parsed: list[PurchaseUnit] = []
    currency: str | None = None
    for i, unit in enumerate(units):
        pu = parse_unit(unit, i, len(units) == 1, currency)
        currency = pu.currency
        if any(p.reference_id == pu.reference_id for p in parsed):
            raise issue(422, "DUPLICATE_REFERENCE_ID", f"/purchase_units/{i}/reference_id",
                        pu.reference_id)
        parsed.append(pu)
    return parsed


def parse_intent(body: dict[str, Any]) -> str:
    """The order's intent: CAPTURE or AUTHORIZE."""
    intent = body.get("intent")
    if intent is None:
        raise issue(400, "MISSING_REQUIRED_PARAMETER", "/intent")
    if intent not in ("CAPTURE", "AUTHORIZE"):
        raise PayPalError(400, [Detail("INVALID_PARAMETER_VALUE", "/intent", str(intent)[:127])])
    return str(intent)


def experience_urls(body: dict[str, Any]) -> tuple[str | None, str | None, bool]:
    """return_url, cancel_url, and whether a PayPal payment_source was given."""
    ctx: Any = None
    source = body.get("payment_source")
    wallet = False
    if isinstance(source, dict) and isinstance(source.get("paypal"), dict):
        wallet = True
        ctx = source["paypal"].get("experience_context")
    if not isinstance(ctx, dict):
        ctx = body.get("application_context")
    if not isinstance(ctx, dict):
        return None, None, wallet
    urls: list[str | None] = []
    for key in ("return_url", "cancel_url"):
        v = ctx.get(key)
        if v is not None and (not isinstance(v, str) or not re.match(r"^https?://", v)
                              or len(v) > 4000):
            raise issue(400, "INVALID_PARAMETER_SYNTAX", f"/application_context/{key}", v)
        urls.append(v)
    return urls[0], urls[1], wallet
