"""Structured JSON logs for the Lambda functions (Powertools' Logger), secrets redacted.

Powertools' `Logger(service="paywire")` configures the standard `paywire` logger, so every
`paywire.*` module's log lines come out as one JSON object each, with the service name, the
function's request id and `cold_start` added per invocation (`invocation`). Each line is
redacted as a whole just before it is written: the secret values of the settings in use (PayPal
client secret, API keys, the fulfilment secret, a database password), plus anything shaped
like a `whsec_` secret or an `Authorization` credential, become `***` — in the message, the
extra fields and any traceback alike.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.correlation_paths import API_GATEWAY_HTTP
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

if TYPE_CHECKING:  # the settings are loaded at the first invocation, not at import
    from paywire.settings import Settings

SERVICE = "paywire"
MASK = "***"
# Credentials recognisable by shape, wherever they come from.
PATTERNS = (
    re.compile(r"whsec_[A-Za-z0-9+/=]+"),
    re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"),
)
MIN_SECRET_CHARS = 4  # shorter "secrets" would mask ordinary words

R = TypeVar("R")


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with each finished line redacted."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add_secrets(self, values: Iterable[str]) -> None:
        """Mask these values (and their JSON-escaped forms) from now on."""
        with self._lock:
            for value in values:
                if len(value) >= MIN_SECRET_CHARS:
                    self._secrets.add(value)
                    self._secrets.add(json.dumps(value)[1:-1])

    def redact(self, text: str) -> str:
        """`text` with every known secret and credential-shaped string masked."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in PATTERNS:
            text = pattern.sub(lambda m: f"{m.group(1)} {MASK}" if m.lastindex else MASK, text)
        return text

    def format(self, record: logging.LogRecord) -> str:
        """The record as one redacted JSON line."""
        return self.redact(super().format(record))


class StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stdout` is at the time (Lambda ships stdout to CloudWatch;
    a test capturing stdout sees the lines)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        """The current standard output."""
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current standard output."""


@functools.cache
def logger() -> Logger:
    """The process's Powertools logger (configured once): the `paywire` logger, JSON out."""
    configured = Logger(service=SERVICE, logger_formatter=RedactingFormatter(),
                        logger_handler=StdoutHandler(), utc=True)
    configured.append_keys(name="%(name)s")  # which paywire module spoke
    return configured


def formatter() -> RedactingFormatter:
    """The redacting formatter every `paywire` log line goes through."""
    registered = logger().registered_formatter
    assert isinstance(registered, RedactingFormatter)  # noqa: S101 - configured in logger()
    return registered


def secret_values(settings: Settings) -> list[str]:
    """Every secret value `settings` hold (to be masked in logs)."""
    values = [key.get_secret_value() for key in settings.api_keys]
    for secret in (settings.paypal.client_secret, settings.fulfilment_secret):
        if secret is not None:
            values.append(secret.get_secret_value())
    password = urlsplit(settings.database_url).password
    if password:
        values.append(password)
    return values


def protect(settings: Settings) -> None:
    """Mask `settings`' secrets in every log line from now on."""
    formatter().add_secrets(secret_values(settings))


def invocation(fn: Callable[[Any, Any], R], *, http: bool = False
               ) -> Callable[[Any, Any], R]:
    """`fn(event, context)` with the invocation's keys on every log line: request id, function
    name, cold start (and API Gateway's request id as `correlation_id` for `http`)."""
    inject = logger().inject_lambda_context(correlation_id_path=API_GATEWAY_HTTP if http
                                            else None)
    wrapped: Callable[[Any, Any], R] = inject(fn)
    return wrapped
