"""paywire's log lines (`paywire.logs`): one JSON object per event with the trace and the work's
fields, text for a person, and every secret of the settings masked in both."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from paywire import logs
from paywire.domain import trace
from paywire.settings import Settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SECRETS = {
    "paypal_client_secret": "paypal-client-secret-Zq9",
    "aps_access_code": "aps-access-code-Hk3",
    "aps_request_phrase": "aps-request-phrase-Pw8",
    "aps_response_phrase": "aps-response-phrase-Qm2",
    "fulfilment_secret": "whsec_c2hvcC1zZWNyZXQtZm9yLWxvZ3MtMDEyMzQ1Ng==",
}
API_KEY = "admin-api-key-Lx5-0123456789"
DB_PASSWORD = "db-password-Vt7"


@pytest.fixture
def settings() -> Settings:
    """Settings holding a secret of every kind paywire knows."""
    return Settings.load(_env_file=None, api_keys=[API_KEY], paypal_client_id="cid",
                         aps_merchant_identifier="merchant", providers=["paypal", "aps"],
                         database_url=f"postgresql+psycopg://u:{DB_PASSWORD}@h:5432/db",
                         fulfilment_url="https://shop.example/fulfil",
                         aps_return_url="https://shop.example/aps", **SECRETS)


def _capture(fmt: logs.LogFormat) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    out = logging.StreamHandler(stream)
    out.setFormatter(logs.formatter(fmt))
    out.addFilter(logs.TraceFields())
    logger = logging.getLogger(f"paywire.test.logs.{fmt}")
    logger.handlers = [out]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_core_fields_the_trace_and_the_event_fields() -> None:
    """Inside a trace: ts, level, logger, msg, trace and span ids, the work's order id and
    provider, and the event's own outcome and extras, on one line."""
    logger, stream = _capture("json")
    span = trace.join(TRACE)
    with trace.scope(span, order_id="ord_1", provider="paypal"):
        logger.info("order %s captured", "ord_1", extra={"outcome": "COMPLETED", "attempt": 2})
    [line] = _lines(stream)
    assert line["msg"] == "order ord_1 captured" and line["level"] == "INFO"
    assert line["logger"] == "paywire.test.logs.json" and line["ts"].endswith("Z")
    assert (line["trace_id"], line["span_id"]) == (TRACE, span.span_id)
    assert (line["order_id"], line["provider"], line["outcome"]) == ("ord_1", "paypal",
                                                                      "COMPLETED")
    assert line["attempt"] == 2
    assert len(stream.getvalue().splitlines()) == 1


def test_outside_any_work_the_core_fields_are_null_and_extra_wins() -> None:
    """No work: the core fields are there, null; an event's own `extra=` is never overwritten
    by the work's fields."""
    logger, stream = _capture("json")
    logger.warning("no trace here")
    with trace.scope(trace.start(), order_id="ord_work"):
        logger.warning("mine", extra={"order_id": "ord_extra"})
    first, second = _lines(stream)
    assert {k: first[k] for k in logs.CORE_FIELDS} == dict.fromkeys(logs.CORE_FIELDS)
    assert second["order_id"] == "ord_extra" and second["trace_id"]


def test_a_traceback_stays_inside_the_one_json_line() -> None:
    """An exception's traceback is the line's `exc` field, not more lines."""
    logger, stream = _capture("json")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    [line] = _lines(stream)
    assert "ValueError: boom" in line["exc"]


def test_secret_values_are_every_secret_the_settings_hold(settings: Settings) -> None:
    """Each SecretStr (top level, lists, provider sections) and the database password."""
    assert set(logs.secret_values(settings)) == {*SECRETS.values(), API_KEY, DB_PASSWORD}


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_reaches_a_line_in_either_format(settings: Settings,
                                                   fmt: logs.LogFormat) -> None:
    """Secrets in the message, in an extra field and in a traceback, and credentials by shape
    (Bearer, Basic, whsec_), are all masked."""
    logs.protect(settings)
    logger, stream = _capture(fmt)
    every = [*SECRETS.values(), API_KEY, DB_PASSWORD]
    with trace.scope(trace.start(), provider="aps"):
        logger.info("sent %s", " ".join(every), extra={"outcome": every[1], "code": every})
        try:
            raise RuntimeError(f"refused {every[0]} and {every[1]}")
        except RuntimeError:
            logger.exception("with Authorization: Bearer abc.def-ghi and Basic dXNlcjpwYXNz, "
                             "whsec_bm90LWEtcmVhbC1vbmU=")
    text = stream.getvalue()
    leaked = [s for s in [*every, "abc.def-ghi", "dXNlcjpwYXNz", "bm90LWEtcmVhbC1vbmU="]
              if s in text]
    assert not leaked, leaked
    assert "***" in text and "Bearer ***" in text


def test_a_text_line_names_the_trace_and_order() -> None:
    """A person's line ends with the trace id, the order and the outcome."""
    logger, stream = _capture("text")
    with trace.scope(trace.join(TRACE), order_id="ord_7"):
        logger.info("delivered", extra={"outcome": "delivered"})
    line = stream.getvalue().strip()
    assert "paywire.test.logs.text: delivered" in line
    assert f"trace_id={TRACE}" in line and "order_id=ord_7" in line
    assert "outcome=delivered" in line and "span_id" not in line


@pytest.fixture
def restored() -> Iterator[None]:
    """The `paywire` and uvicorn loggers put back as they were."""
    names = (logs.PAYWIRE_LOGGER, *logs.UVICORN_LOGGERS)
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers),
                 logging.getLogger(n).propagate) for n in names}
    try:
        yield
    finally:
        for name, (level, handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.handlers = handlers
            logger.propagate = propagate


@pytest.mark.usefixtures("restored")
def test_configure_replaces_its_handler_and_writes_to_the_current_stderr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Configured twice, one line per event; on whatever stderr is at the time; uvicorn's
    loggers go through it when asked."""
    logs.configure("text")
    logs.configure("json", level="DEBUG", uvicorn=True)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with trace.scope(trace.join(TRACE)):
        logging.getLogger("paywire.some.module").debug("one event")
        logging.getLogger("uvicorn.error").info("uvicorn says")
    lines = _lines(err)
    assert [(line["logger"], line["msg"], line["trace_id"]) for line in lines] == [
        ("paywire.some.module", "one event", TRACE), ("uvicorn.error", "uvicorn says", TRACE)]


@pytest.mark.usefixtures("restored")
def test_setup_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """PAYWIRE_LOG_FORMAT overrides the entry point's default (any case); PAYWIRE_LOG_LEVEL
    sets the level."""
    monkeypatch.setenv("PAYWIRE_LOG_FORMAT", "TEXT")
    monkeypatch.setenv("PAYWIRE_LOG_LEVEL", "warning")
    chosen = Settings.load(_env_file=None)
    assert logs.setup(chosen, "json") == "text"
    assert logging.getLogger("paywire").level == logging.WARNING
    monkeypatch.delenv("PAYWIRE_LOG_FORMAT")
    assert logs.setup(Settings.load(_env_file=None), "json") == "json"
