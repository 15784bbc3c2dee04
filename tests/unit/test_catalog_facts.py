"""Server-side pricing from the catalog, and announcements keyed by fact."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paywire.domain.catalog import Catalog, Product
from paywire.domain.errors import ValidationError
from paywire.domain.facts import Fact, announcement_for
from paywire.domain.money import Money
from paywire.domain.order import Intent, Order, OrderStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CATALOG = Catalog([Product("mug", "Mug", Money(1250, "USD")),
                   Product("tee", "T-shirt", Money(2000, "USD")),
                   Product("old", "Gone", Money(500, "USD"), in_stock=False)])


def test_prices_come_from_the_catalog() -> None:
    """Lines carry the catalog's price; repeated skus merge."""
    lines = CATALOG.price([("mug", 2), ("tee", 1), ("mug", 1)])
    assert [(line.sku, line.quantity, line.unit_price.minor) for line in lines] == [
        ("mug", 3, 1250), ("tee", 1, 2000)]
    assert Order.new("o", Intent.CAPTURE, lines, NOW).amount == Money(5750, "USD")


@pytest.mark.parametrize("items", [[], [("nope", 1)], [("old", 1)], [("mug", 0)]])
def test_bad_items_are_refused(items: list[tuple[str, int]]) -> None:
    """Empty orders, unknown skus, out-of-stock products and zero quantities are refused."""
    with pytest.raises(ValidationError):
        CATALOG.price(items)


def test_one_currency_per_catalog() -> None:
    """A catalog mixing currencies is refused at load."""
    with pytest.raises(ValidationError):
        Catalog([Product("a", "A", Money(1, "USD")), Product("b", "B", Money(1, "EUR"))])


def test_announcements_are_keyed_by_fact() -> None:
    """The same fact from two paths has one key; two refunds have two."""
    o = Order.new("ord_1", Intent.CAPTURE, CATALOG.price([("mug", 1)]), NOW)
    api = announcement_for(o, Fact(OrderStatus.COMPLETED, "api", capture_id="C1"))
    hook = announcement_for(o, Fact(OrderStatus.COMPLETED, "webhook", capture_id="C1"))
    assert api is not None and hook is not None and api.key == hook.key
    r1 = announcement_for(o, Fact(OrderStatus.PARTIALLY_REFUNDED, "api", refund_id="R1"))
    r2 = announcement_for(o, Fact(OrderStatus.PARTIALLY_REFUNDED, "api", refund_id="R2"))
    assert r1 is not None and r2 is not None and r1.key != r2.key
    assert announcement_for(o, Fact(OrderStatus.CREATED, "api")) is None
