"""The shop's products as paywire's catalog: paywire prices orders from the file `export`
writes from the Product rows (one truth: the rows; write the file whenever they change, e.g.
in the deploy step, before paywire starts)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from shop.models import Product

DEMO_PRODUCTS = [
    ("mug", "paywire mug", "A mug for your morning reconciliation.", Decimal("12.50")),
    ("tee", "paywire T-shirt", "Exactly-once cotton.", Decimal("20.00")),
    ("stickers", "Sticker pack", "Idempotent stickers, apply twice.", Decimal("3.99")),
]


def seed() -> None:
    """The demo's products (left as they are if present)."""
    for sku, name, description, price in DEMO_PRODUCTS:
        Product.objects.get_or_create(sku=sku, defaults={
            "name": name, "description": description, "unit_price": price})


def export(path: Path) -> Path:
    """Write the products as paywire's catalog (JSON: prices as decimal strings)."""
    products = [{"sku": p.sku, "name": p.name, "unit_price": f"{p.unit_price:.2f}",
                 "currency": p.currency, "in_stock": p.in_stock}
                for p in Product.objects.order_by("sku")]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"products": products}, indent=2) + "\n", encoding="utf-8")
    return path
