"""The clock port: where services get the time (tests inject a frozen one)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Where services get the time (tests inject a frozen one)."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...
