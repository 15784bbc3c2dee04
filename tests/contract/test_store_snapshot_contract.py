"""The store port's snapshot contract, run against every backend (the `store` fixture's
parameters): a read-only unit of work that sees what was committed, never what a transaction
has not committed yet, never waits for one, and writes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest

from paywire.domain.errors import StorageError
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine
from paywire.ports import HistoryEntry, InboxEvent, Store

T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def event(event_id: str = "WH-1") -> InboxEvent:
    """A stored PAYMENT.CAPTURE.COMPLETED event."""
    return InboxEvent(provider="paypal", event_id=event_id,
                      event_type="PAYMENT.CAPTURE.COMPLETED", received_at=T0,
                      body=b'{"id":"' + event_id.encode() + b'"}', transmission_id="tx-1")


def order(order_id: str = "o-1") -> Order:
    """A two-line USD order."""
    lines = [OrderLine("sku-1", "Mug", 2, Money(1250, "USD")),
             OrderLine("sku-2", "Tea", 1, Money(499, "USD"))]
    return dataclasses.replace(Order.new(order_id, Intent.CAPTURE, lines, T0),
                               provider_order_id=f"PP-{order_id}")


async def test_snapshot_reads_what_was_committed(store: Store) -> None:
    """A snapshot reads committed events and orders (with their lines) as a transaction does."""
    async with store.transaction() as uow:
        await uow.insert_order(order())
        await uow.put_inbox_event(event())
    async with store.snapshot() as view:
        got_event = await view.get_inbox_event("paypal", "WH-1")
        got_order = await view.get_order("o-1")
        by_provider = await view.find_order_by_provider_id("paypal", "PP-o-1")
        assert await view.get_inbox_event("paypal", "WH-2") is None
    assert got_event == event()
    assert got_order == order() == by_provider


async def test_snapshot_refuses_writes(store: Store) -> None:
    """A write in a snapshot raises StorageError, and nothing of the snapshot is written."""
    with pytest.raises(StorageError, match="only reads"):
        async with store.snapshot() as view:
            await view.put_inbox_event(event())
    with pytest.raises(StorageError, match="only reads"):
        async with store.snapshot() as view:
            await view.append_history(HistoryEntry(
                order_id="o-1", at=T0, source="webhook", verdict="NOTE",
                from_status=order().status, to_status=order().status, detail={}))
    async with store.transaction() as uow:
        assert await uow.get_inbox_event("paypal", "WH-1") is None
        assert await uow.history("o-1") == []


async def test_snapshot_neither_sees_nor_waits_for_an_open_transaction(store: Store) -> None:
    """While a transaction holds an uncommitted write, a snapshot answers at once without it;
    once committed, the next snapshot sees it."""
    written, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with store.transaction() as uow:
            await uow.put_inbox_event(event())
            written.set()
            await release.wait()

    task = asyncio.create_task(writer())
    try:
        await asyncio.wait_for(written.wait(), timeout=10)
        async with asyncio.timeout(5):
            async with store.snapshot() as view:
                assert await view.get_inbox_event("paypal", "WH-1") is None
    finally:
        release.set()
        await task
    async with store.snapshot() as view:
        assert await view.get_inbox_event("paypal", "WH-1") == event()


async def test_snapshot_inside_a_transaction_does_not_wait_for_it(store: Store) -> None:
    """A snapshot opened while the same task holds a transaction answers (no self-deadlock)."""
    async with store.transaction() as uow:
        await uow.put_inbox_event(event())
        async with asyncio.timeout(5):
            async with store.snapshot() as view:
                assert await view.get_inbox_event("paypal", "WH-1") is None
