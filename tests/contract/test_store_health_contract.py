"""The health readings' contract (`ports.health`), run against every backend, and the health
read model (`services.health.HealthGauges`) on top of them: each count is what was committed,
read through a snapshot.

The world is dated around `NOW` (the DynamoDB store's stopped clock, which expires rejections):
a backlog of due outbox messages beside one in delivery (a live lease), one retried later, one
dead and one delivered; pending and closed truth tasks; flagged and stuck orders; webhooks
stored and refused inside and outside the last hour.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from paywire.domain.facts import Announcement
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine, OrderStatus
from paywire.ports import InboxEvent, Store, TruthTask, WebhookRejection
from paywire.services.health import HealthGauges, HealthSnapshot
from testkit import StoppedClock

# The contract suites' day (`conftest.CONTRACT_DAY`): the DynamoDB store's stopped clock.
NOW = datetime(2025, 3, 4, 12, tzinfo=UTC)
S = OrderStatus


def ago(**delta: float) -> timedelta:
    """A timedelta (keyword arguments as `timedelta`'s)."""
    return timedelta(**delta)


def order(order_id: str, status: OrderStatus, updated: timedelta,
          attention: str | None = None) -> Order:
    """An order in `status`, created and last updated `updated` before NOW."""
    lines = [OrderLine("sku-1", "Mug", 1, Money(1250, "USD"))]
    new = Order.new(order_id, Intent.CAPTURE, lines, NOW - updated)
    return dataclasses.replace(new, status=status, needs_attention=attention)


def note(key: str) -> Announcement:
    """An order.completed announcement."""
    return Announcement(key=key, type="order.completed", order_id="o-1",
                        payload={"type": "order.completed", "order_id": "o-1"})


async def seed(store: Store) -> None:
    """The world the tests read (see the module's doc)."""
    async with store.transaction() as uow:
        await uow.insert_order(order("o-flagged", S.COMPLETED, ago(minutes=5),
                                     attention="undelivered:msg-9"))
        await uow.insert_order(order("o-flagged-stuck", S.APPROVED, ago(days=3),
                                     attention="stuck:APPROVED"))
        await uow.insert_order(order("o-approved-old", S.APPROVED, ago(days=2)))
        await uow.insert_order(order("o-approved-new", S.APPROVED, ago(hours=1)))
        await uow.insert_order(order("o-pending-old", S.PENDING, ago(days=8)))
        await uow.insert_order(order("o-created", S.CREATED, ago(minutes=1)))
        for n, minutes in enumerate((40, 30, 20, 10, 5, 1)):
            assert await uow.add_announcement(note(f"k-{n}"), f"msg-{n}",
                                              NOW - ago(minutes=minutes))
        for task_id, due in (("t-1", ago(minutes=-1)), ("t-2", ago(minutes=1)),
                             ("t-3", ago(minutes=2))):
            assert await uow.enqueue_truth(TruthTask(
                id=task_id, provider="paypal", kind="capture", resource_id=task_id,
                reason="unknown order", created_at=NOW - ago(minutes=3),
                next_attempt_at=NOW - due))
        for event_id, received in (("WH-old", ago(hours=2)), ("WH-1", ago(minutes=50)),
                                   ("WH-2", ago(minutes=1))):
            assert await uow.put_inbox_event(InboxEvent(
                provider="paypal", event_id=event_id, event_type="PAYMENT.CAPTURE.COMPLETED",
                received_at=NOW - received, body=b"{}", status="applied"))
        for tx, check, received in (("tx-old", "signature", ago(hours=2)),
                                    ("tx-1", "signature", ago(minutes=30)),
                                    ("tx-2", "signature", ago(minutes=20)),
                                    ("tx-3", "headers", ago(minutes=10))):
            assert await uow.record_rejection(WebhookRejection(
                provider="paypal", transmission_id=tx, received_at=NOW - received,
                check=check, reason="refused"), max_rows=100)
    async with store.transaction() as uow:  # t-3 done; t-1 (not yet due) and t-2 pending
        assert await uow.claim_truth_task("t-3", "w-1", NOW, NOW + ago(minutes=5)) is not None
        assert await uow.finish_truth_task("t-3", "w-1", status="done", attempts=1,
                                           next_attempt_at=NOW, last_error=None, now=NOW)
    # msg-0 and msg-1 delivered and dead, msg-2 retried in an hour, msg-3 in delivery (a live
    # lease); msg-4 and msg-5 stay due: the backlog, due since 5 minutes.
    async with store.transaction() as uow:
        claimed = await uow.claim_outbox("w-1", NOW, NOW + ago(minutes=5), limit=4)
        assert [m.id for m in claimed] == ["msg-0", "msg-1", "msg-2", "msg-3"]
    async with store.transaction() as uow:
        assert await uow.finish_outbox("msg-0", "w-1", status="delivered", attempts=1,
                                       next_attempt_at=None, last_error=None, now=NOW)
        assert await uow.finish_outbox("msg-1", "w-1", status="dead", attempts=1,
                                       next_attempt_at=None, last_error="410", now=NOW)
        assert await uow.finish_outbox("msg-2", "w-1", status="pending", attempts=1,
                                       next_attempt_at=NOW + ago(hours=1), last_error="503",
                                       now=NOW)


async def test_readings_count_what_was_committed(store: Store) -> None:
    """Each reading counts its index range exactly."""
    await seed(store)
    async with store.snapshot() as view:
        assert await view.outbox_due(NOW) == (2, NOW - ago(minutes=5))
        assert await view.outbox_due(NOW - ago(hours=1)) == (0, None)
        assert await view.outbox_dead_count() == 1
        assert await view.needs_attention_count() == 2
        assert await view.orders_in_status_since("APPROVED", NOW - ago(days=1)) == 2
        assert await view.orders_in_status_since("APPROVED", NOW - ago(minutes=30)) == 3
        assert await view.orders_in_status_since("PENDING", NOW - ago(days=7)) == 1
        assert await view.orders_in_status_since("AUTHORIZED", NOW) == 0
        assert await view.webhooks_received_since(NOW - ago(hours=1)) == 2
        assert await view.webhooks_received_since(NOW + ago(seconds=1)) == 0
        assert await view.webhook_rejections_since(NOW - ago(hours=1)) == {
            "signature": 2, "headers": 1}
        assert await view.webhook_rejections_since(NOW) == {}


async def test_truth_queue_depth_counts_pending_tasks(store: Store) -> None:
    """Pending tasks count whether due or not; a closed one does not."""
    await seed(store)
    async with store.snapshot() as view:
        assert await view.truth_queue_depth() == 2


async def test_attention_resolved_leaves_the_count(store: Store) -> None:
    """An order whose flag is cleared (a new version without it) is no longer counted; one
    flagged by an update is."""
    await seed(store)
    async with store.transaction() as uow:
        flagged = await uow.get_order("o-flagged")
        created = await uow.get_order("o-created")
        assert flagged is not None and created is not None
        await uow.update_order(dataclasses.replace(flagged, needs_attention=None,
                                                   version=flagged.version + 1),
                               flagged.version)
        await uow.update_order(dataclasses.replace(created, needs_attention="conflict",
                                                   version=created.version + 1),
                               created.version)
    async with store.snapshot() as view:
        assert await view.needs_attention_count() == 2
    async with store.transaction() as uow:
        again = await uow.get_order("o-created")
        assert again is not None
        await uow.update_order(dataclasses.replace(again, needs_attention=None,
                                                   version=again.version + 1), again.version)
    async with store.snapshot() as view:
        assert await view.needs_attention_count() == 1


async def test_an_empty_store_reads_zeros(store: Store) -> None:
    """Nothing stored: every reading is zero (or none)."""
    gauges = HealthGauges(store, StoppedClock(NOW))
    assert await gauges.read() == HealthSnapshot(
        at=NOW, outbox_backlog=0, outbox_oldest_due_seconds=0.0, outbox_dead=0,
        truth_queue_depth=0, needs_attention=0,
        stuck_orders={"APPROVED": 0, "AUTHORIZED": 0, "CREATED": 0, "PENDING": 0},
        webhooks_received=0, webhook_rejections={})


async def test_health_gauges_snapshot_and_cache(store: Store) -> None:
    """The read model's snapshot from the readings (stuck by the reconciler's maximum ages),
    cached for `max_staleness` seconds of its monotonic clock."""
    await seed(store)
    ticks = [0.0]
    gauges = HealthGauges(store, StoppedClock(NOW), max_staleness=5,
                          monotonic=lambda: ticks[0])
    snapshot = await gauges.read()
    assert snapshot == HealthSnapshot(
        at=NOW, outbox_backlog=2, outbox_oldest_due_seconds=300.0, outbox_dead=1,
        truth_queue_depth=2, needs_attention=2,
        stuck_orders={"APPROVED": 2, "AUTHORIZED": 0, "CREATED": 0, "PENDING": 1},
        webhooks_received=2, webhook_rejections={"headers": 1, "signature": 2})
    assert (snapshot.stuck_total, snapshot.rejections_total) == (3, 3)
    assert snapshot.as_json()["webhooks_last_hour"] == {
        "received": 2, "rejected": {"headers": 1, "signature": 2}, "rejected_total": 3}

    async with store.transaction() as uow:  # one more dead message
        [msg] = await uow.claim_outbox("w-2", NOW, NOW + ago(minutes=5), limit=1)
        assert await uow.finish_outbox(msg.id, "w-2", status="dead", attempts=1,
                                       next_attempt_at=None, last_error="410", now=NOW)
    ticks[0] = 4.9
    assert (await gauges.read()).outbox_dead == 1  # cached
    assert (await gauges.read(fresh=True)).outbox_dead == 2
    ticks[0] = 20.0
    again = await gauges.read()
    assert (again.outbox_dead, again.outbox_backlog) == (2, 1)


async def test_no_cache_reads_every_time(store: Store) -> None:
    """`max_staleness=0` reads the store on every call."""
    gauges = HealthGauges(store, StoppedClock(NOW), max_staleness=0)
    assert (await gauges.read()).needs_attention == 0
    async with store.transaction() as uow:
        await uow.insert_order(order("o-x", S.COMPLETED, ago(minutes=1), attention="conflict"))
    assert (await gauges.read()).needs_attention == 1
