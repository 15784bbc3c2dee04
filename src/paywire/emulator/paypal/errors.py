"""PayPal's error shape, and the exact issue descriptions its OpenAPI files document.

Handlers raise `PayPalError` with issue names only; `render` fills each description from the
table of the operation that answered, so one issue name can carry the per-operation wording PayPal
documents (e.g. ORDER_NOT_APPROVED reads differently for capture and authorize).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paywire.emulator.paypal.issues import (
    ERROR_PAGE_ISSUES,
    GENERIC_DESCRIPTIONS,
    OPERATION_TABLES,
    SCHEMA_ISSUES,
    STATUS_NAMES,
)


def api_of(operation: str) -> str:
    """The OpenAPI file an operation id belongs to."""
    head = operation.split(".", 1)[0]
    if head in ("orders",):
        return "orders"
    if head in ("authorizations", "captures", "refunds"):
        return "payments"
    return head


def describe(operation: str, status: int, issue: str) -> str | None:
    """PayPal's documented description of `issue` when `operation` answers `status`."""
    documented = ERROR_PAGE_ISSUES.get((operation, status), {})
    if issue in documented:
        return documented[issue]
    table = OPERATION_TABLES.get((operation, status), f"{api_of(operation)}:{status}")
    for key in (table, f"{api_of(operation)}:{status}"):
        found = SCHEMA_ISSUES.get(key, {})
        if issue in found:
            return found[issue]
    for issues in SCHEMA_ISSUES.values():
        if issues.get(issue):
            return issues[issue]
    return GENERIC_DESCRIPTIONS.get(issue)


@dataclass(frozen=True)
class Detail:
    """One `details[]` entry: the issue and where it was found."""

    issue: str
    field: str | None = None
    value: str | None = None
    location: str | None = "body"


@dataclass
class PayPalError(Exception):
    """An answer in PayPal's error shape; raised by handlers, rendered by the router."""

    status: int
    details: list[Detail] = field(default_factory=list)
    message: str | None = None

    def __str__(self) -> str:
        issues = ",".join(d.issue for d in self.details)
        return f"PayPal {self.status} {issues}"


def issue(status: int, name: str, field: str | None = None, value: Any = None,
          location: str | None = "body") -> PayPalError:
    """Shorthand for a one-issue error."""
    shown = None if value is None else str(value)[:127]
    return PayPalError(status, [Detail(name, field, shown, location if field else None)])


def render(err: PayPalError, operation: str, debug_id: str) -> dict[str, Any]:
    """The JSON body PayPal sends for `err` from `operation`."""
    name, message = STATUS_NAMES.get(err.status, STATUS_NAMES[500])
    body: dict[str, Any] = {"name": name, "message": err.message or message, "debug_id": debug_id}
    if err.details:
        details = []
        for d in err.details:
            item: dict[str, Any] = {"issue": d.issue}
            if d.field is not None:
                item["field"] = d.field
            if d.value is not None:
                item["value"] = d.value
            if d.location is not None and d.field is not None:
                item["location"] = d.location
            desc = describe(operation, err.status, d.issue)
            if desc is not None:
                item["description"] = desc
            details.append(item)
        body["details"] = details
        first = err.details[0].issue
        api = api_of(operation)
        doc = {"orders": "orders/v2", "payments": "payments/v2",
               "disputes": "customer/disputes/v1"}.get(api, "webhooks/v1")
        body["links"] = [{
            "href": f"https://developer.paypal.com/api/rest/reference/{doc}/errors/#{first}",
            "rel": "information_link",
            "method": "GET",
        }]
    return body
