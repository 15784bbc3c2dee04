"""The background jobs' one loop: busy rounds run back to back, idle ones wait the interval, a
failed round (ours or a bug) is logged and the loop goes on, and `stop` ends it promptly."""

from __future__ import annotations

import asyncio
import logging

import pytest

from paywire.domain.errors import ProviderError
from paywire.services import loop

log = logging.getLogger("paywire.test.loop")


class Job:
    """Answers rounds from a script (True busy, False idle, an exception raised), then stops
    the loop; notes when each round ran."""

    def __init__(self, stop: asyncio.Event, script: list[bool | Exception]) -> None:
        self.stop, self.script, self.times = stop, list(script), list[float]()

    async def round(self) -> bool:
        self.times.append(asyncio.get_running_loop().time())
        step = self.script.pop(0)
        if not self.script:
            self.stop.set()
        if isinstance(step, Exception):
            raise step
        return step


async def test_busy_rounds_run_back_to_back_and_idle_ones_wait() -> None:
    """After a busy round the next starts at once; after an idle one, `interval` later."""
    stop = asyncio.Event()
    job = Job(stop, [True, True, False, True])
    await loop.run(job.round, stop, 0.2, name="job", log=log)
    gaps = [b - a for a, b in zip(job.times, job.times[1:], strict=False)]
    assert gaps[0] < 0.1 and gaps[1] < 0.1
    assert gaps[2] >= 0.19


async def test_a_failed_round_is_logged_and_the_loop_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """A PaywireError and any other exception each cost one round (logged with its traceback,
    then the interval), never the loop."""
    stop = asyncio.Event()
    job = Job(stop, [ProviderError("down", provider="paypal"), RuntimeError("bug"), True])
    with caplog.at_level(logging.ERROR, logger=log.name):
        await loop.run(job.round, stop, 0.01, name="job", log=log)
    assert len(job.times) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["job round failed; retrying in 0.0 s",
                        "the job crashed; restarting in 0.0 s"]
    assert all(r.exc_info for r in caplog.records)


async def test_stop_ends_the_wait_at_once() -> None:
    """An idle loop with a long interval ends as soon as `stop` is set."""
    stop = asyncio.Event()
    rounds = 0

    async def idle() -> bool:
        nonlocal rounds
        rounds += 1
        return False

    task = asyncio.create_task(loop.run(idle, stop, 3600, name="job", log=log))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=1)
    assert rounds == 1


async def test_a_set_stop_runs_no_round() -> None:
    """A loop started with `stop` already set runs nothing."""
    stop = asyncio.Event()
    stop.set()

    async def never() -> bool:
        raise AssertionError("ran")

    await loop.run(never, stop, 1, name="job", log=log)
