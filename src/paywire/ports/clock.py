"""The clock port: where services get the time (tests inject a frozen one)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Where services get the time (tests inject a frozen one)."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    """The default `Clock`: the system's wall clock, in UTC. The only implementation outside
    tests: adapters, services and commands take a `Clock` (defaulting to this one), so a test
    can stop or move time everywhere at once."""

    def now(self) -> datetime:
        """The current instant, aware UTC."""
        return datetime.now(UTC)
