"""A small storm (bench/storm.py) in the suite: ~100 orders through real paywire processes while
webhooks and APS feedback are duplicated, reordered, delayed and dropped and API and worker
processes are kill -9'd.

Half the orders are paid by card through Amazon Payment Services (the emulator's hosted page,
driven over HTTP: success, 3-D Secure, a decline then a second attempt, uncertain, pending
resolved at the back office), the rest through PayPal. Nothing may be lost (paid at the provider
but not COMPLETED in paywire, or never announced), stuck (non-final) or fulfilled twice (one fact
under two message ids); no APS order may be charged twice, completed without a payment, or
announced with a transaction that is not the one that paid it (a declined attempt). SQLite runs
one API process and one worker; PostgreSQL two of each, each API with its own PayPal webhook
subscription, so every event reaches both and the races are real (APS's direct feedback goes to
the first API process, its notifications to the second).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import storm  # bench/storm.py, found through the path above

CARDS = {"success", "challenge", "decline", "uncertain", "pending"}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_small_storm_loses_nothing_and_fulfils_once(store: str) -> None:
    lines: list[str] = []
    result = await storm.run_storm(storm.StormConfig(
        orders=100, seed=7, store=store, kills=3, concurrency=12, quiesce_timeout=40,
        aps_share=0.5, log=lines.append))
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
    aps = result.aps
    assert aps is not None, report
    # the seed gives about half the orders to APS, with every kind of card
    assert 30 <= aps.orders <= 70 and set(aps.cards) == CARDS, report
    assert aps.declined_attempts == aps.cards["decline"], report
    assert aps.resolved_pending == aps.cards["pending"], report
    assert aps.returns_verified == aps.orders, report
    assert 0 < aps.confirmed_via_api < aps.orders, report
    assert not aps.double_charged, report
    assert not aps.phantom, report
    assert not aps.wrong_capture, report
    assert not aps.attempts_skipped, report
    assert aps.feedback_faults and aps.check_status_calls > 0, report
    assert result.ok, report

