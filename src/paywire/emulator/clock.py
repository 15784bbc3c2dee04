"""The emulator's clock: wall time plus an offset the control API can advance."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class EmulatorClock:
    """Monotone-enough UTC clock that tests can move forward without sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        """Seconds since the epoch on the emulator's timeline."""
        return time.time() + self._offset

    def now_dt(self) -> datetime:
        """The current emulated instant as an aware datetime."""
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def advance(self, seconds: float) -> None:
        """Move the emulated time forward (never backwards)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds

    def reset(self) -> None:
        """Back to wall time."""
        self._offset = 0.0

    @property
    def offset(self) -> float:
        """Seconds the clock has been advanced."""
        return self._offset


def iso(ts: float) -> str:
    """PayPal's timestamp format: RFC 3339 UTC with a Z and no fractional seconds."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
