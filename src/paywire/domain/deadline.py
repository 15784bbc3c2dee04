"""A request's deadline: how long the work done for one request (or one Lambda invocation) may
still take, in a context variable every layer can read.

An entry point sets it (`paywire.api.middleware.DeadlineMiddleware` from the request budget or,
under Lambda, from the invocation's remaining time); the provider clients read it to cap each
attempt's timeout and to stop retrying when too little is left, and leases and locks taken for
the request end with it (plus a little grace), so a caller's retry after a killed request is
not locked out. Without a deadline set, nothing is capped (a CLI command, a background worker).

    request  ──set(deadline)── claim key (lock ≤ deadline+grace) ── PayPal attempt (timeout ≤ left)
             ── too little left to try again ── DeadlineExceeded → 503 Retry-After, key released

Monotonic time only: wall clocks jump, and a frozen test clock must not freeze the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

# Below this many seconds left, no new provider attempt starts: it could not finish usefully.
FLOOR_SECONDS = 1.0
# A lease or lock taken for a request outlives its deadline by this much at most.
GRACE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on a monotonic clock by which the request's work must be done."""

    at: float
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline `seconds` from now."""
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - self.clock()


_current: ContextVar[Deadline | None] = ContextVar("paywire_deadline", default=None)


def current() -> Deadline | None:
    """The deadline of the work in progress, if one was set."""
    return _current.get()


def remaining() -> float | None:
    """Seconds left before the current deadline; None when there is none."""
    deadline = _current.get()
    return None if deadline is None else deadline.remaining()


@contextmanager
def bound(deadline: Deadline) -> Iterator[Deadline]:
    """Run the block under `deadline` (or under the current one, if that is earlier)."""
    outer = _current.get()
    effective = outer if outer is not None and outer.at <= deadline.at else deadline
    token = _current.set(effective)
    try:
        yield effective
    finally:
        _current.reset(token)


def cap(seconds: float) -> float:
    """`seconds`, or less: what is left before the deadline (never below zero)."""
    left = remaining()
    return seconds if left is None else max(0.0, min(seconds, left))


def lease(seconds: float, grace: float = GRACE_SECONDS) -> float:
    """How long to hold a lease or lock taken for this request: `seconds`, but never past the
    deadline plus `grace` (a killed request's lock then lapses soon after its deadline)."""
    left = remaining()
    return seconds if left is None else max(grace, min(seconds, left + grace))


def exhausted(floor: float = FLOOR_SECONDS) -> bool:
    """True when a deadline is set and less than `floor` seconds are left."""
    left = remaining()
    return left is not None and left < floor
