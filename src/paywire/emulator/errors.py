"""PayPal's error shape, and the exact issue descriptions its OpenAPI files document.

Handlers raise `PayPalError` with issue names only; `render` fills each description from the
table of the operation that answered, so one issue name can carry the per-operation wording PayPal
documents (e.g. ORDER_NOT_APPROVED reads differently for capture and authorize).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUS_NAMES: dict[int, tuple[str, str]] = {
    400: ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema."),
    401: (
        "AUTHENTICATION_FAILURE",
        "Authentication failed due to missing authorization header, or invalid authentication "
        "credentials.",
    ),
    403: ("NOT_AUTHORIZED", "Authorization failed due to insufficient permissions."),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    409: ("RESOURCE_CONFLICT", "The server has detected a conflict while processing this request."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "The server does not support the request payload's media type."),
    422: (
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed business "
        "validation.",
    ),
    429: ("RATE_LIMIT_REACHED", "Too many requests. Blocked due to rate limiting."),
    500: ("INTERNAL_SERVER_ERROR", "An internal server error occurred."),
    503: ("SERVICE_UNAVAILABLE", "Service Unavailable."),
}

# Which error-detail table each (operation, status) is documented with; others use "<api>:<status>".
OPERATION_TABLES: dict[tuple[str, int], str] = {
    ("orders.patch", 400): "orders:orders.patch-400",
    ("orders.patch", 422): "orders:orders.patch-422",
    ("orders.authorize", 400): "orders:orders.authorize-400",
    ("orders.authorize", 403): "orders:orders.authorize-403",
    ("orders.authorize", 422): "orders:orders.authorize-422",
    ("orders.capture", 400): "orders:orders.capture-400",
    ("orders.capture", 403): "orders:orders.capture-403",
    ("orders.capture", 422): "orders:orders.capture-422",
    ("orders.confirm", 400): "orders:orders.confirm-400",
    ("orders.confirm", 422): "orders:orders.confirm-422",
    ("authorizations.reauthorize", 400): "payments:authorizations.reauthorize-400",
    ("authorizations.reauthorize", 422): "payments:authorizations.reauthorize-422",
    ("authorizations.void", 422): "payments:authorizations.void-422",
    ("captures.refund", 400): "payments:captures.refund-400",
    ("captures.refund", 422): "payments:captures.refund-422",
}

SCHEMA_ISSUES: dict[str, dict[str, str | None]] = {
    'orders:400': {
        'INVALID_ARRAY_MAX_ITEMS': 'The number of items in an array parameter is too large.',
        'INVALID_ARRAY_MIN_ITEMS': 'The number of items in an array parameter is too small.',
        'INVALID_COUNTRY_CODE': 'Country code is invalid. Please refer to https://developer.paypal.com/api/rest/reference/country-codes/ for a list of supported country codes.',
        'INVALID_PARAMETER_SYNTAX': 'The value of a field does not conform to the expected format.',
        'INVALID_PARAMETER_VALUE': 'A parameter value is not valid.',
        'INVALID_STRING_LENGTH': 'The value of a field is either too short or too long',
        'MALFORMED_REQUEST_JSON': 'The request JSON is not well formed.',
        'MISSING_REQUIRED_PARAMETER': 'A required parameter is missing.',
        'NOT_SUPPORTED': 'This field is not currently supported.',
        'PAYPAL_REQUEST_ID_REQUIRED': "A PayPal-Request-Id is required if you are trying to process payment for an Order. Please specify a PayPal-Request-Id or Create the Order without a 'payment_source' specified.",
    },
    'orders:401': {
        'INVALID_ACCOUNT_STATUS': 'Account validations failed for the user.',
    },
    'orders:403': {
        'PERMISSION_DENIED': 'You do not have permission to access or perform operations on this resource.',
    },
    'orders:404': {
        'INVALID_RESOURCE_ID': 'Specified resource ID does not exist. Please check the resource ID and try again.',
    },
    'orders:422': {
        'AMOUNT_MISMATCH': 'Should equal item_total + tax_total + shipping + handling + insurance - shipping_discount - discount.',
        'CANNOT_BE_NEGATIVE': 'Must be greater than or equal to 0. If the currency supports decimals, only two decimal place precision is supported.',
        'CANNOT_BE_ZERO_OR_NEGATIVE': 'Must be greater than zero. If the currency supports decimals, only two decimal place precision is supported.',
        'COMPLIANCE_VIOLATION': 'Transaction is declined due to compliance violation.',
        'DECIMAL_PRECISION': 'If the currency supports decimals, only two decimal place precision is supported.',
        'DUPLICATE_INVOICE_ID': 'Duplicate Invoice ID detected. To avoid a potential duplicate transaction your account setting requires that Invoice Id be unique for each transaction.',
        'DUPLICATE_REFERENCE_ID': '`reference_id` must be unique if multiple `purchase_unit` are provided.',
        'INSTRUMENT_DECLINED': "The instrument presented  was either declined by the processor or bank, or it can't be used for this payment.",
        'INVALID_CURRENCY_CODE': 'Currency code is invalid or is not currently supported. Please refer https://developer.paypal.com/api/rest/reference/currency-codes/ for list of supported currency codes.',
        'INVALID_PAYER_ID': 'The payer ID is not valid.',
        'ITEM_TOTAL_MISMATCH': 'Should equal sum of (unit_amount * quantity) across all items for a given purchase_unit.',
        'ITEM_TOTAL_REQUIRED': 'If item details are specified (items.unit_amount and items.quantity) corresponding amount.breakdown.item_total is required.',
        'MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED': 'You have exceeded the maximum number of payment attempts.',
        'MAX_VALUE_EXCEEDED': 'Should be less than or equal to 999999999999999.99.',
        'MULTI_CURRENCY_ORDER': 'Multiple differing values of currency_code are not supported. Entire Order request must have the same currency_code.',
        'PAYEE_ACCOUNT_RESTRICTED': 'The merchant account is restricted.',
        'PAYEE_BLOCKED_TRANSACTION': 'The Fraud settings for this seller are such that this payment cannot be executed.',
        'PAYER_ACCOUNT_LOCKED_OR_CLOSED': 'The payer account cannot be used for this transaction.',
        'PAYER_ACCOUNT_RESTRICTED': 'PAYER_ACCOUNT_RESTRICTED',
        'PAYER_CANNOT_PAY': 'Combination of payer and payee settings mean that this buyer cannot pay this seller.',
        'REFERENCE_ID_REQUIRED': "'reference_id' is required for each 'purchase_unit' if multiple 'purchase_unit' are provided.",
        'TAX_TOTAL_MISMATCH': 'Should equal sum of (tax * quantity) across all items for a given purchase_unit.',
        'TAX_TOTAL_REQUIRED': 'If item details are specified (items.tax_total and items.quantity) corresponding amount.breakdown.tax_total is required.',
        'TRANSACTION_LIMIT_EXCEEDED': 'Total payment amount exceeded transaction limit.',
        'TRANSACTION_REFUSED': 'The request was refused.',
        'UNSUPPORTED_INTENT': '`intent=AUTHORIZE` is not supported for multiple purchase units. Only `intent=CAPTURE` is supported.',
    },
    'orders:orders.authorize-400': {
        'INVALID_COUNTRY_CODE': 'Country code is invalid. Please refer to https://developer.paypal.com/api/rest/reference/country-codes/ for a list of supported country codes.',
        'INVALID_PARAMETER_SYNTAX': 'The value of a field does not conform to the expected format.',
        'INVALID_PARAMETER_VALUE': 'A parameter value is not valid.',
        'INVALID_STRING_LENGTH': 'The value of a field is either too short or too long',
        'MALFORMED_REQUEST_JSON': 'The request JSON is not well formed.',
        'MISSING_REQUIRED_PARAMETER': 'A required field / parameter is missing',
    },
    'orders:orders.authorize-403': {
        'PERMISSION_DENIED': 'You do not have permission to access or perform operations on this resource.',
    },
    'orders:orders.authorize-422': {
        'DUPLICATE_INVOICE_ID': 'Duplicate Invoice ID detected. To avoid a potential duplicate transaction your account setting requires that Invoice Id be unique for each transaction.',
        'MAX_AUTHORIZATION_COUNT_EXCEEDED': 'Maximum number of authorization allowed for the order is reached. Please contact Customer Support if you need to increase your limit.',
        'MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED': 'You have exceeded the maximum number of payment attempts.',
        'ORDER_ALREADY_AUTHORIZED': "Order already authorized.If 'intent=AUTHORIZE' only one authorization per order is allowed.",
        'ORDER_COMPLETED_OR_VOIDED': 'Order is voided or completed and hence cannot be authorized.',
        'ORDER_EXPIRED': 'Order is expired and hence cannot be authorized. Please contact Customer Support if you need to increase your order validity period.',
        'ORDER_NOT_APPROVED': "Payer has not yet approved the Order for payment. Please redirect the payer to the 'rel':'approve' url returned as part of the HATEOAS links within the Create Order call.",
        'PAYEE_BLOCKED_TRANSACTION': 'The Fraud settings for this seller are such that this payment cannot be executed.',
        'PAYER_ACCOUNT_LOCKED_OR_CLOSED': 'The payer account cannot be used for this transaction.',
        'PAYER_ACCOUNT_RESTRICTED': 'PAYER_ACCOUNT_RESTRICTED',
        'PAYER_ACTION_REQUIRED': 'Transaction cannot complete successfully, instruct the buyer to return to PayPal.',
        'PAYER_CANNOT_PAY': 'Payer cannot pay for this transaction. Please contact the payer to find other ways to pay for this transaction.',
        'TRANSACTION_LIMIT_EXCEEDED': 'Total payment amount exceeded transaction limit.',
        'TRANSACTION_REFUSED': 'The request was refused.',
    },
    'orders:orders.capture-400': {
        'INVALID_PARAMETER_SYNTAX': 'The value of a field does not conform to the expected format.',
        'INVALID_PARAMETER_VALUE': 'A parameter value is not valid.',
        'INVALID_STRING_LENGTH': 'The value of a field is either too short or too long',
        'MALFORMED_REQUEST_JSON': 'The request JSON is not well formed.',
        'MISSING_REQUIRED_PARAMETER': 'A required field / parameter is missing',
    },
    'orders:orders.capture-403': {
        'PERMISSION_DENIED': 'You do not have permission to access or perform operations on this resource.',
    },
    'orders:orders.capture-422': {
        'COMPLIANCE_VIOLATION': 'Transaction is declined due to compliance violation.',
        'DUPLICATE_INVOICE_ID': 'Duplicate Invoice ID detected. To avoid a potential duplicate transaction your account setting requires that Invoice Id be unique for each transaction.',
        'INSTRUMENT_DECLINED': "The instrument presented  was either declined by the processor or bank, or it can't be used for this payment.",
        'MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED': 'You have exceeded the maximum number of payment attempts.',
        'ORDER_ALREADY_CAPTURED': "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
        'ORDER_NOT_APPROVED': "Payer has not yet approved the Order for payment. Please redirect the payer to the 'rel':'approve' url returned as part of the HATEOAS links within the Create Order call or provide a valid `payment_source` in the request.",
        'PAYEE_BLOCKED_TRANSACTION': 'The Fraud settings for this seller are such that this payment cannot be executed.',
        'PAYER_ACCOUNT_LOCKED_OR_CLOSED': 'The payer account cannot be used for this transaction.',
        'PAYER_ACCOUNT_RESTRICTED': 'PAYER_ACCOUNT_RESTRICTED',
        'PAYER_ACTION_REQUIRED': 'Transaction cannot complete successfully, instruct the buyer to return to PayPal.',
        'PAYER_CANNOT_PAY': 'Payer cannot pay for this transaction. Please contact the payer to find other ways to pay for this transaction.',
        'TRANSACTION_LIMIT_EXCEEDED': 'Total payment amount exceeded transaction limit.',
        'TRANSACTION_REFUSED': 'The request was refused.',
    },
    'orders:orders.confirm-400': {
        'INVALID_PARAMETER_SYNTAX': 'The value of the field does not conform to the expected format.',
        'INVALID_PARAMETER_VALUE': 'A parameter value is not valid.',
        'INVALID_STRING_LENGTH': 'The value of a field is either too short or too long',
        'MALFORMED_REQUEST_JSON': 'The request JSON is not well formed.',
        'MISSING_REQUIRED_PARAMETER': 'A required field / parameter is missing',
    },
    'orders:orders.confirm-422': {
        'ITEM_CATEGORY_NOT_SUPPORTED_BY_PAYMENT_SOURCE': 'The provided payment source does not support provided item category.',
        'ORDER_ALREADY_AUTHORIZED': "Order already captured. If 'intent=CAPTURE' only one capture per order is allowed.",
        'ORDER_ALREADY_CAPTURED': "Order already captured. If 'intent=CAPTURE' only one capture per order is allowed.",
        'TRANSACTION_LIMIT_EXCEEDED': 'Total payment amount exceeded transaction limit.',
    },
    'orders:orders.patch-400': {
        'AMOUNT_NOT_PATCHABLE': "The amount cannot be updated as the 'payer' has chosen and approved a specific financing offer for a given amount. Please Create a new Order with the updated Order amount and have the 'payer' approve the new payment terms.",
        'FIELD_NOT_PATCHABLE': 'Field cannot be patched.',
        'INVALID_ARRAY_MAX_ITEMS': 'The number of items in an array parameter is too large.',
        'INVALID_PARAMETER_SYNTAX': 'The value of a field does not conform to the expected format.',
        'INVALID_PARAMETER_VALUE': 'The value of a field is invalid.',
        'INVALID_PATCH_OPERATION': "The operation cannot be honored. Cannot add a property that's already present, use replace. Cannot remove a property thats not present, use add. Cannot replace a property thats not present, use add.",
        'INVALID_STRING_LENGTH': 'The value of a field is either too short or too long',
        'MALFORMED_REQUEST_JSON': 'The request JSON is not well formed.',
        'MISSING_REQUIRED_PARAMETER': 'A required field / parameter is missing.',
    },
    'orders:orders.patch-422': {
        'AMOUNT_MISMATCH': 'Should equal item_total + tax_total + shipping + handling + insurance - shipping_discount - discount.',
        'CANNOT_BE_NEGATIVE': 'Must be greater than or equal to 0. If the currency supports decimals, only two decimal place precision is supported.',
        'CANNOT_BE_ZERO_OR_NEGATIVE': 'Must be greater than zero. If the currency supports decimals, only two decimal place precision is supported.',
        'DECIMAL_PRECISION': 'If the currency supports decimals, only two decimal place precision is supported.',
        'DUPLICATE_REFERENCE_ID': '`reference_id` must be unique if multiple `purchase_unit` are provided.',
        'INVALID_CURRENCY_CODE': 'Currency code is invalid or is not currently supported. Please refer https://developer.paypal.com/api/rest/reference/currency-codes/ for list of supported currency codes.',
        'INVALID_JSON_POINTER_FORMAT': 'Path should be a valid JSON Pointer https://tools.ietf.org/html/rfc6901 that references a location within the request where the operation is performed.',
        'ITEM_TOTAL_MISMATCH': 'Should equal sum of (unit_amount * quantity) across all items for a given purchase_unit.',
        'ITEM_TOTAL_REQUIRED': 'If item details are specified (items.unit_amount and items.quantity) corresponding amount.breakdown.item_total is required.',
        'MAX_VALUE_EXCEEDED': 'Should be less than or equal to 999999999999999.99.',
        'MULTI_CURRENCY_ORDER': 'Multiple differing values of currency_code are not supported. Entire Order request must have the same currency_code.',
        'NOT_PATCHABLE': 'Cannot be patched.',
        'ORDER_ALREADY_COMPLETED': 'The order cannot be patched after it is completed.',
        'PATCH_PATH_REQUIRED': "Please specify a 'path' for the field for which the operation needs to be performed.",
        'PATCH_VALUE_REQUIRED': "Please specify a 'value' to for the field that is being patched.",
        'PAYEE_ACCOUNT_RESTRICTED': 'The merchant account is restricted.',
        'REFERENCE_ID_NOT_FOUND': 'Filter expression value is incorrect. Please check the value of the reference_id and try again.',
        'REFERENCE_ID_REQUIRED': "'reference_id' is required for each 'purchase_unit' if multiple 'purchase_unit' are provided.",
        'TAX_TOTAL_MISMATCH': 'Should equal sum of (tax * quantity) across all items for a given purchase_unit.',
        'TAX_TOTAL_REQUIRED': 'If item details are specified (items.tax_total and items.quantity) corresponding amount.breakdown.tax_total is required.',
        'UNSUPPORTED_INTENT': '`intent=AUTHORIZE` is not supported for multiple purchase units. Only `intent=CAPTURE` is supported.',
        'UNSUPPORTED_PATCH_PARAMETER_VALUE': 'The value specified for this field is not currently supported.',
    },
    'orders:orders.track.create-400': {
        'INVALID_PARAMETER_SYNTAX': 'The value of a field does not conform to the expected format.',
        'INVALID_PARAMETER_VALUE': 'A parameter value is not valid.',
        'INVALID_STRING_LENGTH': 'The value of a field is either too short or too long.',
        'MISSING_REQUIRED_PARAMETER': 'A required field / parameter is missing.',
    },
    'orders:orders.track.create-403': {
        'PERMISSION_DENIED': 'You do not have permission to access or perform operations on this resource.',
    },
    'orders:orders.trackers.patch-400': {
        'FIELD_NOT_PATCHABLE': 'Field cannot be patched.',
        'INVALID_PARAMETER_VALUE': 'The value of a field is invalid.',
        'INVALID_PATCH_OPERATION': "The operation cannot be honored. Cannot add a property that's already present, use replace. Cannot remove a property thats not present, use add. Cannot replace a property thats not present, use add.",
        'INVALID_STRING_LENGTH': 'The value of a field is either too short or too long.',
        'MALFORMED_REQUEST_JSON': 'The request JSON is not well formed.',
        'MISSING_REQUIRED_PARAMETER': 'A required field or parameter is missing.',
    },
    'orders:orders.trackers.patch-403': {
        'PERMISSION_DENIED': 'You do not have permission to access or perform operations on this resource.',
    },
    'orders:orders.trackers.patch-422': {
        'INVALID_JSON_POINTER_FORMAT': 'Path should be a valid [JSON Pointer](https://tools.ietf.org/html/rfc6901) that references a location within the request where the operation is performed.',
        'NOT_PATCHABLE': 'Cannot be patched.',
        'PATCH_PATH_REQUIRED': 'Specify a `value` for the field in which the operation needs to be performed.',
        'PATCH_VALUE_REQUIRED': 'Specify a `value` for the field being patched.',
    },
    'payments:400': {
        'INVALID_PARAMETER_SYNTAX': 'The value of a field does not conform to the expected format.',
        'INVALID_PARAMETER_VALUE': 'The value of a field is invalid.',
        'INVALID_STRING_LENGTH': 'The value of a field is either too short or too long.',
        'MISSING_REQUIRED_PARAMETER': 'A required field / parameter is missing.',
    },
    'payments:401': {
        'INVALID_ACCOUNT_STATUS': 'Account validations failed for the user.',
    },
    'payments:403': {
        'PERMISSION_DENIED': 'You do not have permission to access or perform operations on this resource.',
    },
    'payments:404': {
        'INVALID_RESOURCE_ID': 'Specified resource ID does not exist. Please check the resource ID and try again.',
    },
    'payments:422': {
        'AUTHORIZATION_ALREADY_CAPTURED': 'Authorization has previously been captured.',
        'AUTHORIZATION_DENIED': 'An denied authorization cannot be captured.',
        'AUTHORIZATION_EXPIRED': 'An expired authorization cannot be captured.',
        'AUTHORIZATION_VOIDED': 'A voided authorization cannot be captured or reauthorized. ',
        'AUTH_CAPTURE_CURRENCY_MISMATCH': 'Currency of capture must be the same as currency of authorization.',
        'CANNOT_BE_ZERO_OR_NEGATIVE': 'Must be greater than zero. If the currency supports decimals, only two decimal place precision is supported.',
        'DECIMALS_NOT_SUPPORTED': 'Currency does not support decimals. Please refer to https://developer.paypal.com/docs/api/reference/currency-codes/ for more information.',
        'DECIMAL_PRECISION': 'If the currency supports decimals, only two decimal place precision is supported.',
        'DUPLICATE_INVOICE_ID': 'Requested invoice_id has been previously captured. Possible duplicate transaction.',
        'INVALID_CURRENCY_CODE': 'Currency code is invalid or is not currently supported. Please refer https://developer.paypal.com/docs/api/reference/currency-codes/ for list of supported currency codes.',
        'MAX_CAPTURE_AMOUNT_EXCEEDED': 'Capture amount exceeds allowable limit. Please contact customer service or your account manager to request the change to your overage limit. The default overage limit is 115%, which allows the sum of all captures to be up to 115% of the order amount. The ability to over capture is subjected to regulatory approvals.',
        'MAX_CAPTURE_COUNT_EXCEEDED': 'Maxmimum number of allowable captures has been reached. No additional captures are possible for this authorization. Contact Customer Service or your account manager to change the number of captures for a given authorization.',
        'PAYEE_ACCOUNT_RESTRICTED': 'Payee account is restricted.',
        'PAYER_ACCOUNT_LOCKED_OR_CLOSED': 'The payer account cannot be used for this transaction.',
        'PAYER_CANNOT_PAY': 'Payer cannot pay for this transaction. Please contact the payer to find other ways to pay for this transaction.',
        'TRANSACTION_REFUSED': "PayPal's internal controls prevent authorization from being captured.",
    },
    'payments:authorizations.reauthorize-400': {
        'INVALID_PARAMETER_SYNTAX': 'The value of a field does not conform to the expected format.',
        'INVALID_STRING_LENGTH': 'The value of a field is either too short or too long.',
        'MISSING_REQUIRED_PARAMETER': 'A required field / parameter is missing.',
    },
    'payments:authorizations.reauthorize-422': {
        'AUTHORIZATION_ALREADY_CAPTURED': 'Authorization has previously been captured.',
        'AUTHORIZATION_VOIDED': 'A voided authorization cannot be captured or reauthorized. ',
        'AUTH_CURRENCY_MISMATCH': 'The currency specified during reauthorization should be the same as the currency specified in the original authorization. Please check the currency of the authorization for which you are trying to reauthorize and try again.',
        'CANNOT_BE_ZERO_OR_NEGATIVE': 'Must be greater than zero. If the currency supports decimals, only two decimal place precision is supported.',
        'DECIMALS_NOT_SUPPORTED': 'Currency does not support decimals. Please refer to https://developer.paypal.com/docs/api/reference/currency-codes/ for more information.',
        'DECIMAL_PRECISION': 'If the currency supports decimals, only two decimal place precision is supported.',
        'INVALID_CURRENCY_CODE': 'Currency code is invalid or is not currently supported. Please refer https://developer.paypal.com/docs/api/reference/currency-codes/ for list of supported currency codes.',
        'PAYEE_ACCOUNT_RESTRICTED': 'Payee account is restricted.',
        'PAYER_ACCOUNT_LOCKED_OR_CLOSED': 'The payer account cannot be used for this transaction.',
        'PAYER_CANNOT_PAY': 'Payer cannot pay for this transaction. Please contact the payer to find other ways to pay for this transaction.',
        'REAUTHORIZATION_NOT_SUPPORTED': 'A reauthorize cannot be attempted on an authorization_id that is the result of a prior reauthorization or on an authorization made on an Order saved using the `v2/orders/id/save` API.',
        'TRANSACTION_REFUSED': "PayPal's internal controls prevent authorization from being captured.",
    },
    'payments:authorizations.void-422': {
        'CANNOT_BE_VOIDED': 'A reauthorization cannot be voided. Please void the original parent authorization.',
        'PREVIOUSLY_CAPTURED': 'Authorization has been previously captured and hence cannot be voided.',
        'PREVIOUSLY_VOIDED': 'Authorization has been previously voided and hence cannot be voided again.',
    },
    'payments:captures.refund-400': {
        'INVALID_PARAMETER_SYNTAX': None,
        'INVALID_STRING_LENGTH': None,
        'MISSING_REQUIRED_PARAMETER': None,
    },
    'payments:captures.refund-422': {
        'CANNOT_BE_NEGATIVE': None,
        'CANNOT_BE_ZERO_OR_NEGATIVE': None,
        'CAPTURE_FULLY_REFUNDED': 'The capture has already been fully refunded',
        'CURRENCY_MISMATCH': None,
        'DECIMALS_NOT_SUPPORTED': None,
        'DECIMAL_PRECISION': None,
        'DUPLICATE_INVOICE_ID': 'Invoice ID was previously used to refund a capture.',
        'INVALID_CURRENCY_CODE': None,
        'PARTIAL_REFUND_NOT_ALLOWED': 'You cannot do a refund less than the original capture amount.',
        'PAYEE_ACCOUNT_RESTRICTED': 'Payee account is restricted.',
        'PAYER_ACCOUNT_LOCKED_OR_CLOSED': 'The payer account cannot be used for this transaction.',
        'PENDING_CAPTURE': 'Cannot initiate a refund as the capture is pending. Capture is typically pending when the payer has funded the transaction using e-check/bank funded.',
        'REFUND_AMOUNT_EXCEEDED': 'The refund amount must be less than or equal to the capture amount that has not yet been refunded.',
        'REFUND_AMOUNT_TOO_LOW': 'The amount after applying currency conversion is zero and hence the capture cannot be refunded. The currency conversion is required because the currency of the capture is different than the currency in which the amount was settled into the payee account.',
        'REFUND_CAPTURE_CURRENCY_MISMATCH': 'Refund must be in the same currency as the capture',
        'REFUND_FAILED_INSUFFICIENT_FUNDS': 'Capture could not be refunded due to insufficient funds. Please check to see if you have sufficient funds in your PayPal account or if the bank account linked to your PayPal account is verified and has sufficient funds.',
        'REFUND_NOT_ALLOWED': 'Capture cannot be refunded.',
        'REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK': 'Refunds are not allowed on this capture due to a chargeback on the card or bank. Please contact the payee to resolve the chargeback.',
        'REFUND_TIME_LIMIT_EXCEEDED': 'You are over the time limit to perform a refund on this capture',
        'TRANSACTION_DISPUTED': 'Partial refunds cannot be offered at this time because there is an open case on this transaction. Visit the PayPal Resolution Center to review this case.',
    },
}

# Issues PayPal documents on its Payments v2 error pages
# (https://developer.paypal.com/api/payments/v2/errors/<issue>) for an operation whose OpenAPI
# table (payments 2.5) omits them: (operation, status) -> issue -> the page's description.
ERROR_PAGE_ISSUES: dict[tuple[str, int], dict[str, str]] = {
    ("authorizations.reauthorize", 422): {
        "REAUTHORIZATION_TOO_SOON": "A reauthorization is only allowed once from Day 4 to Day "
                                    "29 since the date of the original authorization.",
        "AUTHORIZATION_AMOUNT_EXCEEDED": "Authorization amount specified exceeded allowable "
                                         "limit. Specify a different amount and try the request "
                                         "again. Alternately, contact Customer Support to "
                                         "increase your limits.",
    },
}

GENERIC_DESCRIPTIONS: dict[str, str] = {
    "INTERNAL_SERVER_ERROR": "An internal server error has occurred.",
    "RATE_LIMIT_REACHED": "Too many requests. Blocked due to rate limiting.",
    "SERVICE_UNAVAILABLE": "Service Unavailable.",
}


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
