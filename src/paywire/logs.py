"""paywire's log lines at every entry point: one JSON object per event (or text for a person),
each with its trace, and every secret masked.

`serve`, `worker` and `reconcile` write JSON by default, `dev` and the operator commands text
(`PAYWIRE_LOG_FORMAT=json|text` decides for all; `PAYWIRE_LOG_LEVEL` the level), on standard
error (standard output stays the commands' own). A JSON line::

    {"ts": "2025-03-04T05:06:07.891Z", "level": "INFO", "logger": "paywire.api.access",
     "msg": "POST /v1/checkout/orders -> 201", "trace_id": "4bf92f35...", "span_id": "00f067aa...",
     "order_id": "ord_...", "provider": "paypal", "outcome": "201", "duration_ms": 84.2, ...}

`ts`, `level`, `logger`, `msg`, `trace_id`, `order_id`, `provider` and `outcome` are on every
line (null when the event has none); the rest are the event's own (`extra=`) and the fields of
the work in progress (`paywire.domain.trace`). The Lambda functions log through Powertools
(`paywire.aws.logs`) with the same fields (`TraceFields`) and the same masking (`redactor`).

Masking is the last step of every line, over the whole finished text: the secret values of the
settings in use (every `SecretStr` of them: PayPal's client secret, APS's access code and
phrases, API keys, the fulfilment secret; and a database password), plus anything shaped like
a `whsec_` secret or an `Authorization` credential, become `***`, in the message, the fields and
any traceback alike.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO
from urllib.parse import urlsplit

from paywire.domain import trace

if TYPE_CHECKING:  # AWS handler modules import this one; the settings load at first use
    from paywire.settings import Settings

LogFormat = Literal["json", "text"]
MASK = "***"
# Credentials recognisable by shape, wherever they come from.
PATTERNS = (
    re.compile(r"whsec_[A-Za-z0-9+/=]+"),
    re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"),
)
MIN_SECRET_CHARS = 4  # shorter "secrets" would mask ordinary words
# On every JSON line, null when the event has none: what an operator searches by.
CORE_FIELDS = ("trace_id", "span_id", "order_id", "provider", "outcome")
# What every LogRecord has: the rest of a record's attributes are the event's own fields.
RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
# The loggers an entry point's handler serves: paywire's own, and uvicorn's where it serves.
PAYWIRE_LOGGER = "paywire"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")


class Redactor:
    """Masks known secret values and credential-shaped text (thread-safe)."""

    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add_secrets(self, values: Iterable[str]) -> None:
        """Mask these values (and their JSON-escaped forms) from now on."""
        added: set[str] = set()
        for value in values:
            if len(value) >= MIN_SECRET_CHARS:
                added.update((value, json.dumps(value)[1:-1]))
        with self._lock:
            self._secrets = self._secrets | added

    def redact(self, text: str) -> str:
        """`text` with every known secret and credential-shaped string masked."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in PATTERNS:
            text = pattern.sub(lambda m: f"{m.group(1)} {MASK}" if m.lastindex else MASK, text)
        return text


@functools.cache
def redactor() -> Redactor:
    """The process's one redactor: every log line (and X-Ray document) goes through it."""
    return Redactor()


def _secrets_in(value: object) -> Iterator[str]:
    from pydantic import BaseModel, SecretStr  # only once settings exist, see the imports

    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item)


def secret_values(settings: Settings) -> list[str]:
    """Every secret value `settings` hold (each `SecretStr`, in the provider sections too, and
    the database URL's password): what the logs mask."""
    values = [v for v in _secrets_in(settings) if v]
    password = urlsplit(settings.database_url).password
    if password:
        values.append(password)
    return values


def protect(settings: Settings) -> None:
    """Mask `settings`' secrets in every log line from now on."""
    redactor().add_secrets(secret_values(settings))


class TraceFields(logging.Filter):
    """Puts the work in progress on each record: its trace and span ids and its fields (order
    id, provider, ...), never over what the record's own `extra=` says."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields; keep every record."""
        work = trace.work()
        if work is not None:
            found = {"trace_id": work.trace.trace_id, "span_id": work.trace.span_id,
                     **work.fields}
            for key, value in found.items():
                if key not in record.__dict__:
                    setattr(record, key, value)
        return True


def _event_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items()
            if k not in RESERVED and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, redacted as a whole."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one redacted JSON line."""
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        fields = _event_fields(record)
        for key in CORE_FIELDS:
            doc[key] = fields.pop(key, None)
        for key, value in fields.items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return redactor().redact(json.dumps(doc, default=str, separators=(",", ":")))


class TextFormatter(logging.Formatter):
    """A line for a person: time, level, logger, message, then the trace and the event's
    fields as `key=value`; redacted as a whole."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as redacted text."""
        line = super().format(record)
        fields = _event_fields(record)
        tail = " ".join(f"{k}={fields[k]}" for k in CORE_FIELDS
                        if fields.get(k) is not None and k != "span_id")
        if tail:
            head, sep, rest = line.partition("\n")  # a traceback stays below the line
            line = f"{head} [{tail}]{sep}{rest}"
        return redactor().redact(line)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time (a test capturing it sees the lines; a
    closed capture left behind is never written to)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        """The current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current standard error."""


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter for `fmt`."""
    return JsonFormatter() if fmt == "json" else TextFormatter()


def handler(fmt: LogFormat) -> logging.Handler:
    """A handler writing `fmt` lines to standard error, the trace fields added."""
    made = StderrHandler()
    made.setFormatter(formatter(fmt))
    made.addFilter(TraceFields())
    made.set_name(f"paywire-{fmt}")
    return made


def configure(fmt: LogFormat, *, level: str = "INFO", secrets: Iterable[str] = (),
              uvicorn: bool = False) -> logging.Handler:
    """Send paywire's log lines (and uvicorn's, with `uvicorn`) through one `fmt` handler on
    standard error at `level`, `secrets` masked. Calling it again replaces the handler: never
    two lines for one event."""
    redactor().add_secrets(secrets)
    made = handler(fmt)
    names = (PAYWIRE_LOGGER, *(UVICORN_LOGGERS if uvicorn else ()))
    for name in names:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if (h.name or "").startswith("paywire-")]:
            logger.removeHandler(old)
        logger.addHandler(made)
        logger.setLevel(level)
        # uvicorn's own lines stop here; paywire's still reach any root handler (pytest's).
        if name != PAYWIRE_LOGGER:
            logger.propagate = False
    return made


def setup(settings: Settings, default: LogFormat, *, uvicorn: bool = False) -> LogFormat:
    """`configure` from settings (`PAYWIRE_LOG_FORMAT`, else `default`; `PAYWIRE_LOG_LEVEL`;
    the settings' secrets masked); the format chosen."""
    fmt: LogFormat = settings.log_format or default
    configure(fmt, level=settings.log_level, secrets=secret_values(settings), uvicorn=uvicorn)
    return fmt
