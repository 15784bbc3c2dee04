"""Validation of Payments v2 request bodies (refund, authorization capture, reauthorize).

Each check raises the issue PayPal documents for the operation at hand; payments' 400 tables do
not list MALFORMED_REQUEST_JSON, so unparseable bodies read as INVALID_PARAMETER_SYNTAX.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from paywire.emulator.paypal.currencies import MoneyFormatError, parse_value
from paywire.emulator.paypal.errors import PayPalError, issue
from paywire.emulator.paypal.http import Ctx


def not_found(name: str, value: str) -> PayPalError:
    """PayPal's 404 for an unknown (or another app's) payment resource."""
    return issue(404, "INVALID_RESOURCE_ID", name, value, location="path")


def body_of(ctx: Ctx) -> dict[str, Any]:
    """The optional JSON object body; an empty body is `{}`."""
    try:
        return ctx.json_body(required=False)
    except PayPalError as err:
        raise issue(400, "INVALID_PARAMETER_SYNTAX", "/", location="body") from err


def optional_str(body: dict[str, Any], name: str, max_len: int) -> str | None:
    """A string field of 1..`max_len` characters, or None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise issue(400, "INVALID_PARAMETER_SYNTAX", f"/{name}", value)
    if not 1 <= len(value) <= max_len:
        raise issue(400, "INVALID_STRING_LENGTH", f"/{name}", value)
    return value


def optional_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean field, `default` when absent."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise issue(400, "INVALID_PARAMETER_SYNTAX", f"/{name}", value)
    return value


def optional_amount(body: dict[str, Any], *, too_large: str) -> tuple[str, int] | None:
    """The `amount` money object as (currency, minor units), or None when absent.

    `too_large` is the operation's issue for a value beyond PayPal's maximum (it always exceeds
    what is left to refund or capture).
    """
    raw = body.get("amount")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise issue(400, "INVALID_PARAMETER_SYNTAX", "/amount", raw)
    currency, value = raw.get("currency_code"), raw.get("value")
    if currency is None:
        raise issue(400, "MISSING_REQUIRED_PARAMETER", "/amount/currency_code")
    if value is None:
        raise issue(400, "MISSING_REQUIRED_PARAMETER", "/amount/value")
    if not isinstance(currency, str) or not isinstance(value, str):
        raise issue(400, "INVALID_PARAMETER_SYNTAX", "/amount", raw)
    if value.startswith("-"):
        raise issue(422, "CANNOT_BE_ZERO_OR_NEGATIVE", "/amount/value", value)
    try:
        minor = parse_value(currency, value)
    except MoneyFormatError as exc:
        if exc.issue == "INVALID_PARAMETER_SYNTAX":
            raise issue(400, exc.issue, "/amount/value", value) from exc
        if exc.issue == "INVALID_CURRENCY_CODE":
            raise issue(422, exc.issue, "/amount/currency_code", currency) from exc
        if exc.issue == "MAX_VALUE_EXCEEDED":
            raise issue(422, too_large, "/amount/value", value) from exc
        raise issue(422, exc.issue, "/amount/value", value) from exc
    if minor == 0:
        raise issue(422, "CANNOT_BE_ZERO_OR_NEGATIVE", "/amount/value", value)
    return currency, minor


def shaped(ctx: Ctx, full: dict[str, Any], status: int) -> Response:
    """`full` with `Prefer: return=representation`, else PayPal's minimal id/status/links."""
    if ctx.prefer_representation():
        return ctx.json(full, status)
    return ctx.json({"id": full["id"], "status": full["status"], "links": full["links"]}, status)
