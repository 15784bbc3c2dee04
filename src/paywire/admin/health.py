"""The dashboard's health strip: what it shows, and the seam it is read through.

`HealthSource` is any coroutine function answering a `HealthStrip`; the composition root gives
the dashboard one (`paywire.bootstrap`), built over the health snapshot service. Without one
the strip says so rather than guessing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class HealthStrip:
    """The strip on top of the dashboard: is anything on fire?"""

    # Webhook deliveries received in the last hour, by outcome (applied, duplicate, refused...).
    webhooks_last_hour: Mapping[str, int] = field(default_factory=dict)
    outbox_backlog: int = 0  # messages waiting for delivery (pending and queued)
    outbox_oldest: timedelta | None = None  # how long the oldest of them has waited
    dead_messages: int = 0
    stuck_orders: int = 0  # orders past their status's maximum age
    needs_attention: int | None = None
    error: str | None = None  # set when the snapshot could not be read

    @classmethod
    def unavailable(cls, why: str) -> HealthStrip:
        """A strip that says it could not be read, and why."""
        return cls(error=why)

    @property
    def alarming(self) -> bool:
        """Whether anything on the strip wants a person now."""
        refused = sum(v for k, v in self.webhooks_last_hour.items()
                      if k in ("refused", "rejected", "error"))
        return bool(self.error or self.dead_messages or self.stuck_orders or refused)


HealthSource = Callable[[], Awaitable[HealthStrip]]
