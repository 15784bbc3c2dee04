"""One error tree for paywire, with structured fields; mapped to HTTP in exactly one table."""

from __future__ import annotations

from typing import Any


class PaywireError(Exception):
    """Base of every error paywire raises on purpose."""

    code = "paywire_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationError(PaywireError):
    """Input that can never be valid (bad currency, amount, quantity, unknown sku)."""

    code = "validation_error"

    def __init__(self, message: str, *, field: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.field = field


class NotFoundError(PaywireError):
    """A resource paywire does not know."""

    code = "not_found"


class ConflictError(PaywireError):
    """A concurrent change won (version compare-and-set failed, key in flight)."""

    code = "conflict"


class IllegalTransition(PaywireError):
    """A state change the order state machine refuses."""

    code = "illegal_transition"


class OverRefund(PaywireError):
    """A refund larger than what is left to refund; refused before the provider is called."""

    code = "over_refund"


class ProviderError(PaywireError):
    """The payment provider refused or failed a call."""

    code = "provider_error"

    # What the refusal means to paywire, whatever the provider called it.
    # `awaiting_payer`: the buyer has not finished paying on the provider's own page yet (APS's
    # hosted page, a 3-D Secure challenge): ask again later under the same key.
    KINDS = ("transient", "invalid", "not_found", "not_approved", "declined", "payer_action",
             "already_done", "duplicate_invoice", "over_refund", "auth", "bad_signature",
             "awaiting_payer", "unknown")

    def __init__(self, message: str, *, provider: str, kind: str = "unknown",
                 status: int | None = None, name: str | None = None, issue: str | None = None,
                 debug_id: str | None = None, retryable: bool = False,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.provider = provider
        self.kind = kind if kind in self.KINDS else "unknown"
        self.status = status
        self.name = name
        self.issue = issue
        self.debug_id = debug_id
        self.retryable = retryable


class DeadlineExceeded(ProviderError):
    """The request's deadline (`paywire.domain.deadline`) left too little time to finish a
    provider call: a transient failure (the work stays resumable under the same keys), answered
    503 with `Retry-After: retry_after` by the API."""

    code = "deadline_exceeded"

    def __init__(self, message: str, *, provider: str, retry_after: int = 2,
                 status: int | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, provider=provider, kind="transient", status=status,
                         retryable=True, details=details)
        self.retry_after = max(1, int(retry_after))


class DeliveryError(PaywireError):
    """A delivery target did not accept a message (retryable unless `retryable` is False)."""

    code = "delivery_error"

    def __init__(self, message: str, *, target: str, retryable: bool = True,
                 status: int | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.target = target
        self.retryable = retryable
        self.status = status


class SignatureError(PaywireError):
    """A webhook delivery that fails verification for good (answered 4xx, recorded).

    `check` names the check that failed (e.g. "signature", "cert_url", "cert_dates",
    "cert_leaf", "cert_chain", "transmission_time", "headers", "json"); `likely_cause` says
    what probably happened (a sandbox/live webhook id mix-up, a proxy that rewrote the body,
    PayPal's simulator...).
    """

    code = "signature_error"

    def __init__(self, message: str, *, check: str, likely_cause: str | None = None,
                 status: int = 400, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.check = check
        self.likely_cause = likely_cause
        self.status = status


class StorageError(PaywireError):
    """The store failed (transient: the caller may retry)."""

    code = "storage_error"


class ConfigError(PaywireError):
    """Settings that cannot work; raised at start-up, naming the setting."""

    code = "config_error"
