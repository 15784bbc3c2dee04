"""When to try again: one backoff policy for every retry paywire makes.

The provider clients retry a call within one request (a few tries, a cap of seconds, the
request's deadline), the outbox worker and the queue consumer retry a delivery over days (no
count, a cap of an hour, the message's maximum age). The rule is the same, so it lives once:
the n-th retry waits `base × 2^(n-1)`, at most `cap`, spread by a jitter so that many callers
that failed together do not come back together::

    attempt     1     2     3     4    ...   n
    ceiling     b     2b    4b    8b   ...   min(cap, b·2^(n-1))
    wait        jitter(ceiling), within [0, cap]

Pure: the randomness is a source handed in (`FullJitter(rng)`, `EqualJitter(rng)`; the
adapters pass the `random` module, tests a seeded `random.Random`), and the current time,
where a `Retry-After` date needs one, is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from paywire.domain import deadline

# 2^60 × any base is far past any cap; the exponent stops there so floats never overflow.
MAX_EXPONENT = 60

Jitter = Callable[[float], float]
"""Spreads a backoff ceiling (seconds) into the wait actually taken."""


class RandomSource(Protocol):
    """Where a jitter draws from: the `random` module, or a seeded `random.Random` in tests."""

    def uniform(self, a: float, b: float, /) -> float:
        """A number in [a, b]."""
        ...


def no_jitter(delay: float) -> float:
    """The ceiling itself (tests, and anywhere waits must be predictable)."""
    return delay


@dataclass(frozen=True, slots=True)
class FullJitter:
    """A uniform draw from [0, ceiling] ("full jitter"): callers that failed together spread
    out over the whole window instead of arriving in waves."""

    rng: RandomSource

    def __call__(self, delay: float) -> float:
        return self.rng.uniform(0.0, delay)


@dataclass(frozen=True, slots=True)
class EqualJitter:
    """A uniform draw from [least × ceiling, ceiling]: spread out, yet always waiting at least
    `least` of the backoff, so how many retries fit in a time stays bounded."""

    rng: RandomSource
    least: float = 0.5

    def __call__(self, delay: float) -> float:
        return self.rng.uniform(delay * self.least, delay)


@dataclass(frozen=True, slots=True)
class Wait:
    """The pause before the next attempt; `in_time` is False when the request's deadline
    leaves no room for the pause and a useful attempt after it (the caller gives up with a
    transient error instead of sleeping)."""

    seconds: float
    in_time: bool = True


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: `base` seconds before the first retry, doubling up to
    `cap`; `attempts` tries in all (the first included), or None for no count (a delivery is
    bounded by its age instead)."""

    base: float
    cap: float
    jitter: Jitter = no_jitter
    attempts: int | None = None

    def ceiling(self, attempt: int) -> float:
        """The longest wait after the `attempt`-th try failed (1-based), before jitter."""
        exponent = min(max(attempt, 1) - 1, MAX_EXPONENT)
        return min(self.base * 2.0 ** exponent, self.cap)

    def delay(self, attempt: int) -> float:
        """The wait after the `attempt`-th try failed: its ceiling jittered, within [0, cap]."""
        return max(0.0, min(self.jitter(self.ceiling(attempt)), self.cap))

    def spent(self, attempt: int) -> bool:
        """True when the `attempt`-th try was the last one allowed."""
        return self.attempts is not None and attempt >= self.attempts

    def next(self, attempt: int, *, hint: float | None = None,
             floor: float = deadline.FLOOR_SECONDS) -> Wait | None:
        """After the `attempt`-th try failed: None if no try is left, else the wait before the
        next one (`hint`, a server's `Retry-After`, instead of the backoff when given), not in
        time when the current deadline (`paywire.domain.deadline`) would leave less than
        `floor` seconds after it."""
        if self.spent(attempt):
            return None
        seconds = hint if hint is not None else self.delay(attempt)
        return Wait(seconds, in_time=not deadline.exhausted(seconds + floor))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds, or an HTTP date read against
    `now`); None when absent or unreadable, never negative."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
