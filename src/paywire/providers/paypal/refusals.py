"""PayPal's refusals (a non-2xx answer, REST or OAuth shape) as typed `ProviderError`s.

Pure: no I/O. The kind decides what paywire does next (retry, ask the payer, give up, flag), so
every issue PayPal documents is placed in `ISSUE_KINDS`; one not listed falls back on the HTTP
status, and anything else is the explicit unknown rather than a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paywire.domain.errors import ProviderError
from paywire.providers.paypal.mapping import PROVIDER


def _kinds(kind: str, names: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), kind)


# PayPal issue (or error name) -> what it means to paywire. Issues not listed fall back on the
# HTTP status (STATUS_KINDS); 401, 429 and 5xx are decided by status before any issue.
ISSUE_KINDS: dict[str, str] = {
    **_kinds("already_done", "ORDER_ALREADY_CAPTURED ORDER_ALREADY_AUTHORIZED "
             "AUTHORIZATION_ALREADY_CAPTURED CAPTURE_FULLY_REFUNDED PREVIOUSLY_CAPTURED "
             "PREVIOUSLY_VOIDED ORDER_ALREADY_COMPLETED ORDER_COMPLETED_OR_VOIDED"),
    **_kinds("duplicate_invoice", "DUPLICATE_INVOICE_ID"),
    **_kinds("not_approved", "ORDER_NOT_APPROVED"),
    **_kinds("payer_action", "INSTRUMENT_DECLINED PAYER_ACTION_REQUIRED "
             "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING"),
    **_kinds("declined", "TRANSACTION_REFUSED PAYER_CANNOT_PAY PAYER_ACCOUNT_LOCKED_OR_CLOSED "
             "PAYER_ACCOUNT_RESTRICTED PAYEE_ACCOUNT_RESTRICTED PAYEE_BLOCKED_TRANSACTION "
             "COMPLIANCE_VIOLATION TRANSACTION_LIMIT_EXCEEDED "
             "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED AUTHORIZATION_DENIED "
             "AUTHORIZATION_EXPIRED AUTHORIZATION_VOIDED REFUND_NOT_ALLOWED "
             "REFUND_TIME_LIMIT_EXCEEDED REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK "
             "REFUND_FAILED_INSUFFICIENT_FUNDS TRANSACTION_DISPUTED PARTIAL_REFUND_NOT_ALLOWED "
             "PENDING_CAPTURE"),
    **_kinds("over_refund", "REFUND_AMOUNT_EXCEEDED"),
    **_kinds("not_found", "RESOURCE_NOT_FOUND INVALID_RESOURCE_ID ORDER_EXPIRED"),
    **_kinds("auth", "AUTHENTICATION_FAILURE NOT_AUTHORIZED PERMISSION_DENIED "
             "INVALID_ACCOUNT_STATUS invalid_client invalid_token"),
    **_kinds("invalid", "INVALID_REQUEST DECIMAL_PRECISION DECIMALS_NOT_SUPPORTED "
             "INVALID_CURRENCY_CODE CURRENCY_MISMATCH AUTH_CURRENCY_MISMATCH "
             "AUTH_CAPTURE_CURRENCY_MISMATCH REFUND_CAPTURE_CURRENCY_MISMATCH AMOUNT_MISMATCH "
             "ITEM_TOTAL_MISMATCH ITEM_TOTAL_REQUIRED TAX_TOTAL_MISMATCH TAX_TOTAL_REQUIRED "
             "MALFORMED_REQUEST_JSON INVALID_PARAMETER_SYNTAX INVALID_PARAMETER_VALUE "
             "INVALID_STRING_LENGTH MISSING_REQUIRED_PARAMETER INVALID_ARRAY_MAX_ITEMS "
             "INVALID_ARRAY_MIN_ITEMS INVALID_COUNTRY_CODE NOT_SUPPORTED "
             "PAYPAL_REQUEST_ID_REQUIRED CANNOT_BE_NEGATIVE CANNOT_BE_ZERO_OR_NEGATIVE "
             "MAX_VALUE_EXCEEDED MULTI_CURRENCY_ORDER DUPLICATE_REFERENCE_ID "
             "REFERENCE_ID_REQUIRED REFERENCE_ID_NOT_FOUND UNSUPPORTED_INTENT "
             "ACTION_DOES_NOT_MATCH_INTENT ITEM_CATEGORY_NOT_SUPPORTED_BY_PAYMENT_SOURCE "
             "INVALID_PAYER_ID AMOUNT_NOT_PATCHABLE FIELD_NOT_PATCHABLE NOT_PATCHABLE "
             "INVALID_JSON_POINTER_FORMAT INVALID_PATCH_OPERATION PATCH_PATH_REQUIRED "
             "PATCH_VALUE_REQUIRED UNSUPPORTED_PATCH_PARAMETER_VALUE "
             "MAX_CAPTURE_AMOUNT_EXCEEDED MAX_CAPTURE_COUNT_EXCEEDED "
             "MAX_AUTHORIZATION_COUNT_EXCEEDED REAUTHORIZATION_NOT_SUPPORTED CANNOT_BE_VOIDED "
             "REFUND_AMOUNT_TOO_LOW invalid_request unsupported_grant_type "
             # Reauthorize refusals on PayPal's Payments v2 error pages, not in its OpenAPI
             # file: asking inside the 3-day honor period, or above 115% / USD 75 over the
             # original. Neither comes right by retrying the same call.
             "REAUTHORIZATION_TOO_SOON AUTHORIZATION_AMOUNT_EXCEEDED"),
}
STATUS_KINDS: dict[int, str] = {400: "invalid", 401: "auth", 403: "auth", 404: "not_found"}


def error_kind(status: int, name: str | None, issue: str | None) -> str:
    """The `ProviderError.kind` of a PayPal refusal."""
    if status == 429 or status >= 500:
        return "transient"
    if status == 401:
        return "auth"
    for key in (issue, name):
        if key is not None and key in ISSUE_KINDS:
            return ISSUE_KINDS[key]
    return STATUS_KINDS.get(status, "unknown")


def error_from_response(status: int, body: Any, *, what: str,
                        debug_id: str | None = None) -> ProviderError:
    """A non-2xx answer (REST or OAuth shape, or no JSON at all) as a typed ProviderError."""
    name = issue = description = None
    if isinstance(body, Mapping):
        raw_name = body.get("name", body.get("error"))
        name = raw_name if isinstance(raw_name, str) else None
        details = body.get("details")
        first = details[0] if isinstance(details, list) and details else None
        if isinstance(first, Mapping):
            issue = first.get("issue") if isinstance(first.get("issue"), str) else None
            text = first.get("description")
            description = text[:300] if isinstance(text, str) else None
        if isinstance(body.get("debug_id"), str):
            debug_id = body["debug_id"]
    kind = error_kind(status, name, issue)
    if name == "invalid_client":
        message = f"PayPal refused the client id/secret for {what} (invalid_client)"
    else:
        message = f"PayPal {what} failed: HTTP {status} {name or 'error'}" + (
            f" {issue}" if issue else "")
    return ProviderError(message, provider=PROVIDER, kind=kind, status=status, name=name,
                         issue=issue, debug_id=debug_id, retryable=kind == "transient",
                         details={"description": description} if description else None)
