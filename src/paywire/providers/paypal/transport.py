"""One PayPal REST call over an `httpx.AsyncClient`: OAuth, retries, deadlines, secrecy.

The endpoints (`client.PayPalClient`) say what to send; this module says how, so that the rules
below hold for every call without an endpoint repeating them:

- A mutating call carries the caller's `request_id` as `PayPal-Request-Id` (derived from our
  persisted operation id), unchanged on every attempt, so a retry cannot act twice.
- Retries are bounded (`max_attempts`) and only for what a retry can fix: connection errors,
  timeouts, 429 and 5xx; the wait follows the one backoff policy (`paywire.domain.retry`),
  through `jitter` (the one place randomness enters, so tests remove it), and a `Retry-After`
  is honoured (an HTTP date read against `clock`). Other 4xx are final.
- The client secret and tokens appear in no repr, log line or exception message.
- Every call carries the work's `traceparent` (`paywire.domain.trace`), which PayPal ignores
  and the emulator records, so a call can be found by the trace id of what asked for it.
- A request's deadline (`paywire.domain.deadline`), when one is set, caps each attempt's
  timeout; an attempt that would start, or a retry that would wait, with less than
  `min_attempt_seconds` left raises `DeadlineExceeded` (transient: the caller retries later
  under the same `PayPal-Request-Id`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

import httpx

from paywire.domain import deadline, trace
from paywire.domain.errors import ConfigError, DeadlineExceeded, ProviderError, ValidationError
from paywire.domain.retry import Backoff, FullJitter, Jitter, retry_after_seconds
from paywire.ports import Clock, SystemClock
from paywire.providers.http import lean_client
from paywire.providers.paypal import refusals

log = logging.getLogger("paywire.providers.paypal")

T = TypeVar("T")
MAX_REQUEST_ID = 108  # PayPal-Request-Id length limit


class SecretLike(Protocol):
    """What pydantic's SecretStr offers (accepted without importing settings)."""

    def get_secret_value(self) -> str:
        """The secret itself."""
        ...


class _Secret:
    """A string that never shows itself in repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'**********'"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float  # on the client's monotonic clock


def _check_request_id(request_id: str) -> str:
    if not 1 <= len(request_id) <= MAX_REQUEST_ID:
        raise ValidationError(f"PayPal-Request-Id holds 1..{MAX_REQUEST_ID} characters",
                              field="request_id")
    return request_id


class PayPalTransport:
    """Sends PayPal calls under the module's rules; `PayPalClient` adds the endpoints.

    A refused call becomes a typed `ProviderError` (`refusals`); a 2xx answer is handed back
    as JSON for the endpoint to read (`_parsed`).
    """

    name = "paypal"

    def __init__(self, base_url: str, client_id: str, client_secret: SecretLike | str,
                 http: httpx.AsyncClient | None = None, *, timeout: float = 30.0,
                 max_attempts: int = 4, backoff_base: float = 0.5, backoff_cap: float = 8.0,
                 max_retry_after: float = 30.0,
                 jitter: Jitter | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 token_margin_seconds: float = 300.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 min_attempt_seconds: float = deadline.FLOOR_SECONDS,
                 clock: Clock | None = None) -> None:
        if (max_attempts < 1 or backoff_base < 0 or backoff_cap < 0 or timeout <= 0
                or min_attempt_seconds <= 0):
            raise ConfigError("PayPal client: max_attempts >= 1, backoffs >= 0, timeout > 0, "
                              "min_attempt_seconds > 0")
        if not client_id:
            raise ConfigError("PayPal client: client_id is required")
        secret = client_secret if isinstance(client_secret, str) else (
            client_secret.get_secret_value())
        self._base = base_url.rstrip("/")
        self._client_id = client_id
        self._secret = _Secret(secret)
        self._owns_http = http is None
        self._http = http if http is not None else lean_client(timeout=timeout)
        self._timeout = timeout
        self._retry = Backoff(backoff_base, backoff_cap, jitter or FullJitter(random),
                             attempts=max_attempts)
        self._max_retry_after = max_retry_after
        self._sleep, self._monotonic, self._clock = sleep, monotonic, clock or SystemClock()
        self._margin = token_margin_seconds
        self._floor = min_attempt_seconds
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._fetches = 0
        self._fetch_error: ProviderError | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._base!r}, client_id={self._client_id!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it (an injected one is the caller's)."""
        if self._owns_http:
            await self._http.aclose()

    # --- OAuth ---------------------------------------------------------------------------

    async def _bearer(self) -> str:
        """A valid access token; concurrent callers on a cold cache share one fetch."""
        tok = self._token
        if tok is not None and self._monotonic() < tok.refresh_at:
            return tok.value
        seen = self._fetches
        async with self._token_lock:
            tok = self._token
            if tok is not None and self._monotonic() < tok.refresh_at:
                return tok.value
            if self._fetches != seen and self._fetch_error is not None:
                raise self._fetch_error  # the fetch this caller waited for failed: share it
            try:
                self._token = await self._fetch_token()
            except ProviderError as exc:
                self._fetch_error = exc
                raise
            else:
                self._fetch_error = None
            finally:
                self._fetches += 1  # fetches finished, so waiters can tell one ended
            return self._token.value

    def _forget(self, value: str) -> None:
        """Drop a token PayPal refused (unless a newer one already replaced it)."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _fetch_token(self) -> _Token:
        basic = base64.b64encode(f"{self._client_id}:{self._secret.reveal()}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}", "Accept": "application/json",
                   "Content-Type": "application/x-www-form-urlencoded"}
        resp = await self._send("POST", "/v1/oauth2/token", what="OAuth token", headers=headers,
                                content=b"grant_type=client_credentials", bearer=False)
        data = self._json(resp, "OAuth token")
        value, ttl = data.get("access_token"), data.get("expires_in")
        if not isinstance(value, str) or not value or not isinstance(ttl, int | float):
            raise ProviderError("PayPal OAuth token answer lacks access_token/expires_in",
                                provider=self.name, kind="unknown", status=resp.status_code)
        # Refresh `margin` early; a lifetime shorter than twice the margin refreshes at half.
        life = ttl - self._margin if ttl > 2 * self._margin else ttl / 2
        log.info("paypal OAuth token fetched (expires in %ss, refresh in %.0fs)", ttl, life)
        return _Token(value=value, refresh_at=self._monotonic() + life)

    # --- one call, with retries --------------------------------------------------------------

    def _out_of_time(self, method: str, path: str, what: str,
                     retry_after: float = 0.0) -> DeadlineExceeded:
        log.warning("paypal %s %s: the request's deadline leaves no time for another attempt",
                    method, path)
        return DeadlineExceeded(f"PayPal {what} did not finish within the request's deadline",
                                provider=self.name, retry_after=math.ceil(max(2.0, retry_after)))

    async def _send(self, method: str, path: str, *, what: str, headers: dict[str, str],
                    content: bytes | None = None, bearer: bool = True) -> httpx.Response:
        """Send with bounded retries of what is retryable; a 401 re-authenticates once."""
        url = self._base + path
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            sent = {**headers, **trace.outgoing()}  # PayPal ignores headers it does not know
            token = ""
            if bearer:
                token = await self._bearer()
                sent["Authorization"] = f"Bearer {token}"
            if deadline.exhausted(self._floor):
                raise self._out_of_time(method, path, what)
            timeout = deadline.cap(self._timeout)
            cause: Exception | None = None
            wait: float | None = None  # the server's Retry-After, if it sent one
            try:
                resp = await self._http.request(method, url, headers=sent, content=content,
                                                timeout=timeout)
            except httpx.TransportError as exc:  # connect/read errors and timeouts
                if isinstance(exc, httpx.TimeoutException) and timeout < self._timeout:
                    # Cut short by the deadline: no time is left for another attempt.
                    raise self._out_of_time(method, path, what) from exc
                log.info("paypal %s %s -> %s (attempt %d/%d)", method, path,
                         type(exc).__name__, attempt, self._retry.attempts)
                error = ProviderError(f"PayPal {what} failed: {type(exc).__name__}",
                                      provider=self.name, kind="transient", retryable=True)
                cause = exc
            else:
                status, debug_id = resp.status_code, resp.headers.get("paypal-debug-id")
                level = logging.DEBUG if resp.is_success else logging.INFO
                log.log(level, "paypal %s %s -> %d debug_id=%s attempt=%d/%d", method, path,
                        status, debug_id, attempt, self._retry.attempts)
                if resp.is_success:
                    return resp
                if status == 401 and bearer and not reauthenticated:
                    # Expired or revoked token, in REST or OAuth shape: fetch one, try again.
                    reauthenticated = True
                    self._forget(token)
                    attempt -= 1
                    continue
                error = refusals.error_from_response(status, self._body(resp), what=what,
                                                    debug_id=debug_id)
                if not error.retryable:
                    raise error
                wait = retry_after_seconds(resp.headers.get("retry-after"), self._clock.now())
                if wait is not None and wait > self._max_retry_after:
                    error.details["retry_after"] = wait
                    raise error  # longer than a caller should be held: let it reschedule
            pause = self._retry.next(attempt, hint=wait, floor=self._floor)
            if pause is None:
                raise error from cause
            if not pause.in_time:
                raise self._out_of_time(method, path, what, pause.seconds) from (cause or error)
            log.info("paypal %s %s: retrying in %.2fs", method, path, pause.seconds)
            await self._sleep(pause.seconds)

    @staticmethod
    def _body(resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            return None

    def _json(self, resp: httpx.Response, what: str) -> dict[str, Any]:
        data = self._body(resp)
        if not isinstance(data, dict):
            raise ProviderError(f"PayPal {what} answered {resp.status_code} without a JSON object",
                                provider=self.name, kind="unknown", status=resp.status_code,
                                debug_id=resp.headers.get("paypal-debug-id"))
        return data

    async def _call(self, method: str, path: str, *, what: str, request_id: str | None = None,
                    body: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if method != "GET":
            headers.update({"Content-Type": "application/json",
                            "Prefer": "return=representation",
                            "PayPal-Request-Id": _check_request_id(request_id or "")})
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        return await self._send(method, path, what=what, headers=headers, content=content)

    async def _parsed(self, parse: Callable[[Any], T], method: str, path: str, *, what: str,
                      request_id: str | None = None, body: dict[str, Any] | None = None) -> T:
        resp = await self._call(method, path, what=what, request_id=request_id, body=body)
        try:
            return parse(self._json(resp, what))
        except ProviderError as exc:
            exc.status = exc.status or resp.status_code
            exc.debug_id = exc.debug_id or resp.headers.get("paypal-debug-id")
            raise
