"""The store port's operations contract, run against every backend (the `store` fixture).

A backend passes when outbox messages are claimed with a lease by one claimer at a time (however
many race), finished only by their lease owner, revived only when dead, listed newest first and
counted per status; when reconciliation candidates follow each status's cut-off and the due time
of their saved state; and when pending refunds and the inbox list in their documented order.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from paywire.domain.errors import ValidationError
from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import InboxEvent, OutboxMessage, ReconcileState, Refund, Store

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
S = OrderStatus


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def announcement(n: int) -> Announcement:
    """The n-th order.completed announcement (its own order and key)."""
    return Announcement(key=f"o-{n}:completed", type="order.completed", order_id=f"o-{n}",
                        payload={"order_id": f"o-{n}", "n": n})


def msg_id(n: int) -> str:
    """The message id of the n-th announcement."""
    return f"msg-{n:03d}"


async def add_messages(store: Store, count: int) -> None:
    """Put `count` announcements in the outbox, the n-th created (and due) at T0 + n seconds,
    20 per unit of work (a DynamoDB transaction holds at most 100 items)."""
    for first in range(0, count, 20):
        async with store.transaction() as uow:
            for n in range(first, min(first + 20, count)):
                assert await uow.add_announcement(announcement(n), msg_id(n), at(n))


def order(order_id: str, status: OrderStatus, updated: datetime) -> Order:
    """A one-line USD order in `status`, last updated at `updated`."""
    new = Order.new(order_id, Intent.CAPTURE, [OrderLine("sku-1", "Mug", 1, Money(1250, "USD"))],
                    T0)
    return dataclasses.replace(new, status=status, updated_at=updated)


def refund(refund_id: str, status: str, updated: datetime) -> Refund:
    """A USD refund of order o-1 in `status`, last updated at `updated`."""
    return Refund(id=refund_id, order_id="o-1", amount=Money(500, "USD"), status=status,
                  operation_key=f"refund:{refund_id}", created_at=T0, updated_at=updated)


def state(order_id: str, next_check: datetime, attempts: int = 1) -> ReconcileState:
    """A reconciliation state next due at `next_check`."""
    return ReconcileState(order_id=order_id, attempts=attempts, next_check_at=next_check,
                          first_checked_at=T0, last_checked_at=at(1))


def event(event_id: str, received: datetime, provider: str = "paypal") -> InboxEvent:
    """A stored event received at `received`."""
    return InboxEvent(provider=provider, event_id=event_id,
                      event_type="PAYMENT.CAPTURE.COMPLETED", received_at=received,
                      body=b'{"id":"' + event_id.encode() + b'"}')


async def test_new_message_reads_back_unleased_and_undelivered(store: Store) -> None:
    """An added announcement reads back pending, due at creation, with no error or delivery."""
    await add_messages(store, 1)
    async with store.transaction() as uow:
        got = await uow.get_outbox(msg_id(0))
        assert await uow.get_outbox("msg-none") is None
    assert got == OutboxMessage(id=msg_id(0), key="o-0:completed", type="order.completed",
                                order_id="o-0", payload={"order_id": "o-0", "n": 0},
                                created_at=T0, next_attempt_at=T0)


async def test_claim_takes_due_messages_oldest_first_and_leases_them(store: Store) -> None:
    """A claim takes due pending messages oldest first, up to the limit, leasing them."""
    await add_messages(store, 4)
    async with store.transaction() as uow:
        first = await uow.claim_outbox("w-1", at(2), at(30), limit=2)
        second = await uow.claim_outbox("w-1", at(2), at(30), limit=10)  # msg-003 not yet due
        assert await uow.claim_outbox("w-2", at(2), at(60), limit=10) == []  # live leases
        late = await uow.claim_outbox("w-2", at(3), at(60), limit=10)
        with pytest.raises(ValueError, match="limit"):
            await uow.claim_outbox("w-1", at(2), at(30), limit=0)
    assert [m.id for m in first] == [msg_id(0), msg_id(1)]
    assert [m.id for m in second] == [msg_id(2)]
    assert all(m.lease_owner == "w-1" and m.lease_until == at(30) for m in first + second)
    assert [(m.id, m.lease_owner) for m in late] == [(msg_id(3), "w-2")]


async def test_finish_records_outcome_and_releases_lease(store: Store) -> None:
    """Finishing records status, attempts, retry time and error; delivery stamps delivered_at."""
    await add_messages(store, 3)
    async with store.transaction() as uow:
        await uow.claim_outbox("w-1", at(5), at(30), limit=3)
        assert await uow.finish_outbox(msg_id(0), "w-1", status="delivered", attempts=1,
                                       next_attempt_at=None, last_error=None, now=at(6))
        assert await uow.finish_outbox(msg_id(1), "w-1", status="pending", attempts=1,
                                       next_attempt_at=at(60), last_error="HTTP 503", now=at(6))
        assert await uow.finish_outbox(msg_id(2), "w-1", status="dead", attempts=8,
                                       next_attempt_at=None, last_error="HTTP 410", now=at(6))
        with pytest.raises(ValueError, match="status"):
            await uow.finish_outbox(msg_id(0), "w-1", status="leased", attempts=1,
                                    next_attempt_at=None, last_error=None, now=at(6))
        with pytest.raises(ValueError, match="next_attempt_at"):
            await uow.finish_outbox(msg_id(0), "w-1", status="pending", attempts=1,
                                    next_attempt_at=None, last_error=None, now=at(6))
        assert await uow.claim_outbox("w-2", at(59), at(90), limit=10) == []  # retry not due
        retried = await uow.claim_outbox("w-2", at(60), at(90), limit=10)
        delivered, dead = await uow.get_outbox(msg_id(0)), await uow.get_outbox(msg_id(2))
    assert delivered is not None and (delivered.status, delivered.attempts,
                                      delivered.delivered_at, delivered.lease_owner,
                                      delivered.lease_until) == ("delivered", 1, at(6), None, None)
    assert dead is not None and (dead.status, dead.attempts, dead.last_error,
                                 dead.delivered_at) == ("dead", 8, "HTTP 410", None)
    assert [(m.id, m.attempts, m.last_error, m.lease_owner) for m in retried] == \
        [(msg_id(1), 1, "HTTP 503", "w-2")]


async def test_finish_many_records_one_outcome_for_the_messages_still_leased(
        store: Store) -> None:
    """Finishing several messages at once records the outcome for those whose lease the owner
    still holds, and only those (a lapsed lease taken by another owner stays theirs); it
    refuses what finishing one refuses."""
    await add_messages(store, 4)
    async with store.transaction() as uow:
        assert len(await uow.claim_outbox("w-1", at(5), at(30), limit=4)) == 4
        assert [m.id for m in await uow.claim_outbox("w-2", at(31), at(90), limit=1)] == \
            [msg_id(0)]  # w-1's lease on msg-000 lapsed; w-2 took it
        recorded = await uow.finish_outbox_many(
            [msg_id(0), msg_id(1), msg_id(2), msg_id(3), "msg-999"], "w-1",
            status="delivered", attempts=1, next_attempt_at=None, last_error=None, now=at(32))
        assert await uow.finish_outbox_many([], "w-1", status="dead", attempts=1,
                                            next_attempt_at=None, last_error="x",
                                            now=at(32)) == set()
        with pytest.raises(ValueError, match="status"):
            await uow.finish_outbox_many([msg_id(0)], "w-2", status="leased", attempts=1,
                                         next_attempt_at=None, last_error=None, now=at(33))
        with pytest.raises(ValueError, match="next_attempt_at"):
            await uow.finish_outbox_many([msg_id(0)], "w-2", status="pending", attempts=1,
                                         next_attempt_at=None, last_error=None, now=at(33))
        retried = await uow.finish_outbox_many([msg_id(0)], "w-2", status="pending",
                                               attempts=1, next_attempt_at=at(60),
                                               last_error="HTTP 503", now=at(33))
        found = [await uow.get_outbox(msg_id(n)) for n in range(4)]
    assert recorded == {msg_id(1), msg_id(2), msg_id(3)} and retried == {msg_id(0)}
    assert all(m is not None for m in found)
    assert [(m.status, m.attempts, m.delivered_at, m.lease_owner, m.last_error)
            for m in found if m is not None] == [
        ("pending", 1, None, None, "HTTP 503"),
        ("delivered", 1, at(32), None, None),
        ("delivered", 1, at(32), None, None),
        ("delivered", 1, at(32), None, None)]


async def test_queued_message_is_settled_by_its_consumer_once(store: Store) -> None:
    """A message handed to a queue is not claimed again; its consumer settles it (delivered or
    dead) without a lease, and a second delivered report of it changes nothing."""
    await add_messages(store, 2)
    async with store.transaction() as uow:
        assert len(await uow.claim_outbox("drainer", T0 + timedelta(seconds=5), at(30),
                                          limit=5)) == 2
        for n in range(2):
            assert await uow.finish_outbox(msg_id(n), "drainer", status="queued", attempts=0,
                                           next_attempt_at=None, last_error=None, now=at(6))
    async with store.transaction() as uow:
        assert await uow.claim_outbox("w-2", at(100), at(130), limit=5) == []
        assert await uow.settle_outbox(msg_id(0), status="delivered", last_error=None,
                                       now=at(7))
        assert not await uow.settle_outbox(msg_id(0), status="delivered", last_error=None,
                                           now=at(8))
        assert not await uow.settle_outbox(msg_id(0), status="dead", last_error="late",
                                           now=at(9))
        assert await uow.settle_outbox(msg_id(1), status="dead", last_error="HTTP 410",
                                       now=at(7))
        assert not await uow.settle_outbox("msg-missing", status="delivered", last_error=None,
                                           now=at(7))
        with pytest.raises(ValueError, match="status"):
            await uow.settle_outbox(msg_id(1), status="pending", last_error=None, now=at(7))
        delivered, dead = await uow.get_outbox(msg_id(0)), await uow.get_outbox(msg_id(1))
        counts = await uow.outbox_counts()
    assert delivered is not None and (delivered.status, delivered.attempts,
                                      delivered.delivered_at) == ("delivered", 1, at(7))
    assert dead is not None and (dead.status, dead.attempts, dead.last_error,
                                 dead.delivered_at) == ("dead", 1, "HTTP 410", None)
    assert counts.get("delivered") == 1 and counts.get("dead") == 1


async def test_lapsed_lease_is_reclaimable_and_old_owner_refused(store: Store) -> None:
    """Once a lease lapses another claimer takes the message; the old owner can no longer finish."""
    await add_messages(store, 1)
    async with store.transaction() as uow:
        assert [m.id for m in await uow.claim_outbox("w-1", T0, at(30), limit=5)] == [msg_id(0)]
    async with store.transaction() as uow:
        assert await uow.claim_outbox("w-2", at(30), at(90), limit=5) == []  # not yet lapsed
        retaken = await uow.claim_outbox("w-2", at(31), at(90), limit=5)
    async with store.transaction() as uow:
        assert not await uow.finish_outbox(msg_id(0), "w-1", status="delivered", attempts=1,
                                           next_attempt_at=None, last_error=None, now=at(32))
        assert await uow.finish_outbox(msg_id(0), "w-2", status="delivered", attempts=1,
                                       next_attempt_at=None, last_error=None, now=at(33))
        assert not await uow.finish_outbox(msg_id(0), "w-2", status="dead", attempts=2,
                                           next_attempt_at=None, last_error="x", now=at(34))
        final = await uow.get_outbox(msg_id(0))
    assert [(m.lease_owner, m.lease_until) for m in retaken] == [("w-2", at(90))]
    assert final is not None and (final.status, final.delivered_at) == ("delivered", at(33))


async def test_concurrent_claimers_never_share_a_message(store: Store) -> None:
    """Four claimers on their own connections never share a message and together claim all 200."""
    await add_messages(store, 200)

    async def claimer(owner: str) -> list[OutboxMessage]:
        won: list[OutboxMessage] = []
        while True:
            async with store.transaction() as uow:
                batch = await uow.claim_outbox(owner, at(500), at(900), limit=7)
                await asyncio.sleep(0.002)  # hold the claim uncommitted while others arrive
            if not batch:
                return won
            won.extend(batch)

    results = await asyncio.gather(*(claimer(f"w-{n}") for n in range(4)))
    claimed = [m.id for won in results for m in won]
    assert len(claimed) == len(set(claimed)) == 200
    assert set(claimed) == {msg_id(n) for n in range(200)}
    async with store.transaction() as uow:
        stored = await uow.list_outbox(limit=200)
    owners = {m.id: m.lease_owner for won in results for m in won}
    assert {m.id: m.lease_owner for m in stored} == owners
    assert all(owner == f"w-{n}" for n, won in enumerate(results)
               for owner in (m.lease_owner for m in won))


async def test_revive_only_a_dead_message(store: Store) -> None:
    """Reviving makes a dead message pending, due now, attempts reset; anything else is refused."""
    await add_messages(store, 2)
    async with store.transaction() as uow:
        await uow.claim_outbox("w-1", at(5), at(300), limit=2)
        await uow.finish_outbox(msg_id(0), "w-1", status="dead", attempts=8,
                                next_attempt_at=None, last_error="HTTP 410", now=at(6))
        assert not await uow.revive_outbox(msg_id(1), at(7))  # leased pending
        assert not await uow.revive_outbox("msg-none", at(7))
        assert await uow.revive_outbox(msg_id(0), at(100))
        assert not await uow.revive_outbox(msg_id(0), at(101))  # pending now
        revived = await uow.get_outbox(msg_id(0))
        assert await uow.claim_outbox("w-2", at(99), at(130), limit=5) == []
        again = await uow.claim_outbox("w-2", at(100), at(130), limit=5)
    assert revived is not None and (revived.status, revived.attempts, revived.next_attempt_at,
                                    revived.lease_owner) == ("pending", 0, at(100), None)
    assert [m.id for m in again] == [msg_id(0)]


async def test_revive_a_queued_message_but_not_a_delivered_one(store: Store) -> None:
    """A queued message (handed to SQS) can be sent again: pending, due now, attempts reset,
    its status index following; a delivered one cannot."""
    await add_messages(store, 2)
    async with store.transaction() as uow:
        await uow.claim_outbox("w-1", at(5), at(300), limit=2)
        for n, status in ((0, "queued"), (1, "delivered")):
            await uow.finish_outbox(msg_id(n), "w-1", status=status, attempts=1,
                                    next_attempt_at=None, last_error=None, now=at(6))
    async with store.transaction() as uow:
        assert not await uow.revive_outbox(msg_id(1), at(50))
        assert await uow.revive_outbox(msg_id(0), at(50))
        revived = await uow.get_outbox(msg_id(0))
        queued = await uow.list_outbox(status="queued")
        again = await uow.claim_outbox("w-2", at(50), at(130), limit=5)
    assert revived is not None and (revived.status, revived.attempts,
                                    revived.next_attempt_at) == ("pending", 0, at(50))
    assert queued == [] and [m.id for m in again] == [msg_id(0)]


async def test_list_outbox_pages_newest_first_and_counts(store: Store) -> None:
    """Messages list newest first by keyset, optionally by status; counts cover every status."""
    async with store.transaction() as uow:
        assert await uow.outbox_counts() == {"pending": 0, "queued": 0, "delivered": 0,
                                             "dead": 0}
    await add_messages(store, 5)
    async with store.transaction() as uow:
        await uow.claim_outbox("w-1", at(10), at(30), limit=2)
        await uow.finish_outbox(msg_id(0), "w-1", status="delivered", attempts=1,
                                next_attempt_at=None, last_error=None, now=at(11))
        await uow.finish_outbox(msg_id(1), "w-1", status="dead", attempts=1,
                                next_attempt_at=None, last_error="gone", now=at(11))
        page1 = await uow.list_outbox(limit=2)
        last = page1[-1]
        page2 = await uow.list_outbox(limit=2, before=(last.created_at, last.id))
        page3 = await uow.list_outbox(limit=2, before=(page2[-1].created_at, page2[-1].id))
        pending = await uow.list_outbox(status="pending")
        counts = await uow.outbox_counts()
        with pytest.raises(ValidationError):
            await uow.list_outbox(limit=0)
    assert [m.id for m in page1 + page2 + page3] == [msg_id(n) for n in (4, 3, 2, 1, 0)]
    assert [m.id for m in pending] == [msg_id(4), msg_id(3), msg_id(2)]
    assert counts == {"pending": 3, "queued": 0, "delivered": 1, "dead": 1}


async def test_reconcile_candidates_by_status_cutoff_and_due_time(store: Store) -> None:
    """Candidates: listed status, updated before its cut-off, unchecked or due; oldest first."""
    async with store.transaction() as uow:
        for o in (order("pend-old", S.PENDING, at(10)), order("pend-new", S.PENDING, at(100)),
                  order("appr-old", S.APPROVED, at(5)), order("appr-mid", S.APPROVED, at(50)),
                  order("done", S.COMPLETED, at(1)), order("due", S.PENDING, at(20)),
                  order("later", S.PENDING, at(30))):
            await uow.insert_order(o)
        await uow.save_reconcile_state(state("due", at(200)))
        await uow.save_reconcile_state(state("later", at(201)))
        cutoffs = {S.PENDING: at(60), S.APPROVED: at(40)}
        found = await uow.reconcile_candidates(cutoffs, at(200), limit=10)
        limited = await uow.reconcile_candidates(cutoffs, at(200), limit=2)
        assert await uow.reconcile_candidates({}, at(200), limit=10) == []
        with pytest.raises(ValidationError):
            await uow.reconcile_candidates(cutoffs, at(200), limit=0)
        stored = await uow.get_order("due")
    assert [(o.id, s) for o, s in found] == [("appr-old", None), ("pend-old", None),
                                             ("due", state("due", at(200)))]
    assert [o.id for o, _ in limited] == ["appr-old", "pend-old"]
    assert found[2][0] == stored and stored is not None and len(stored.lines) == 1


async def test_save_replaces_and_clear_forgets_reconcile_state(store: Store) -> None:
    """Saving twice keeps the latest state; clearing makes the order a never-checked candidate."""
    async with store.transaction() as uow:
        await uow.insert_order(order("o-1", S.PENDING, at(10)))
        await uow.save_reconcile_state(state("o-1", at(100), attempts=1))
        await uow.save_reconcile_state(state("o-1", at(300), attempts=2))
        cutoff = {S.PENDING: at(60)}
        assert await uow.reconcile_candidates(cutoff, at(299), limit=5) == []
        due = await uow.reconcile_candidates(cutoff, at(300), limit=5)
        await uow.clear_reconcile_state("o-1")
        await uow.clear_reconcile_state("o-none")  # nothing to clear is fine
        cleared = await uow.reconcile_candidates(cutoff, at(0), limit=5)
    assert [s for _, s in due] == [state("o-1", at(300), attempts=2)]
    assert [(o.id, s) for o, s in cleared] == [("o-1", None)]


async def test_pending_refunds_before_cutoff_oldest_first(store: Store) -> None:
    """Only pending refunds last updated before the cut-off, least recently updated first."""
    async with store.transaction() as uow:
        for r in (refund("r-b", "pending", at(20)), refund("r-a", "pending", at(10)),
                  refund("r-new", "pending", at(90)), refund("r-done", "completed", at(1)),
                  refund("r-c", "pending", at(30))):
            await uow.insert_refund(r)
        found = await uow.pending_refunds(at(60), limit=10)
        limited = await uow.pending_refunds(at(60), limit=2)
    assert found == [refund("r-a", "pending", at(10)), refund("r-b", "pending", at(20)),
                     refund("r-c", "pending", at(30))]
    assert [r.id for r in limited] == ["r-a", "r-b"]


async def test_list_inbox_pages_newest_first(store: Store) -> None:
    """Stored events list newest first, ties by event id, paged by (received_at, event_id)."""
    async with store.transaction() as uow:
        for e in (event("WH-1", at(1)), event("WH-3", at(3)), event("WH-2a", at(2)),
                  event("WH-2b", at(2)), event("WH-4", at(4), provider="aps")):
            assert await uow.put_inbox_event(e)
        page1 = await uow.list_inbox(limit=2)
        page2 = await uow.list_inbox(limit=2, before=(page1[-1].received_at, page1[-1].event_id))
        page3 = await uow.list_inbox(limit=2, before=(page2[-1].received_at, page2[-1].event_id))
        with pytest.raises(ValidationError):
            await uow.list_inbox(limit=0)
    assert [e.event_id for e in page1 + page2 + page3] == ["WH-4", "WH-3", "WH-2b", "WH-2a",
                                                           "WH-1"]
    assert page1[0] == event("WH-4", at(4), provider="aps")
