"""The one loop every background job runs in: the outbox worker, the truth fetcher and the
reconciler, in a serving process (`paywire.bootstrap.app`) or on their own (`paywire worker`).

A job is a round (`run_once`, adapted to say whether it found work). The loop runs rounds until
`stop` is set; after a round with nothing to do it waits `interval` seconds (or until `stop`),
after a busy one it goes again at once. A round that fails does not end the loop: a
`PaywireError` (the store or a provider unavailable) is logged and retried after `interval`, and
so is anything else (a bug), logged as a crash with its traceback, so one bad round never stops
deliveries for good::

    round ── busy ──> round ── idle ──> wait(interval | stop) ──> round ── raises ──> log, wait ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from paywire.domain.errors import PaywireError

Round = Callable[[], Awaitable[bool]]
"""One round of a job: True if it found work (the next round starts at once)."""


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run(round_: Round, stop: asyncio.Event, interval: float, *, name: str,
              log: logging.Logger) -> None:
    """Run `round_` until `stop` is set, waiting `interval` seconds after an idle or failed
    round; failures are logged to `log` under the job's `name` and never end the loop."""
    while not stop.is_set():
        try:
            busy = await round_()
        except PaywireError:
            log.exception("%s round failed; retrying in %.1f s", name, interval)
            busy = False
        except Exception:
            log.exception("the %s crashed; restarting in %.1f s", name, interval)
            busy = False
        if not busy:
            await pause(stop, interval)
