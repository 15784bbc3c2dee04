"""The store port's webhook contract, run against every backend (the `store` fixture's parameters).

A backend passes when the inbox and the rejection log are put-if-absent (the inbox keeping the
exact bytes), the rejection log stays bounded, the truth queue holds one task per resource and
hands each due task to exactly one claimer at a time, and the lookups by provider payment ids
find their order or refund.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from paywire.domain.errors import ConflictError, ValidationError
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine
from paywire.ports import InboxEvent, Refund, Store, TruthTask, WebhookRejection

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
# Every byte value, a lone UTF-8 continuation byte and a NUL: a body no text column keeps intact.
RAW = b'{"id":"WH-1","resource":{"note":"caf\xe9"}}\r\n\x00\xff\x80' + bytes(range(256))


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def event(event_id: str = "WH-1", *, provider: str = "paypal", body: bytes = RAW) -> InboxEvent:
    """A stored-as-applied PAYMENT.CAPTURE.COMPLETED event."""
    return InboxEvent(provider=provider, event_id=event_id,
                      event_type="PAYMENT.CAPTURE.COMPLETED", received_at=T0, body=body,
                      transmission_id=f"tx-{event_id}", order_id="o-1", note="applied")


def rejection(transmission_id: str, received: datetime = T0, *, provider: str = "paypal",
              reason: str = "signature does not verify") -> WebhookRejection:
    """A bad-signature rejection."""
    return WebhookRejection(provider=provider, transmission_id=transmission_id,
                            received_at=received, check="signature", reason=reason,
                            likely_cause="the body was re-serialised by a proxy",
                            event_id="WH-9", event_type="PAYMENT.CAPTURE.COMPLETED",
                            cert_url="https://api.paypal.com/v1/notifications/certs/CERT-1",
                            body_sha256="ab" * 32)


def task(resource_id: str, due: datetime = T0, *, reason: str = "unknown order",
         order_id: str | None = None) -> TruthTask:
    """A pending capture truth fetch, due at `due`."""
    return TruthTask(id=f"paypal:capture:{resource_id}", provider="paypal", kind="capture",
                     resource_id=resource_id, reason=reason, created_at=T0,
                     next_attempt_at=due, order_id=order_id)


def order(order_id: str, *, provider: str = "paypal", capture_id: str | None = None,
          authorization_id: str | None = None) -> Order:
    """A one-line USD order with the given provider payment ids."""
    new = Order.new(order_id, Intent.CAPTURE, [OrderLine("sku-1", "Mug", 1, Money(1250, "USD"))],
                    T0, provider=provider)
    return dataclasses.replace(new, capture_id=capture_id, authorization_id=authorization_id)


async def test_inbox_put_if_absent_keeps_exact_bytes(store: Store) -> None:
    """An event is stored once per (provider, event id) and reads back byte for byte."""
    async with store.transaction() as uow:
        assert await uow.put_inbox_event(event())
    async with store.transaction() as uow:
        assert not await uow.put_inbox_event(event(body=b"{}"))
        assert await uow.put_inbox_event(event(provider="aps", body=b"\x00"))
        got = await uow.get_inbox_event("paypal", "WH-1")
        other = await uow.get_inbox_event("aps", "WH-1")
        assert await uow.get_inbox_event("paypal", "WH-2") is None
    assert got == event()
    assert got is not None and type(got.body) is bytes and got.body == RAW
    assert other is not None and other.body == b"\x00"


async def test_concurrent_inbox_puts_write_once(store: Store) -> None:
    """Of N concurrent puts of one event id, exactly one is written: the one that reads back."""
    async def attempt(n: int) -> bool:
        # A store that can only check the key at commit (DynamoDB) fails the losers' units
        # with a ConflictError there: nothing of theirs is written, as with a False.
        with contextlib.suppress(ConflictError):
            async with store.transaction() as uow:
                written = await uow.put_inbox_event(event(body=b"delivery %d" % n))
                await asyncio.sleep(0.01)  # keep the insert uncommitted while others arrive
            return written
        return False

    results = await asyncio.gather(*(attempt(n) for n in range(6)))
    assert results.count(True) == 1
    async with store.transaction() as uow:
        got = await uow.get_inbox_event("paypal", "WH-1")
    assert got is not None and got.body == b"delivery %d" % results.index(True)


async def test_rejection_recorded_once_per_transmission(store: Store) -> None:
    """A second rejection of one transmission id writes nothing; another provider's does."""
    async with store.transaction() as uow:
        assert await uow.record_rejection(rejection("tx-1"), max_rows=10)
        assert not await uow.record_rejection(rejection("tx-1", at(5), reason="again"), 10)
        assert await uow.record_rejection(rejection("tx-1", at(1), provider="aps"), 10)
        listed = await uow.list_rejections()
    assert listed == [rejection("tx-1", at(1), provider="aps"), rejection("tx-1")]


async def test_rejections_bounded_oldest_dropped(store: Store) -> None:
    """The log keeps the newest `max_rows` rejections; recording more drops the oldest."""
    received = {"tx-c": at(3), "tx-a": at(1), "tx-e": at(5), "tx-b": at(2), "tx-d": at(4)}
    async with store.transaction() as uow:
        for tid, when in received.items():
            assert await uow.record_rejection(rejection(tid, when), max_rows=3)
        with pytest.raises(ValueError, match="max_rows"):
            await uow.record_rejection(rejection("tx-f", at(6)), max_rows=0)
    async with store.transaction() as uow:
        kept = [r.transmission_id for r in await uow.list_rejections(limit=10)]
        assert await uow.record_rejection(rejection("tx-f", at(6)), max_rows=3)
        after = [r.transmission_id for r in await uow.list_rejections(limit=10)]
    assert kept == ["tx-e", "tx-d", "tx-c"]
    assert after == ["tx-f", "tx-e", "tx-d"]


async def test_list_rejections_pages_newest_first(store: Store) -> None:
    """Keyset pages walk every rejection newest first, ties on time broken by transmission id."""
    received = {"a": at(1), "b": at(2), "c": at(2), "d": at(3), "e": at(4)}
    async with store.transaction() as uow:
        for tid, when in received.items():
            await uow.record_rejection(rejection(tid, when), max_rows=100)
    seen: list[str] = []
    before: tuple[datetime, str] | None = None
    async with store.transaction() as uow:
        while page := await uow.list_rejections(limit=2, before=before):
            assert len(page) <= 2
            seen += [r.transmission_id for r in page]
            before = (page[-1].received_at, page[-1].transmission_id)
        with pytest.raises(ValidationError):
            await uow.list_rejections(limit=0)
    assert seen == ["e", "d", "c", "b", "a"]


async def test_enqueue_truth_twice_is_one_task(store: Store) -> None:
    """A second enqueue of a pending (or leased) task is refused and changes nothing."""
    first = task("CAP-1", order_id="o-1")
    async with store.transaction() as uow:
        assert await uow.enqueue_truth(first)
        assert not await uow.enqueue_truth(task("CAP-1", at(9), reason="amount mismatch"))
        claimed = await uow.claim_truth_tasks("w-1", T0, at(30), limit=10)
        assert not await uow.enqueue_truth(task("CAP-1", at(9), reason="amount mismatch"))
        listed = await uow.list_truth_tasks()
        with pytest.raises(ValueError, match="pending"):
            await uow.enqueue_truth(dataclasses.replace(task("CAP-2"), status="done"))
    leased = dataclasses.replace(first, lease_owner="w-1", lease_until=at(30))
    assert claimed == [leased]
    assert listed == [leased]


@pytest.mark.parametrize("outcome", ["done", "failed"])
async def test_enqueue_reopens_a_closed_task(store: Store, outcome: str) -> None:
    """A done or failed task is re-opened: pending, the new reason and due time, no attempts."""
    async with store.transaction() as uow:
        assert await uow.enqueue_truth(task("CAP-1", order_id="o-1"))
        assert await uow.claim_truth_tasks("w-1", T0, at(30), limit=1)
        assert await uow.finish_truth_task("paypal:capture:CAP-1", "w-1", status=outcome,
                                           attempts=3, next_attempt_at=at(10),
                                           last_error="HTTP 500", now=at(10))
        closed = await uow.list_truth_tasks(status=outcome)
        assert await uow.enqueue_truth(task("CAP-1", at(50), reason="denied after completed"))
        reopened = await uow.list_truth_tasks()
    assert [(t.status, t.attempts, t.last_error) for t in closed] == [(outcome, 3, "HTTP 500")]
    assert reopened == [task("CAP-1", at(50), reason="denied after completed", order_id="o-1")]


async def test_claim_by_id_takes_one_due_pending_task(store: Store) -> None:
    """A due task is claimed by id; one not yet due (backing off), a held lease, a closed task
    or an unknown id is not, and a lapsed lease is claimed again."""
    async with store.transaction() as uow:
        await uow.enqueue_truth(task("CAP-1", at(5), order_id="o-1"))
        assert await uow.claim_truth_task("paypal:capture:CAP-1", "w-1", at(4), at(30)) is None
        won = await uow.claim_truth_task("paypal:capture:CAP-1", "w-1", at(5), at(30))
        assert won is not None
        assert (won.lease_owner, won.lease_until, won.order_id) == ("w-1", at(30), "o-1")
        assert await uow.claim_truth_task("paypal:capture:CAP-1", "w-2", at(29), at(60)) is None
        assert await uow.claim_truth_tasks("w-2", at(10), at(40), limit=5) == []
        again = await uow.claim_truth_task("paypal:capture:CAP-1", "w-2", at(31), at(60))
        assert again is not None and again.lease_owner == "w-2"
        assert await uow.finish_truth_task("paypal:capture:CAP-1", "w-2", status="done",
                                           attempts=1, next_attempt_at=at(31), last_error=None,
                                           now=at(31))
        assert await uow.claim_truth_task("paypal:capture:CAP-1", "w-3", at(40), at(70)) is None
        assert await uow.claim_truth_task("paypal:capture:NOPE", "w-3", at(40), at(70)) is None


async def test_concurrent_claimers_never_share_a_task(store: Store) -> None:
    """Concurrent claimers with different owners get disjoint tasks and together get them all."""
    ids = {f"paypal:capture:CAP-{n:02d}" for n in range(12)}
    async with store.transaction() as uow:
        for n in range(12):
            await uow.enqueue_truth(task(f"CAP-{n:02d}", at(n % 3)))

    async def claimer(owner: str) -> list[TruthTask]:
        async with store.transaction() as uow:
            won = await uow.claim_truth_tasks(owner, at(5), at(60), limit=5)
            await asyncio.sleep(0.01)  # hold the claim uncommitted while the others arrive
            return won

    results = await asyncio.gather(*(claimer(f"w-{n}") for n in range(4)))
    claimed = [t.id for won in results for t in won]
    assert len(claimed) == len(set(claimed)) == 12
    assert set(claimed) == ids
    for n, won in enumerate(results):
        assert all(t.lease_owner == f"w-{n}" and t.lease_until == at(60) for t in won)
    async with store.transaction() as uow:
        owners = {t.id: t.lease_owner for t in await uow.list_truth_tasks(limit=20)}
    assert owners == {t.id: t.lease_owner for won in results for t in won}


async def test_claim_takes_due_tasks_and_lapsed_leases_only(store: Store) -> None:
    """A claim takes due tasks in due order; a live lease is kept, a lapsed one re-claimable."""
    async with store.transaction() as uow:
        await uow.enqueue_truth(task("LATE", at(100)))
        await uow.enqueue_truth(task("B", at(2)))
        await uow.enqueue_truth(task("A", at(1)))
        first = await uow.claim_truth_tasks("w-1", at(10), at(40), limit=1)
        second = await uow.claim_truth_tasks("w-1", at(10), at(40), limit=10)
        assert await uow.claim_truth_tasks("w-2", at(39), at(70), limit=10) == []  # live
        retaken = await uow.claim_truth_tasks("w-2", at(41), at(70), limit=10)  # lapsed
        with pytest.raises(ValueError, match="limit"):
            await uow.claim_truth_tasks("w-2", at(41), at(70), limit=0)
    assert [t.resource_id for t in first] == ["A"]
    assert [t.resource_id for t in second] == ["B"]
    assert [(t.resource_id, t.lease_owner, t.lease_until) for t in retaken] == \
        [("A", "w-2", at(70)), ("B", "w-2", at(70))]


async def test_finish_truth_task_only_by_its_owner(store: Store) -> None:
    """Only the lease owner can finish a task; finishing releases the lease."""
    tid = "paypal:capture:CAP-1"
    async with store.transaction() as uow:
        await uow.enqueue_truth(task("CAP-1"))
        await uow.claim_truth_tasks("w-1", T0, at(30), limit=1)
        assert not await uow.finish_truth_task(tid, "w-2", status="done", attempts=1,
                                               next_attempt_at=at(5), last_error=None,
                                               now=at(5))
        assert await uow.finish_truth_task(tid, "w-1", status="pending", attempts=1,
                                           next_attempt_at=at(60), last_error="HTTP 503",
                                           now=at(5))
        assert not await uow.finish_truth_task(tid, "w-1", status="done", attempts=2,
                                               next_attempt_at=at(6), last_error=None,
                                               now=at(6))  # no longer holds the lease
        with pytest.raises(ValueError, match="status"):
            await uow.finish_truth_task(tid, "w-1", status="leased", attempts=1,
                                        next_attempt_at=at(6), last_error=None, now=at(6))
        assert await uow.claim_truth_tasks("w-2", at(59), at(90), limit=1) == []  # not due
        pending = await uow.list_truth_tasks(status="pending")
        assert await uow.list_truth_tasks(status="done") == []
    assert pending == [dataclasses.replace(task("CAP-1"), attempts=1, next_attempt_at=at(60),
                                           last_error="HTTP 503")]


async def test_find_by_provider_payment_ids(store: Store) -> None:
    """Orders are found by capture or authorization id (per provider); refunds by provider id."""
    refund = Refund("r-1", "o-1", Money(500, "USD"), "completed", "refund:r-1", T0, T0,
                    provider_refund_id="PR-1")
    async with store.transaction() as uow:
        await uow.insert_order(order("o-1", capture_id="CAP-1"))
        await uow.insert_order(order("o-2", authorization_id="AUTH-2", capture_id="CAP-2"))
        await uow.insert_order(order("o-3"))
        await uow.insert_refund(refund)
        await uow.insert_refund(Refund("r-2", "o-1", Money(1, "USD"), "pending", "refund:r-2",
                                       T0, T0))
        by_capture = await uow.find_order_by_capture_id("paypal", "CAP-1")
        by_auth = await uow.find_order_by_capture_id("paypal", "AUTH-2")
        by_auth_capture = await uow.find_order_by_capture_id("paypal", "CAP-2")
        assert await uow.find_order_by_capture_id("aps", "CAP-1") is None
        assert await uow.find_order_by_capture_id("paypal", "CAP-404") is None
        assert await uow.find_refund_by_provider_id("PR-1") == refund
        assert await uow.find_refund_by_provider_id("PR-404") is None
    assert by_capture is not None and by_capture == order("o-1", capture_id="CAP-1")
    assert by_auth is not None and by_auth.id == "o-2" and len(by_auth.lines) == 1
    assert by_auth_capture is not None and by_auth_capture.id == "o-2"


async def test_rollback_undoes_webhook_writes(store: Store) -> None:
    """An exception inside a unit of work undoes inbox, rejection and truth-queue writes."""
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.transaction() as uow:
            assert await uow.put_inbox_event(event())
            assert await uow.record_rejection(rejection("tx-1"), max_rows=10)
            assert await uow.enqueue_truth(task("CAP-1"))
            raise Boom
    async with store.transaction() as uow:
        assert await uow.get_inbox_event("paypal", "WH-1") is None
        assert await uow.list_rejections() == []
        assert await uow.list_truth_tasks() == []
