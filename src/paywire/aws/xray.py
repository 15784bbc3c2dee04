"""The X-Ray SDK's recorder as paywire's Lambda functions need it (imported when tracing is on).

Two changes to what the SDK does inside Lambda:

- **Where the current subsegment lives.** The SDK's Lambda context keeps the open subsegments
  in a per-thread list. paywire runs boto3 in worker threads (`asyncio.to_thread`), so DynamoDB
  and SQS calls would hang off the function's segment instead of the handler's subsegment; and
  it runs concurrent asyncio tasks on one thread (a batch's deliveries), which would push onto
  and pop from one shared list, ending each other's subsegments. `TaskContext` keeps them in a
  context variable instead: each task and each `to_thread` call starts from its creator's open
  subsegment and its own ones stay its own.
- **What is sent.** `RedactingEmitter` redacts each document as `paywire.aws.logs` redacts a
  log line (the settings' secret values, bearer and basic credentials, `whsec_` secrets) before
  it goes to the daemon over UDP. Nothing paywire records should need it; it is the last guard.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import (
    PROTOCOL_DELIMITER,
    PROTOCOL_HEADER,
    UDPEmitter,
)
from aws_xray_sdk.core.lambda_launcher import LambdaContext

from paywire.aws import logs

log = logging.getLogger("paywire.aws.tracing")

_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_STATE: ContextVar[MappingProxyType[str, Any]] = ContextVar("paywire_xray", default=_EMPTY)


class ContextLocal:
    """Attributes kept in a context variable (never changed in place: a change makes a new
    mapping in the current context only), in place of the SDK's `threading.local`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return _STATE.get()[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        _STATE.set(MappingProxyType({**_STATE.get(), name: value}))

    def clear(self) -> None:
        """Forget everything (in the current context)."""
        _STATE.set(_EMPTY)


class TaskContext(LambdaContext):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's Lambda context (the segment follows `_X_AMZN_TRACE_ID`), with the open
    subsegments per asyncio task and `to_thread` call rather than per thread."""

    def __init__(self) -> None:
        super().__init__()
        self._local = ContextLocal()

    def _own_entities(self) -> None:
        # The list may be shared with the context this one was copied from: copy it before
        # the SDK appends to it or pops from it.
        self._local.entities = list(getattr(self._local, "entities", None) or [])

    def put_subsegment(self, subsegment: Any) -> None:
        """Open `subsegment` under the current entity, in this context only."""
        self._refresh_context()
        self._own_entities()
        super().put_subsegment(subsegment)

    def end_subsegment(self, end_time: float | None = None) -> bool:
        """Close this context's current subsegment."""
        self._refresh_context()
        self._own_entities()
        ended: bool = super().end_subsegment(end_time)
        return ended

    def clear_trace_entities(self) -> None:
        """Forget this context's segment and subsegments."""
        self._local.clear()


class RedactingEmitter(UDPEmitter):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's UDP emitter (the daemon at `AWS_XRAY_DAEMON_ADDRESS`), each document redacted
    as a log line is."""

    def send_entity(self, entity: Any) -> None:
        """Serialize, redact and send `entity`; a failure is logged (by type) and dropped."""
        try:
            document = logs.formatter().redact(entity.serialize())
            self._send_data(f"{PROTOCOL_HEADER}{PROTOCOL_DELIMITER}{document}")
        except Exception as exc:  # noqa: BLE001 - a trace is never worth failing an invocation
            log.warning("could not send a trace document to the X-Ray daemon: %s",
                        type(exc).__name__)


def configure() -> None:
    """Give the SDK's global recorder these context and emitter."""
    xray_recorder.configure(context=TaskContext(), emitter=RedactingEmitter())
