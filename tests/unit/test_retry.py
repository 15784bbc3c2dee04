"""The one backoff policy: today's numbers for the provider clients, the outbox and the queue
consumer, jitter drawn from an injected (seeded) source, Retry-After read against a given now."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.domain import deadline
from paywire.domain.retry import (
    Backoff,
    EqualJitter,
    FullJitter,
    Wait,
    no_jitter,
    retry_after_seconds,
)
from paywire.services.queue_delivery import backoff as queue_backoff
from paywire.services.queue_delivery import receives_to_max_age

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_the_provider_clients_numbers() -> None:
    """PayPal and APS by default: 0.5 s doubling, at most 8 s, four tries in all."""
    policy = Backoff(0.5, 8.0, attempts=4)
    assert [policy.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert [policy.spent(n) for n in range(1, 6)] == [False, False, False, True, True]


def test_the_outbox_numbers() -> None:
    """The outbox: 5 s doubling to an hour, no count (its bound is the message's age), and no
    overflow however many attempts a message has had."""
    policy = Backoff(5.0, 3600.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 10, 11, 12)] == [
        5.0, 10.0, 20.0, 40.0, 2560.0, 3600.0, 3600.0]
    assert policy.delay(10_000) == 3600.0
    assert not policy.spent(10_000)


def test_the_queue_consumer_keeps_its_wait_table() -> None:
    """The SQS consumer's backoff is the same policy: 5 s, 10 s, 20 s ... 1 h; a receive count
    below one counts as the first; the redrive bound of the default settings is unchanged."""
    base, cap = timedelta(seconds=5), timedelta(hours=1)
    assert [queue_backoff(n, base, cap) for n in (0, 1, 2, 3, 12, 13)] == [
        5.0, 5.0, 10.0, 20.0, 3600.0, 3600.0]
    assert receives_to_max_age(timedelta(days=3), base, cap) == 154


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=200))
def test_full_jitter_stays_in_its_window_and_replays_from_a_seed(seed: int, attempt: int) -> None:
    """Full jitter draws from [0, ceiling]; the same seed gives the same waits (the source is
    injected, so a test can pin it)."""
    policy = Backoff(5.0, 3600.0, FullJitter(random.Random(seed)))
    again = Backoff(5.0, 3600.0, FullJitter(random.Random(seed)))
    wait = policy.delay(attempt)
    assert 0.0 <= wait <= policy.ceiling(attempt)
    assert again.delay(attempt) == wait


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=1, max_value=200))
def test_equal_jitter_waits_at_least_half(seed: int, attempt: int) -> None:
    """Equal jitter draws from [ceiling / 2, ceiling]."""
    policy = Backoff(5.0, 3600.0, EqualJitter(random.Random(seed)))
    ceiling = policy.ceiling(attempt)
    assert ceiling / 2 <= policy.delay(attempt) <= ceiling


def test_a_jitter_cannot_push_a_wait_past_the_cap_or_below_zero() -> None:
    """Whatever a jitter answers, the wait stays within [0, cap]."""
    assert Backoff(1.0, 4.0, lambda d: d * 100).delay(5) == 4.0
    assert Backoff(1.0, 4.0, lambda d: -d).delay(1) == 0.0


def test_next_gives_up_after_the_last_try() -> None:
    """`next` answers None once the tries are spent, else the backoff's wait."""
    policy = Backoff(0.5, 8.0, no_jitter, attempts=3)
    assert policy.next(1) == Wait(0.5)
    assert policy.next(2) == Wait(1.0)
    assert policy.next(3) is None


def test_next_prefers_a_retry_after_hint() -> None:
    """A server's Retry-After replaces the backoff for that wait."""
    assert Backoff(0.5, 8.0, attempts=4).next(1, hint=3.0) == Wait(3.0)


def test_next_is_out_of_time_when_the_deadline_leaves_no_room() -> None:
    """Under a request's deadline, a wait that leaves less than `floor` seconds after it is not
    in time (the caller raises DeadlineExceeded instead of sleeping)."""
    policy = Backoff(0.5, 8.0, attempts=4)
    clock = [100.0]
    with deadline.bound(deadline.Deadline(102.5, lambda: clock[0])):
        assert policy.next(1, floor=1.0) == Wait(0.5, in_time=True)
        assert policy.next(3, floor=1.0) == Wait(2.0, in_time=False)
        assert policy.next(1, hint=2.5, floor=1.0) == Wait(2.5, in_time=False)


@pytest.mark.parametrize(("header", "seconds"), [
    (None, None), ("", None), ("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None),
    ("inf", None), ("nan", None),
    (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
    (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
])
def test_retry_after_reads_seconds_and_dates(header: str | None, seconds: float | None) -> None:
    """Delta-seconds or an HTTP date (against the given now); never negative; None when absent
    or unreadable."""
    assert retry_after_seconds(header, NOW) == seconds
