"""The truth queue's leased enqueue, run against every backend (the `store` fixture's parameters).

A task may be queued already leased to the process that will run it at once (a webhook's inline
confirmation, which then needs no claim of its own): nobody else claims it until that lease
lapses, then anyone does, as after a claim. A pending task of the same id is never taken over
by a leased enqueue, and a closed one is re-opened under the new lease.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from paywire.ports import Store, TruthTask

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
ID = "paypal:confirm:WH-1:0123456789abcdef"


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def task(*, owner: str | None = None, until: datetime | None = None,
         reason: str = "confirm PAYMENT.CAPTURE.COMPLETED WH-1 COMPLETED CAP-1") -> TruthTask:
    """A confirmation due at T0, leased to `owner` until `until` if given."""
    return TruthTask(id=ID, provider="paypal", kind="order", resource_id="PP-1", reason=reason,
                     created_at=T0, next_attempt_at=T0, order_id="o-1", lease_owner=owner,
                     lease_until=until)


async def test_a_task_queued_leased_is_its_owners_until_the_lease_lapses(store: Store) -> None:
    """Queued leased, the task is stored with its lease; no claim (by id or from the queue) takes
    it while the lease lives, its owner finishes it without claiming, and once a lease lapses
    the queue takes it."""
    leased = task(owner="inline-1", until=at(12))
    async with store.transaction() as uow:
        assert await uow.enqueue_truth(leased)
    async with store.transaction() as uow:
        listed = await uow.list_truth_tasks()
        assert await uow.claim_truth_tasks("queue-1", at(11), at(60), limit=10) == []
        assert await uow.claim_truth_task(ID, "queue-1", at(11), at(60)) is None
    assert listed == [leased]
    async with store.transaction() as uow:
        assert await uow.finish_truth_task(ID, "inline-1", status="pending", attempts=1,
                                           next_attempt_at=at(5), last_error="HTTP 503",
                                           now=at(5))
    # A second one, whose owner died before running it: the queue takes it after the lease.
    other = dataclasses.replace(leased, id=ID + "-2", lease_owner="inline-2")
    async with store.transaction() as uow:
        assert await uow.enqueue_truth(other)
    async with store.transaction() as uow:
        assert await uow.claim_truth_tasks("queue-1", at(11), at(60), limit=10) == [
            dataclasses.replace(leased, attempts=1, next_attempt_at=at(5),
                                last_error="HTTP 503", lease_owner="queue-1",
                                lease_until=at(60))]
        assert await uow.claim_truth_tasks("queue-2", at(11), at(60), limit=10) == []
        retaken = await uow.claim_truth_tasks("queue-2", at(13), at(70), limit=10)
    assert retaken == [dataclasses.replace(other, lease_owner="queue-2", lease_until=at(70))]


async def test_a_pending_task_is_not_taken_over_by_a_leased_enqueue(store: Store) -> None:
    """A leased enqueue of an id already pending (free, leased to another, or backing off) is
    refused and changes nothing: the caller holds no lease."""
    async with store.transaction() as uow:
        assert await uow.enqueue_truth(task())
        assert not await uow.enqueue_truth(task(owner="inline-1", until=at(12)))
        free = await uow.list_truth_tasks()
        claimed = await uow.claim_truth_task(ID, "queue-1", T0, at(30))
        assert not await uow.enqueue_truth(task(owner="inline-1", until=at(12)))
        held = await uow.list_truth_tasks()
    assert free == [task()]
    assert claimed is not None and held == [task(owner="queue-1", until=at(30))]
    async with store.transaction() as uow:
        assert await uow.claim_truth_task(ID, "inline-1", at(31), at(60)) is not None


@pytest.mark.parametrize("outcome", ["done", "failed"])
async def test_a_closed_task_is_reopened_under_the_new_lease(store: Store, outcome: str) -> None:
    """A done or failed task enqueued again leased is re-opened pending under that lease (new
    reason, no attempts, no error) and is not claimable until the lease lapses."""
    async with store.transaction() as uow:
        assert await uow.enqueue_truth(task())
        assert await uow.claim_truth_task(ID, "queue-1", T0, at(30)) is not None
        assert await uow.finish_truth_task(ID, "queue-1", status=outcome, attempts=2,
                                           next_attempt_at=at(10), last_error="HTTP 500",
                                           now=at(10))
    reopened = dataclasses.replace(task(owner="inline-1", until=at(62), reason="confirm again"),
                                   next_attempt_at=at(50))
    async with store.transaction() as uow:
        assert await uow.enqueue_truth(reopened)
    async with store.transaction() as uow:
        listed = await uow.list_truth_tasks()
        assert await uow.claim_truth_tasks("queue-2", at(61), at(90), limit=10) == []
        retaken = await uow.claim_truth_tasks("queue-2", at(63), at(90), limit=10)
    assert listed == [reopened]
    assert retaken == [dataclasses.replace(reopened, lease_owner="queue-2", lease_until=at(90))]


async def test_half_a_lease_is_refused(store: Store) -> None:
    """A task with an owner but no lease end (or an end but no owner) is not queued."""
    async with store.transaction() as uow:
        for half in (task(owner="inline-1"), task(until=at(12))):
            with pytest.raises(ValueError, match="pending"):
                await uow.enqueue_truth(half)
        assert await uow.list_truth_tasks() == []
