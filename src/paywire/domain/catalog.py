"""The shop's catalog and server-side pricing: the browser names skus, the server sets prices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from paywire.domain.errors import ValidationError
from paywire.domain.money import Money
from paywire.domain.order import OrderLine

MAX_LINES = 100


@dataclass(frozen=True, slots=True)
class Product:
    """A product the shop sells, at the server's price."""

    sku: str
    name: str
    unit_price: Money
    in_stock: bool = True

    def __post_init__(self) -> None:
        if not self.sku or len(self.sku) > 127:
            raise ValidationError("a sku is 1 to 127 characters", field="sku")
        if not self.name or len(self.name) > 127:
            raise ValidationError(f"product {self.sku}: a name is 1 to 127 characters",
                                  field="name")
        if self.unit_price.minor <= 0:
            raise ValidationError(f"product {self.sku}: prices are positive", field="unit_price")


class Catalog:
    """Products by sku, all in one currency."""

    def __init__(self, products: Iterable[Product]) -> None:
        self.products: dict[str, Product] = {}
        for p in products:
            if p.sku in self.products:
                raise ValidationError(f"duplicate sku {p.sku!r} in the catalog", field="sku")
            self.products[p.sku] = p
        currencies = {p.unit_price.currency for p in self.products.values()}
        if len(currencies) > 1:
            raise ValidationError(f"one catalog, one currency; found {sorted(currencies)}",
                                  field="currency")

    def price(self, items: list[tuple[str, int]]) -> list[OrderLine]:
        """Order lines for (sku, quantity) pairs, priced from the catalog; repeats are merged."""
        if not items:
            raise ValidationError("an order needs at least one item", field="items")
        if len(items) > MAX_LINES:
            raise ValidationError(f"at most {MAX_LINES} items", field="items")
        quantities: dict[str, int] = {}
        for sku, qty in items:
            product = self.products.get(sku)
            if product is None:
                raise ValidationError(f"unknown sku {sku!r}", field="items.sku")
            if not product.in_stock:
                raise ValidationError(f"{sku!r} is out of stock", field="items.sku")
            quantities[sku] = quantities.get(sku, 0) + qty
        return [OrderLine(sku=sku, name=self.products[sku].name, quantity=qty,
                          unit_price=self.products[sku].unit_price)
                for sku, qty in quantities.items()]
