"""Structured JSON logs for the Lambda functions (Powertools' Logger), secrets redacted.

Powertools' `Logger(service="paywire")` configures the standard `paywire` logger, so every
`paywire.*` module's log lines come out as one JSON object each, with the service name, the
function's request id and `cold_start` added per invocation (`invocation`), and the fields of
the work in progress as everywhere else (`paywire.logs.TraceFields`: `trace_id`, `span_id`,
`order_id`, `provider`, ...). Each line is redacted as a whole just before it is written, by the
process's one redactor (`paywire.logs.redactor`): the secret values of the settings in use
(PayPal client secret, APS access code and phrases, API keys, the fulfilment secret, a database
password), plus anything shaped like a `whsec_` secret or an `Authorization` credential, become
`***` — in the message, the extra fields and any traceback alike.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.correlation_paths import API_GATEWAY_HTTP
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from paywire import logs as lines

if TYPE_CHECKING:  # the settings are loaded at the first invocation, not at import
    from paywire.settings import Settings

SERVICE = "paywire"
MASK = lines.MASK

R = TypeVar("R")


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with each finished line redacted."""

    def add_secrets(self, values: Iterable[str]) -> None:
        """Mask these values (and their JSON-escaped forms) from now on."""
        lines.redactor().add_secrets(values)

    def redact(self, text: str) -> str:
        """`text` with every known secret and credential-shaped string masked."""
        return lines.redactor().redact(text)

    def format(self, record: logging.LogRecord) -> str:
        """The record as one redacted JSON line."""
        return self.redact(super().format(record))


class StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stdout` is at the time (Lambda ships stdout to CloudWatch;
    a test capturing stdout sees the lines), the work's trace fields added."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.addFilter(lines.TraceFields())

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
    """Every secret value `settings` hold (to be masked in logs): `paywire.logs.secret_values`."""
    return lines.secret_values(settings)


def protect(settings: Settings) -> None:
    """Mask `settings`' secrets in every log line from now on."""
    lines.protect(settings)


def invocation(fn: Callable[[Any, Any], R], *, http: bool = False
               ) -> Callable[[Any, Any], R]:
    """`fn(event, context)` with the invocation's keys on every log line: request id, function
    name, cold start (and API Gateway's request id as `correlation_id` for `http`)."""
    inject = logger().inject_lambda_context(correlation_id_path=API_GATEWAY_HTTP if http
                                            else None)
    wrapped: Callable[[Any, Any], R] = inject(fn)
    return wrapped
