"""The one table from paywire's error tree to HTTP, and the one error body every answer uses.

Every error is `{"error": {"code", "message", "details", "request_id"}}`. Domain errors map by
class (the most specific entry in `ERRORS` wins); a `ProviderError` maps by its `kind` (what the
provider's refusal means to paywire, whatever PayPal called it). Bad input is always a 4xx; an
unexpected exception is a 500 in the same shape, without internals.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from paywire.domain.errors import (
    ConfigError,
    ConflictError,
    DeadlineExceeded,
    IllegalTransition,
    NotFoundError,
    OverRefund,
    PaywireError,
    ProviderError,
    SignatureError,
    StorageError,
    ValidationError,
)


class ApiError(PaywireError):
    """An HTTP-level refusal (authentication, body size, Idempotency-Key) with its own status."""

    def __init__(self, status: int, code: str, message: str, *,
                 details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.code = code
        self.headers = headers or {}


# The table: domain error class -> (HTTP status, error code).
ERRORS: dict[type[PaywireError], tuple[int, str]] = {
    ValidationError: (422, "validation_error"),
    NotFoundError: (404, "not_found"),
    OverRefund: (409, "over_refund"),
    IllegalTransition: (409, "illegal_transition"),
    ConflictError: (409, "conflict"),
    SignatureError: (400, "signature_invalid"),
    StorageError: (503, "storage_unavailable"),
    ConfigError: (500, "configuration_error"),
    # The request's deadline left no time to finish a provider call: retry after Retry-After.
    DeadlineExceeded: (503, "provider_timeout"),
    ProviderError: (502, "provider_error"),
    PaywireError: (500, "internal_error"),
}

# ProviderError.kind -> (HTTP status, error code). Every kind has a row.
PROVIDER_KINDS: dict[str, tuple[int, str]] = {
    "payer_action": (422, "payer_action_required"),  # the buyer must approve again
    "declined": (422, "payment_declined"),
    "not_approved": (409, "order_not_approved"),
    "awaiting_payer": (409, "payment_not_completed"),  # the buyer is still on the payment page
    "already_done": (409, "already_processed"),
    "duplicate_invoice": (409, "duplicate_invoice"),
    "over_refund": (409, "over_refund"),
    "not_found": (502, "provider_error"),
    "invalid": (502, "provider_error"),
    "auth": (502, "provider_error"),
    "bad_signature": (502, "provider_error"),  # an answer whose signature did not verify
    "unknown": (502, "provider_error"),
    "transient": (502, "provider_unavailable"),
}
if set(PROVIDER_KINDS) != set(ProviderError.KINDS):  # pragma: no cover - the table is total
    raise RuntimeError("PROVIDER_KINDS must map every ProviderError.kind")

# Starlette's own HTTP errors (unknown route, wrong method, ...) -> error code.
HTTP_CODES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "too_many_requests",
}


def error_body(code: str, message: str, details: dict[str, Any] | list[Any] | None,
               request_id: str | None) -> dict[str, Any]:
    """The error body every failing answer carries."""
    return {"error": {"code": code, "message": message, "details": details or {},
                      "request_id": request_id}}


def classify(exc: PaywireError) -> tuple[int, str]:
    """(status, code) for a paywire error, from the table."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code
    if isinstance(exc, DeadlineExceeded):
        return ERRORS[DeadlineExceeded]
    if isinstance(exc, ProviderError):
        return PROVIDER_KINDS[exc.kind]
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return ERRORS[PaywireError]  # pragma: no cover - PaywireError is in every such MRO


def _details(exc: PaywireError) -> dict[str, Any]:
    details = dict(exc.details)
    if isinstance(exc, ValidationError) and exc.field:
        details.setdefault("field", exc.field)
    if isinstance(exc, ProviderError):
        # PayPal's issue and debug id help the shop's support; nothing secret is in them.
        details.update({k: v for k, v in (("provider", exc.provider), ("issue", exc.issue),
                                          ("debug_id", exc.debug_id)) if v is not None})
    if isinstance(exc, DeadlineExceeded):
        details["retry_after_seconds"] = exc.retry_after
    return details


def error_headers(exc: PaywireError) -> dict[str, str] | None:
    """The headers an error's answer carries (`Retry-After` where a retry should wait)."""
    if isinstance(exc, ApiError):
        return exc.headers or None
    if isinstance(exc, DeadlineExceeded):
        return {"Retry-After": str(exc.retry_after)}
    return None


def render(exc: PaywireError, request_id: str | None) -> tuple[int, dict[str, Any]]:
    """(status, body) for a paywire error (also what an Idempotency-Key stores for it)."""
    status, code = classify(exc)
    message = exc.message
    if isinstance(exc, StorageError):
        message = "storage is unavailable; retry shortly"  # not the driver's words (hosts...)
    elif status >= 500 and not isinstance(exc, ProviderError | ApiError):
        message = "internal error"  # no internals in a 500
    return status, error_body(code, message, _details(exc), request_id)


def request_id_of(request: Request) -> str | None:
    """The id the request-context middleware gave this request."""
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


def error_response(status: int, code: str, message: str, *, request_id: str | None,
                   details: dict[str, Any] | list[Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer in the one shape."""
    return JSONResponse(error_body(code, message, details, request_id), status_code=status,
                        headers=headers)


async def paywire_error(request: Request, exc: Exception) -> JSONResponse:
    """The answer to a paywire error (the app's handler; the webhook route's fast lane calls it
    too)."""
    if not isinstance(exc, PaywireError):  # pragma: no cover - registered for it
        raise exc
    status, body = render(exc, request_id_of(request))
    headers = error_headers(exc)
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return JSONResponse(body, status_code=status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover - registered for it
        raise exc
    problems = [{"field": ".".join(str(p) for p in err.get("loc", ())),
                 "message": str(err.get("msg", "invalid")), "type": str(err.get("type", ""))}
                for err in exc.errors()]
    malformed = any(p["type"] == "json_invalid" for p in problems)
    code, message = (("malformed_json", "the request body is not valid JSON") if malformed
                     else ("validation_error", "the request is invalid"))
    return error_response(422, code, message, request_id=request_id_of(request),
                          details={"errors": problems})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for it
        raise exc
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, request_id=request_id_of(request),
                          headers=dict(exc.headers) if exc.headers else None)


def install(app: FastAPI) -> None:
    """Route every error the app can raise through the table."""
    app.add_exception_handler(PaywireError, paywire_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
