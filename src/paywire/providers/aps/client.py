"""APS's server-to-server API (`/FortAPI/paymentApi`) over an `httpx.AsyncClient`.

Every request is a JSON object of string parameters signed with the request phrase; every answer
is verified with the response phrase over all its parameters before anything is read (a bad
signature raises `ResponseSignatureError`, kind `bad_signature`), then classified (`mapping`).

Retries follow what a retry can achieve:
- CHECK_STATUS is a query: connection errors, timeouts, 429 and 5xx are retried, bounded
  (`max_attempts`), with the one backoff policy (`paywire.domain.retry`) through `jitter`
  (the one place randomness enters).
- A mutating command (PURCHASE, AUTHORIZATION, CAPTURE, VOID_AUTHORIZATION, REFUND) is re-sent
  only when it provably never reached APS (the connection failed, or 429). Once it may have
  arrived (a read timeout, a dropped connection, a 5xx, an unreadable answer) its result is
  `Outcome.UNCERTAIN`, resolved later by CHECK_STATUS, never a decline and never a blind resend.
- A duplicate-reference answer (an earlier attempt under this reference reached APS) is resolved
  at once by CHECK_STATUS, and that truth is returned.

A request's deadline (`paywire.domain.deadline`), when one is set, caps each attempt's timeout.
No attempt starts, and no retry waits, with less than `min_attempt_seconds` left: that raises
`DeadlineExceeded` (transient; for a mutating command it is raised only while the command
provably never reached APS). A mutating attempt cut short by the deadline after it was sent is
`Outcome.UNCERTAIN` as any read timeout is.

The phrases live in the `Signer` and appear in no repr, log line or exception message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from paywire.domain import deadline, trace
from paywire.domain.errors import (
    ConfigError,
    DeadlineExceeded,
    OverRefund,
    ProviderError,
    SignatureError,
    ValidationError,
)
from paywire.domain.money import Money
from paywire.domain.retry import Backoff, FullJitter, Jitter
from paywire.providers.aps.amounts import (
    DEFAULT_CURRENCIES,
    check_amount,
    check_reference,
    to_aps_amount,
)
from paywire.providers.aps.forms import (
    SANDBOX_PAGE_URL,
    ApsFeedback,
    FeedbackVerifier,
    FormBuilder,
    HostedForm,
    Merchant,
)
from paywire.providers.aps.mapping import (
    AUTHORIZATION,
    CAPTURE,
    CHECK_STATUS,
    PROVIDER,
    PURCHASE,
    REFUND,
    VOID,
    Classification,
    Outcome,
)
from paywire.providers.aps.results import (
    ApsResult,
    TransactionStatus,
    parse_result,
    parse_status,
    resolved,
)
from paywire.providers.http import lean_client

log = logging.getLogger("paywire.providers.aps")


class ResponseSignatureError(ProviderError):
    """An APS answer whose response signature does not verify (kind `bad_signature`).

    For a mutating command the call may have happened at APS: treat the operation as uncertain
    (CHECK_STATUS, once the SHA settings are fixed), never as failed.
    """

    def __init__(self, message: str, *, command: str, status: int | None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, provider=PROVIDER, kind="bad_signature", status=status,
                         name=command, retryable=False, details=details)


@dataclass(frozen=True, slots=True)
class _NoAnswer:
    """A mutating call that may have reached APS but whose answer paywire does not have."""

    reason: str
    status: int | None = None


def _http_kind(status: int) -> str:
    return {401: "auth", 403: "auth", 404: "not_found"}.get(status, "invalid")


class ApsClient:
    """APS's S2S flows, the hosted-page form builder and the feedback verifier, for one account.

    `check_amount` and `aclose` match `ports.PaymentProvider`; the flows speak APS's own
    model (merchant references, fort ids, outcomes), which the services adapt.
    """

    name = PROVIDER

    def __init__(self, api_url: str, merchant: Merchant, http: httpx.AsyncClient | None = None,
                 *, page_url: str = SANDBOX_PAGE_URL, timeout: float = 30.0,
                 max_attempts: int = 4, backoff_base: float = 0.5, backoff_cap: float = 8.0,
                 jitter: Jitter | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 currencies: frozenset[str] = DEFAULT_CURRENCIES,
                 min_attempt_seconds: float = deadline.FLOOR_SECONDS) -> None:
        if (max_attempts < 1 or backoff_base < 0 or backoff_cap < 0 or timeout <= 0
                or min_attempt_seconds <= 0):
            raise ConfigError("APS client: max_attempts >= 1, backoffs >= 0, timeout > 0, "
                              "min_attempt_seconds > 0")
        if not api_url.startswith(("https://", "http://")):
            raise ConfigError("APS API URL must be an absolute http(s) URL")
        self.api_url = api_url
        self.merchant = merchant
        self.forms = FormBuilder(merchant, page_url, currencies=currencies)
        self.verifier = FeedbackVerifier(merchant)
        self.currencies = currencies
        self._owns_http = http is None
        self._http = http if http is not None else lean_client(timeout=timeout)
        self._timeout = timeout
        self._retry = Backoff(backoff_base, backoff_cap, jitter or FullJitter(random),
                             attempts=max_attempts)
        self._sleep = sleep
        self._floor = min_attempt_seconds

    def __repr__(self) -> str:
        return (f"ApsClient(api_url={self.api_url!r}, "
                f"merchant_identifier={self.merchant.merchant_identifier!r})")

    async def __aenter__(self) -> ApsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it (an injected one is the caller's)."""
        if self._owns_http:
            await self._http.aclose()

    def check_amount(self, amount: Money) -> None:
        """Refuse (ValidationError) a currency or amount APS cannot take."""
        check_amount(amount, self.currencies)

    # --- browser side -----------------------------------------------------------------------

    def payment_page(self, **kw: Any) -> HostedForm:
        """A signed hosted payment page form (see `FormBuilder.payment_page`)."""
        return self.forms.payment_page(**kw)

    def tokenization_page(self, **kw: Any) -> HostedForm:
        """A signed tokenization form (see `FormBuilder.tokenization`)."""
        return self.forms.tokenization(**kw)

    def verify_feedback(self, params: dict[str, Any]) -> ApsFeedback:
        """Verify feedback or return_url parameters (`SignatureError` if refused)."""
        return self.verifier.verify(params)

    # --- payments --------------------------------------------------------------------------

    async def purchase(self, *, merchant_reference: str, amount: Money, token_name: str,
                       customer_email: str, **optional: str | None) -> ApsResult:
        """PURCHASE on a tokenized card. An ON_HOLD answer (`20064`) carries `three_ds_url`:
        send the buyer there; the result then arrives on the feedback channels."""
        return await self._pay(PURCHASE, merchant_reference, amount, token_name,
                               customer_email, optional)

    async def authorize(self, *, merchant_reference: str, amount: Money, token_name: str,
                        customer_email: str, **optional: str | None) -> ApsResult:
        """AUTHORIZATION on a tokenized card (capture it later with `capture`)."""
        return await self._pay(AUTHORIZATION, merchant_reference, amount, token_name,
                               customer_email, optional)

    _OPTIONAL = frozenset({"customer_ip", "return_url", "order_description", "customer_name",
                           "language", "eci"})

    async def _pay(self, command: str, reference: str, amount: Money, token_name: str,
                   customer_email: str, optional: dict[str, str | None]) -> ApsResult:
        unknown = set(optional) - self._OPTIONAL
        if unknown:
            raise ValidationError(f"unknown APS parameters {sorted(unknown)}", field="params")
        if not token_name or not customer_email:
            raise ValidationError("APS payments need token_name and customer_email",
                                  field="token_name")
        params = self.merchant.base_params(optional.pop("language", None))
        params.update({"command": command, "merchant_reference": check_reference(reference),
                       "amount": to_aps_amount(amount, self.currencies),
                       "currency": amount.currency, "token_name": token_name,
                       "customer_email": customer_email})
        params.update({k: v for k, v in optional.items() if v})
        return await self._transaction(command, params, amount)

    # --- maintenance -------------------------------------------------------------------------

    async def capture(self, *, merchant_reference: str, fort_id: str,
                      amount: Money) -> ApsResult:
        """CAPTURE (part of) an authorization. APS documents no `maintenance_reference` on it
        (REFUND only), so a resend is not recognisable: ask CHECK_STATUS before resending."""
        params = self._maintenance(CAPTURE, merchant_reference, fort_id, None)
        params.update({"amount": to_aps_amount(amount, self.currencies),
                       "currency": amount.currency})
        return await self._transaction(CAPTURE, params, amount)

    async def void_authorization(self, *, merchant_reference: str, fort_id: str,
                                 currency: str) -> ApsResult:
        """VOID_AUTHORIZATION (no `maintenance_reference`, as for CAPTURE; `currency` reads
        CHECK_STATUS totals if it must resolve)."""
        params = self._maintenance(VOID, merchant_reference, fort_id, None)
        return await self._transaction(VOID, params, None, currency=currency)

    async def refund(self, *, merchant_reference: str, fort_id: str, maintenance_reference: str,
                     amount: Money, refundable: Money) -> ApsResult:
        """REFUND `amount` (full or partial). More than `refundable` (what paywire's records
        leave to refund) is refused with `OverRefund` before APS is called."""
        if amount.currency != refundable.currency:
            raise ValidationError(f"refund currency must be {refundable.currency}",
                                  field="currency")
        if refundable < amount:
            raise OverRefund(f"refund of {amount} exceeds the {refundable} left to refund",
                             details={"refundable": refundable.to_decimal()})
        params = self._maintenance(REFUND, merchant_reference, fort_id, maintenance_reference)
        params.update({"amount": to_aps_amount(amount, self.currencies),
                       "currency": amount.currency})
        return await self._transaction(REFUND, params, amount)

    def _maintenance(self, command: str, reference: str, fort_id: str,
                     maintenance_reference: str | None) -> dict[str, str]:
        if not fort_id:
            raise ValidationError("APS maintenance calls need the fort_id", field="fort_id")
        params = self.merchant.base_params()
        params.update({"command": command, "merchant_reference": check_reference(reference),
                       "fort_id": fort_id})
        if maintenance_reference is not None:  # REFUND only: APS refuses it elsewhere (00027)
            params["maintenance_reference"] = check_reference(maintenance_reference,
                                                              "maintenance_reference")
        return params

    # --- CHECK_STATUS ------------------------------------------------------------------------

    async def check_status(self, merchant_reference: str, *, currency: str,
                           fort_id: str | None = None) -> TransactionStatus:
        """APS's truth about a transaction (totals read in `currency`)."""
        params = self.merchant.base_params()
        params.update({"query_command": CHECK_STATUS,
                       "merchant_reference": check_reference(merchant_reference)})
        if fort_id:
            params["fort_id"] = fort_id
        answer = await self._post(CHECK_STATUS, params, query=True)
        if isinstance(answer, _NoAnswer):  # queries raise instead; kept total for the types
            raise ProviderError(f"APS CHECK_STATUS: {answer.reason}", provider=PROVIDER,
                                kind="transient", status=answer.status, retryable=True)
        status = parse_status(answer, currency)
        log.info("aps CHECK_STATUS ref=%s -> %s transaction=%s", merchant_reference,
                 status.query.response_code,
                 status.transaction.response_code if status.transaction else None)
        return status

    # --- one call ---------------------------------------------------------------------------

    async def _transaction(self, command: str, params: dict[str, str], amount: Money | None,
                           *, currency: str | None = None) -> ApsResult:
        reference = params["merchant_reference"]
        answer = await self._post(command, params, query=False)
        if isinstance(answer, _NoAnswer):
            log.warning("aps %s ref=%s: no answer (%s): uncertain", command, reference,
                        answer.reason)
            c = Classification(command, "", Outcome.UNCERTAIN, f"no answer: {answer.reason}")
            return ApsResult(command=command, classification=c, fort_id=params.get("fort_id"),
                             merchant_reference=reference,
                             maintenance_reference=params.get("maintenance_reference"),
                             amount=amount, response_message=None, params={})
        result = parse_result(answer, command=command, expected_amount=amount,
                              expected_reference=reference)
        log.info("aps %s ref=%s -> %s %s", command, reference, result.response_code,
                 result.outcome.value)
        if result.outcome is Outcome.DUPLICATE_REFERENCE:
            cur = (amount.currency if amount is not None else currency) or ""
            truth = await self.check_status(reference, currency=cur,
                                            fort_id=params.get("fort_id"))
            result = resolved(result, truth)
            log.info("aps %s ref=%s: duplicate reference resolved by CHECK_STATUS -> %s",
                     command, reference, result.outcome.value)
        return result

    @staticmethod
    def _out_of_time(command: str, retry_after: float = 0.0) -> DeadlineExceeded:
        log.warning("aps %s: the request's deadline leaves no time for another attempt",
                    command)
        return DeadlineExceeded(f"APS {command} did not finish within the request's deadline",
                                provider=PROVIDER, retry_after=math.ceil(max(2.0, retry_after)))

    async def _post(self, command: str, params: dict[str, str], *,
                    query: bool) -> dict[str, Any] | _NoAnswer:
        """Sign, send, verify. Queries retry what is retryable; see the module doc."""
        content = json.dumps(self.merchant.signer.sign_request(params),
                             separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        # The trace headers ride along (APS ignores headers it does not know), so APS's side of
        # a call can be matched to ours by an operator holding both logs.
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   **trace.outgoing()}
        attempt = 0
        while True:
            attempt += 1
            if deadline.exhausted(self._floor):
                raise self._out_of_time(command)  # not sent (this attempt): nothing happened
            timeout = deadline.cap(self._timeout)
            cause: Exception | None = None
            try:
                resp = await self._http.post(self.api_url, content=content, headers=headers,
                                             timeout=timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Never reached APS: a resend cannot act twice.
                if timeout < self._timeout and isinstance(exc, httpx.TimeoutException):
                    raise self._out_of_time(command) from exc
                cause = exc
                error = ProviderError(f"APS {command} failed: {type(exc).__name__}",
                                      provider=PROVIDER, kind="transient", retryable=True)
            except httpx.TransportError as exc:
                if not query:
                    return _NoAnswer(type(exc).__name__)
                if timeout < self._timeout and isinstance(exc, httpx.TimeoutException):
                    raise self._out_of_time(command) from exc
                cause = exc
                error = ProviderError(f"APS {command} failed: {type(exc).__name__}",
                                      provider=PROVIDER, kind="transient", retryable=True)
            else:
                status = resp.status_code
                if resp.is_success:
                    return self._verified(command, resp, query=query)
                if status == 429 or (status >= 500 and query):
                    error = ProviderError(f"APS {command} answered HTTP {status}",
                                          provider=PROVIDER, kind="transient", status=status,
                                          retryable=True)
                elif status >= 500:
                    return _NoAnswer(f"HTTP {status}", status)
                else:
                    raise ProviderError(f"APS {command} answered HTTP {status}",
                                        provider=PROVIDER, kind=_http_kind(status),
                                        status=status)
            log.info("aps %s attempt %d/%d failed: %s", command, attempt, self._retry.attempts,
                     error.message)
            pause = self._retry.next(attempt, floor=self._floor)
            if pause is None:
                raise error from cause
            if not pause.in_time:
                raise self._out_of_time(command, pause.seconds) from (cause or error)
            await self._sleep(pause.seconds)

    def _verified(self, command: str, resp: httpx.Response, *,
                  query: bool) -> dict[str, Any] | _NoAnswer:
        try:
            data = json.loads(resp.content, parse_int=str, parse_float=str)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            if not query:
                return _NoAnswer("an answer that is not a JSON object", resp.status_code)
            raise ProviderError(f"APS {command} answered without a JSON object",
                                provider=PROVIDER, kind="unknown", status=resp.status_code)
        try:
            self.merchant.signer.verify_response(data)
        except SignatureError as exc:
            raise ResponseSignatureError(
                f"APS {command} answer failed response signature verification",
                command=command, status=resp.status_code,
                details={"response_code": data.get("response_code"),
                         "merchant_reference": data.get("merchant_reference"),
                         "may_have_happened": not query}) from exc
        return data
