"""A small storm (bench/storm.py) in the suite: ~100 orders through real paywire processes while
webhooks are duplicated, reordered and dropped and API and worker processes are kill -9'd.

Nothing may be lost (paid at PayPal but not COMPLETED in paywire, or never announced), stuck
(non-final) or fulfilled twice (one fact under two message ids). SQLite runs one API process and
one worker; PostgreSQL two of each, each API with its own webhook subscription, so every event
reaches both and the races are real.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import storm  # bench/storm.py, found through the path above


@pytest.mark.timeout(90)
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_small_storm_loses_nothing_and_fulfils_once(store: str) -> None:
    lines: list[str] = []
    result = await storm.run_storm(storm.StormConfig(
        orders=100, seed=7, store=store, kills=3, concurrency=12, quiesce_timeout=40,
        log=lines.append))
    report = "\n".join([*result.lines(), *lines])
    assert len(result.kills) >= 2, report
    assert result.quiet, report
    assert not result.lost, report
    assert not result.unannounced, report
    assert not result.stuck, report
    assert not result.double, report
    assert result.forged == 0, report
    assert not result.errors, report
    assert result.histogram == {"COMPLETED": 100}, report
    assert result.api_captures + result.direct_captures == 100, report
    assert result.ok, report
