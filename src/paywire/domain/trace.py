"""W3C Trace Context: one trace id from the shop's request to the shop's callback, in a context
variable every layer can read (as `deadline` is).

A trace id names one story: the API request that created an order, the provider calls made
for it, the webhooks about it, its history lines, its outbox rows and the callbacks that tell
the shop. Each entry point sets the work in progress (`scope`): the API from the request's
`traceparent` header (kept when valid, a fresh trace otherwise: a bad header is never a 4xx),
the outbox worker per row and the reconciler per order from the trace stored with them, the
webhook ingest from the order the event names (`follow`). What paywire sends out carries it:
`traceparent` on provider calls and shop callbacks (`outgoing`, `header_for`), `trace_id` on
the records it writes (`current_id`).

    shop ── traceparent T ──> API (span a) ── traceparent T-a ──> PayPal
                                 │ order, history, operation: T
    PayPal ── webhook ──> ingest (finds the order: joins T, span b) ── history, outbox: T
    outbox worker (row: T, span c) ── traceparent T-c + webhook-signature ──> shop

`traceparent` is `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` (lower case; all-zero
ids are invalid; version ff is invalid; a later version is read by its first four fields, as
the spec asks). paywire continues the caller's trace with a span id of its own, so the
parent id it sends on is always its own. Only the `sampled` flag (01) is understood and
passed on; a trace paywire starts is sampled, since every record keeps its id anyway.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
SAMPLED = 0x01
MAX_STATE_CHARS = 512  # the spec lets a vendor drop a longer tracestate
_PARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_STATE = re.compile(r"[\x20-\x7e]*")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16

# Where the trace of the work in progress came from: a caller's header (kept whatever the
# work touches), a record paywire stored (an order's, an outbox row's), or nowhere (paywire
# started it: it gives way to the trace of the order the work turns out to be about).
Origin = Literal["received", "stored", "new"]


def new_trace_id() -> str:
    """A random, valid trace id (32 lower-case hex digits, not all zero)."""
    while (value := secrets.token_hex(16)) == _ZERO_TRACE:  # pragma: no cover - 2**-128
        pass
    return value


def new_span_id() -> str:
    """A random, valid span (parent) id (16 lower-case hex digits, not all zero)."""
    while (value := secrets.token_hex(8)) == _ZERO_SPAN:  # pragma: no cover - 2**-64
        pass
    return value


def is_trace_id(value: object) -> bool:
    """Whether `value` is a valid trace id."""
    return isinstance(value, str) and bool(_TRACE_ID.fullmatch(value)) and value != _ZERO_TRACE


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A span of a trace: the trace id, this span's own id (the parent id of the calls it
    makes), the caller's span id when the trace came from a caller, and its flags."""

    trace_id: str
    span_id: str
    parent_id: str | None = None
    sampled: bool = True
    state: str | None = None  # the caller's tracestate, passed on to calls made for this span
    origin: Origin = "new"

    @property
    def traceparent(self) -> str:
        """The `traceparent` header value for a call made from this span."""
        return f"00-{self.trace_id}-{self.span_id}-{SAMPLED if self.sampled else 0:02x}"

    def headers(self) -> dict[str, str]:
        """The headers that carry this span on an outgoing call."""
        out = {TRACEPARENT: self.traceparent}
        if self.state:
            out[TRACESTATE] = self.state
        return out


def parse(value: str | None) -> TraceContext | None:
    """The caller's span named by a `traceparent` value (`span_id` is its parent id), or None
    when the value is absent or invalid in any way the spec names."""
    if value is None:
        return None
    value = value.strip(" \t")
    found = _PARENT.match(value)
    if found is None:
        return None
    version, trace_id, parent_id, flags = found.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    rest = value[found.end():]
    if version == "00" and rest:
        return None  # version 00 is exactly 55 characters
    if rest and not rest.startswith("-"):
        return None  # a later version may add fields, each after a dash
    return TraceContext(trace_id, parent_id, sampled=bool(int(flags, 16) & SAMPLED),
                        origin="received")


def _state(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip(" \t")
    if not value or len(value) > MAX_STATE_CHARS or not _STATE.fullmatch(value):
        return None
    return value


def start(traceparent: str | None = None, tracestate: str | None = None) -> TraceContext:
    """A span for work a caller asked for: in the caller's trace when `traceparent` is valid
    (its tracestate kept), else in a new trace (never an error: a bad header only loses the
    link to the caller)."""
    caller = parse(traceparent)
    if caller is None:
        return TraceContext(new_trace_id(), new_span_id())
    return TraceContext(caller.trace_id, new_span_id(), parent_id=caller.span_id,
                        sampled=caller.sampled, state=_state(tracestate), origin="received")


def join(trace_id: str | None) -> TraceContext:
    """A new span in the stored trace `trace_id` (an order's, an outbox row's), or in a new
    trace when there is none (a record written before traces were kept)."""
    if not is_trace_id(trace_id):
        return TraceContext(new_trace_id(), new_span_id())
    assert trace_id is not None  # noqa: S101 - is_trace_id said so
    return TraceContext(trace_id, new_span_id(), origin="stored")


@dataclass(slots=True)
class Work:
    """The work in progress: its span, and the fields its log lines carry (order id,
    provider, ...). Mutable and shared by reference, so what a route or a service learns
    (`tag`, `follow`) reaches the entry point's own closing log line, even from a task or a
    thread that copied the context."""

    trace: TraceContext
    fields: dict[str, str] = field(default_factory=dict)


_current: ContextVar[Work | None] = ContextVar("paywire_trace", default=None)


@contextmanager
def scope(trace: TraceContext, **fields: str | None) -> Iterator[Work]:
    """Run the block as the work `trace` names (with these log fields); the previous work
    (if any) is back after it."""
    work = Work(trace, {k: v for k, v in fields.items() if v is not None})
    token = _current.set(work)
    try:
        yield work
    finally:
        _current.reset(token)


def work() -> Work | None:
    """The work in progress, if an entry point set one."""
    return _current.get()


def current() -> TraceContext | None:
    """The span of the work in progress, if any."""
    found = _current.get()
    return None if found is None else found.trace


def current_id() -> str | None:
    """The trace id of the work in progress (what a record written now keeps), if any."""
    found = _current.get()
    return None if found is None else found.trace.trace_id


def tag(**fields: str | None) -> None:
    """Add log fields to the work in progress (None values are left out); nothing without
    one."""
    found = _current.get()
    if found is not None:
        found.fields.update({k: v for k, v in fields.items() if v is not None})


def follow(trace_id: str | None, **fields: str | None) -> None:
    """The work in progress turned out to be about a record kept under `trace_id` (an order):
    tag it with `fields` and, unless a caller named the trace, join that record's trace, so a
    webhook's, a reconciliation's or a buyer's capture's effects land in the order's story."""
    found = _current.get()
    if found is None:
        return
    tag(**fields)
    if (found.trace.origin == "new" and is_trace_id(trace_id)
            and trace_id != found.trace.trace_id):
        found.trace = join(trace_id)


def outgoing() -> dict[str, str]:
    """The trace headers for a call made now (empty outside any work)."""
    found = _current.get()
    return {} if found is None else found.trace.headers()


def header_for(trace_id: str | None) -> str | None:
    """The `traceparent` for a call about a record kept under `trace_id`: from the current
    span when it is in that trace, else from a new span of it. A record without a valid one
    (written before traces were kept) goes out in the current span's trace, if any."""
    found = _current.get()
    if not is_trace_id(trace_id):
        return None if found is None else found.trace.traceparent
    if found is not None and found.trace.trace_id == trace_id:
        return found.trace.traceparent
    return join(trace_id).traceparent
