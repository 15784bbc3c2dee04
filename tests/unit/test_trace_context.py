"""W3C Trace Context (`paywire.domain.trace`): the `traceparent` parser, new spans, and the work
in progress every layer reads."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.domain import trace

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"
HEADER = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]")


def test_a_valid_header_names_the_callers_trace_and_span() -> None:
    """The spec's own example parses to its trace id, parent id and sampled flag."""
    caller = trace.parse(VALID)
    assert caller is not None
    assert (caller.trace_id, caller.span_id, caller.sampled, caller.origin) == (
        TRACE, PARENT, True, "received")
    unsampled = trace.parse(f"00-{TRACE}-{PARENT}-00")
    assert unsampled is not None and unsampled.sampled is False


@pytest.mark.parametrize("value", [
    None, "", "   ", "garbage",
    f"00-{TRACE.upper()}-{PARENT}-01",  # upper-case hex
    f"00-{TRACE}-{PARENT.upper()}-01",
    f"ff-{TRACE}-{PARENT}-01",  # version ff is forbidden
    f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
    f"00-{TRACE}-{PARENT}-01-extra",  # version 00 is exactly 55 characters
    f"00-{TRACE}-{PARENT}-1",  # short flags
    f"00-{TRACE[:-1]}-{PARENT}-01",  # short trace id
    f"00-{TRACE}-{PARENT}0-01",  # long parent id
    f"0-{TRACE}-{PARENT}-01",  # short version
    f"00_{TRACE}_{PARENT}_01",  # wrong separators
    f"00-{TRACE}-{PARENT}-0g",  # not hex
    f"01-{TRACE}-{PARENT}-01extra",  # a later version's extra fields follow a dash
])
def test_an_invalid_header_is_none(value: str | None) -> None:
    """Every malformation the spec names is refused: absent, case, version ff, zero ids,
    wrong lengths, separators, non-hex, trailing content on version 00."""
    assert trace.parse(value) is None


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    """A version above 00 parses forwards-compatibly, its extra fields ignored (the spec)."""
    caller = trace.parse(f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like")
    assert caller is not None and (caller.trace_id, caller.span_id) == (TRACE, PARENT)
    assert trace.parse(f" {VALID}\t") is not None  # optional whitespace around the value


def test_start_continues_a_callers_trace_with_a_span_of_its_own() -> None:
    """A valid header: same trace, a fresh span whose parent is the caller's, tracestate kept."""
    span = trace.start(VALID, "congo=t61rcWkgMzE")
    assert span.trace_id == TRACE and span.parent_id == PARENT and span.span_id != PARENT
    assert span.origin == "received" and span.state == "congo=t61rcWkgMzE"
    assert span.traceparent == f"00-{TRACE}-{span.span_id}-01"
    assert span.headers() == {"traceparent": span.traceparent, "tracestate": "congo=t61rcWkgMzE"}
    assert trace.start(f"00-{TRACE}-{PARENT}-00").traceparent.endswith("-00")


@pytest.mark.parametrize("value", [None, "", "00-bad", f"ff-{TRACE}-{PARENT}-01"])
def test_start_without_a_valid_header_begins_a_new_sampled_trace(value: str | None) -> None:
    """No header, or a bad one: a new valid trace (never an error), its tracestate dropped."""
    span = trace.start(value, "congo=t61rcWkgMzE")
    assert trace.is_trace_id(span.trace_id) and span.trace_id != TRACE
    assert span.parent_id is None and span.origin == "new" and span.state is None
    assert HEADER.fullmatch(span.traceparent) and span.traceparent.endswith("-01")


def test_unknown_flags_are_not_passed_on() -> None:
    """Flags other than `sampled` are not understood, so a span sends only that bit."""
    assert trace.start(f"00-{TRACE}-{PARENT}-03").traceparent.endswith("-01")
    assert trace.start(f"00-{TRACE}-{PARENT}-02").traceparent.endswith("-00")


def test_a_bad_tracestate_is_dropped_and_the_trace_kept() -> None:
    """A tracestate over 512 characters or with control characters is left out; the trace
    itself is still continued."""
    assert trace.start(VALID, "a=" + "b" * 600).state is None
    assert trace.start(VALID, "a=b\x01").state is None
    assert trace.start(VALID, "a=b\x01").trace_id == TRACE


def test_new_ids_are_random_and_valid() -> None:
    """Fresh trace and span ids are lower-case hex of the right length, and differ."""
    traces = {trace.new_trace_id() for _ in range(50)}
    spans = {trace.new_span_id() for _ in range(50)}
    assert len(traces) == 50 and len(spans) == 50
    assert all(trace.is_trace_id(t) for t in traces)
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) for s in spans)


def test_join_is_a_new_span_of_a_stored_trace_or_a_new_trace() -> None:
    """A stored trace id gets a fresh span in it; none (or garbage) starts a new trace."""
    span = trace.join(TRACE)
    assert span.trace_id == TRACE and span.origin == "stored" and span.parent_id is None
    for missing in (None, "", "not-a-trace", "0" * 32):
        fresh = trace.join(missing)
        assert fresh.origin == "new" and trace.is_trace_id(fresh.trace_id)


def test_scope_sets_the_work_and_puts_the_previous_back() -> None:
    """Inside a scope the work is readable everywhere; after it, the outer work is back."""
    assert trace.current() is None and trace.outgoing() == {}
    outer = trace.start()
    with trace.scope(outer, order_id="ord_1", provider=None) as work:
        assert trace.current() is outer and trace.current_id() == outer.trace_id
        assert work.fields == {"order_id": "ord_1"}
        with trace.scope(trace.join(TRACE)):
            assert trace.current_id() == TRACE
        assert trace.current() is outer
        assert trace.outgoing() == {"traceparent": outer.traceparent}
    assert trace.current() is None and trace.current_id() is None


def test_follow_joins_an_orders_trace_only_when_paywire_started_the_work() -> None:
    """A trace paywire started gives way to the order's; a caller's or a stored one is kept;
    either way the fields are added."""
    with trace.scope(trace.start()) as work:
        trace.follow(TRACE, order_id="ord_1", provider="paypal")
        assert work.trace.trace_id == TRACE and work.trace.origin == "stored"
        assert work.fields == {"order_id": "ord_1", "provider": "paypal"}
        trace.follow(trace.new_trace_id(), order_id="ord_2")
        assert work.trace.trace_id == TRACE and work.fields["order_id"] == "ord_2"
    with trace.scope(trace.start(VALID)) as work:
        trace.follow(trace.new_trace_id())
        assert work.trace.trace_id == TRACE
    with trace.scope(trace.start()) as work:
        before = work.trace
        trace.follow(None)
        trace.follow(before.trace_id)  # its own trace (an order it just created): same span
        assert work.trace is before
    trace.follow(TRACE, order_id="ord_1")  # outside any work: nothing happens
    assert trace.current() is None


async def test_a_follow_in_a_task_reaches_the_work_that_started_it() -> None:
    """What a task (a copied context) learns reaches the entry point's work: it is shared."""
    with trace.scope(trace.start()) as work:
        await asyncio.create_task(_learn())
        assert work.trace.trace_id == TRACE and work.fields["order_id"] == "ord_9"


async def _learn() -> None:
    trace.follow(TRACE, order_id="ord_9")


def test_header_for_a_stored_trace() -> None:
    """The current span when it is in that trace, a fresh span of it otherwise; a record with
    no valid id goes out in the current span, and outside any work with none."""
    assert trace.header_for(None) is None and trace.header_for("nope") is None
    assert (trace.header_for(TRACE) or "").startswith(f"00-{TRACE}-")
    with trace.scope(trace.join(TRACE)) as work:
        assert trace.header_for(TRACE) == work.trace.traceparent
        other = trace.new_trace_id()
        assert (trace.header_for(other) or "").startswith(f"00-{other}-")
        assert trace.header_for(None) == trace.header_for("0" * 32) == work.trace.traceparent


@given(st.text(max_size=80))
def test_parse_never_raises_and_accepts_only_well_formed_values(value: str) -> None:
    """Any text parses to a valid span or to None; a parsed one round-trips."""
    caller = trace.parse(value)
    if caller is not None:
        assert trace.is_trace_id(caller.trace_id) and caller.span_id != "0" * 16
        assert re.fullmatch(r"[0-9a-f]{16}", caller.span_id)


@given(st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
       st.from_regex(r"[0-9a-f]{16}", fullmatch=True), st.sampled_from(["00", "01"]))
def test_well_formed_headers_round_trip(trace_id: str, parent_id: str, flags: str) -> None:
    """Every well-formed version-00 header with non-zero ids is accepted as written."""
    caller = trace.parse(f"00-{trace_id}-{parent_id}-{flags}")
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        assert caller is None
        return
    assert caller is not None
    assert (caller.trace_id, caller.span_id, caller.sampled) == (trace_id, parent_id,
                                                                 flags == "01")
