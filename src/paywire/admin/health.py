"""The dashboard's health strip: `services.health`'s snapshot (prom's read model), shown on
top of the needs-attention queue and the outbox page.

The container carries one `HealthGauges` per process (`Container.health`): its reads are cached
for a few seconds and shared by concurrent pages, so a busy dashboard costs the store one set
of counts per interval. A strip that cannot be read says why instead of showing zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

from paywire.domain.errors import PaywireError
from paywire.services.health import HealthGauges, HealthSnapshot


@dataclass(frozen=True, slots=True)
class HealthStrip:
    """What the strip shows: a snapshot, or why there is none."""

    snapshot: HealthSnapshot | None
    error: str | None = None

    @property
    def alarming(self) -> bool:
        """Whether anything on it wants a person now."""
        s = self.snapshot
        return s is None or bool(s.outbox_dead or s.stuck_total or s.rejections_total
                                 or s.needs_attention)


async def read_strip(gauges: HealthGauges | None) -> HealthStrip:
    """The strip from `gauges` (None: no read model is wired into this process)."""
    if gauges is None:
        return HealthStrip(None, "no health read model is wired into this process")
    try:
        return HealthStrip(await gauges.read())
    except PaywireError as exc:
        return HealthStrip(None, f"could not be read: {exc.message}")
