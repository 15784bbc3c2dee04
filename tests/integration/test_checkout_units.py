"""What a checkout create asks of the store: the units of work and the port calls in each, on
a real SQLite store (a keyed create reads no order; a resumed one reads its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from apikit import open_store, sqlite_url
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderLine
from paywire.ports import CheckoutUnit, IdempotencyKeys, Store, Transactions
from paywire.ports.clock import SystemClock
from paywire.services.checkout import Checkout
from paywire.services.registry import ProviderRegistry
from paywire.store import migrate
from toyprovider import ToyProvider

MUG = OrderLine("mug", "Mug", 1, Money(1500, "USD"))


class _Recorded:
    """A unit of work that notes the name of every port method called on it."""

    def __init__(self, uow: Any, calls: list[str]) -> None:
        self._uow = uow
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._uow, name)

        async def recorded(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(name)
            return await method(*args, **kwargs)

        return recorded


class Units:
    """The store, with each unit of work's port calls kept in `units` (a list per unit)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.units: list[list[str]] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """The store's unit of work, recorded."""
        calls: list[str] = []
        self.units.append(calls)
        async with self.store.transaction() as uow:
            yield _Recorded(uow, calls)


class KeyWrites:
    """An `Alongside` that writes nothing of its own (the API's is `KeyAlongside`)."""

    async def opened(self, uow: IdempotencyKeys) -> None:
        """Nothing to put."""

    async def answered(self, uow: IdempotencyKeys, order: Order) -> None:
        """Nothing to answer."""


@asynccontextmanager
async def checkout_on(tmp_path: Path) -> AsyncIterator[tuple[Checkout, Units]]:
    """A checkout over the toy provider on a migrated SQLite file, its units recorded."""
    url = sqlite_url(tmp_path)
    migrate.upgrade(url)
    store = open_store(url)
    units = Units(store)
    checkout = Checkout(cast("Transactions[CheckoutUnit]", units),
                        ProviderRegistry(ToyProvider("https://toy.test")), SystemClock())
    try:
        yield checkout, units
    finally:
        await store.close()


def _first(units: Units) -> list[str]:
    return units.units[0]


async def test_a_keyed_create_reads_no_order_before_inserting_it(tmp_path: Path) -> None:
    """An id an `alongside` vouches for is inserted without a read: two units, no get_order."""
    async with checkout_on(tmp_path) as (checkout, units):
        order = await checkout.create_order([MUG], Intent.CAPTURE, order_id="ord_keyed000001",
                                            alongside=KeyWrites())
        assert order.id == "ord_keyed000001" and order.provider_order_id == "TOY-ord_keyed000001"
        assert len(units.units) == 2
        assert _first(units) == ["insert_order", "append_history", "put_operation"]
        assert "get_order" not in units.units[1]  # the answer is applied to the order as read


async def test_a_resumed_create_reads_its_order_and_answers_it(tmp_path: Path) -> None:
    """An id without an `alongside` (a retry under a recorded key) is read first: a created
    order is answered as it stands, with nothing inserted and no second provider call."""
    async with checkout_on(tmp_path) as (checkout, units):
        first = await checkout.create_order([MUG], Intent.CAPTURE, order_id="ord_resumed00001",
                                            alongside=KeyWrites())
        units.units.clear()
        again = await checkout.create_order([MUG], Intent.CAPTURE, order_id="ord_resumed00001")
        assert again == first
        assert units.units == [["get_order"]]


async def test_a_create_without_an_id_reads_nothing(tmp_path: Path) -> None:
    """A fresh id names no order: the first unit only writes."""
    async with checkout_on(tmp_path) as (checkout, units):
        order = await checkout.create_order([MUG], Intent.CAPTURE)
        assert order.provider_order_id is not None
        assert _first(units) == ["insert_order", "append_history", "put_operation"]
