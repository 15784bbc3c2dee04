"""Loading the shop's catalog file (TOML or JSON) into a `Catalog`, refusing what cannot be sold.

The file lists products; prices are decimal *strings* (never floats: "12.50", not 12.5)::

    [[products]]
    sku = "mug"
    name = "paywire mug"
    unit_price = "12.50"
    currency = "USD"
    in_stock = true          # optional, default true

JSON is the same shape: `{"products": [{"sku": ..., "name": ..., ...}]}`. A top-level
`currency` is the default for products that do not name one. Every price is checked against the
provider (`check_amount`: currencies it does not support, decimals it cannot represent) at load,
so a bad catalog stops start-up instead of failing a buyer's checkout.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paywire.domain.catalog import Catalog, Product
from paywire.domain.errors import ConfigError, PaywireError
from paywire.domain.money import Money

PRODUCT_FIELDS = frozenset({"sku", "name", "unit_price", "currency", "in_stock"})
TOP_FIELDS = frozenset({"products", "currency"})

AmountCheck = Callable[[Money], None]


def _no_check(amount: Money) -> None:
    """Accept every amount (used when no provider is at hand)."""


def read_document(path: Path) -> dict[str, Any]:
    """The parsed file: TOML for `.toml`, JSON for `.json`; ConfigError if unreadable."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(f"catalog {path}: use a .toml or .json file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"catalog {path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        doc: Any = (tomllib.loads(raw.decode("utf-8")) if suffix == ".toml"
                    else json.loads(raw))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"catalog {path}: not valid {suffix[1:].upper()}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"catalog {path}: the top level must be a table/object")
    return doc


def _product(path: Path, index: int, entry: Any, default_currency: str | None,
             check_amount: AmountCheck) -> Product:
    where = f"catalog {path}, product #{index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: each product is a table/object")
    sku = entry.get("sku")
    if isinstance(sku, str) and sku:
        where = f"catalog {path}, product {sku!r}"
    unknown = sorted(set(entry) - PRODUCT_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(PRODUCT_FIELDS))})")
    for name in ("sku", "name", "unit_price"):
        if not isinstance(entry.get(name), str):
            hint = ' (a decimal string such as "12.50", never a number)' if (
                name == "unit_price") else ""
            raise ConfigError(f"{where}: {name} is required and must be a string{hint}")
    currency = entry.get("currency", default_currency)
    if not isinstance(currency, str):
        raise ConfigError(f"{where}: currency (an ISO 4217 code) is required")
    in_stock = entry.get("in_stock", True)
    if not isinstance(in_stock, bool):
        raise ConfigError(f"{where}: in_stock must be true or false")
    try:
        price = Money.parse(entry["unit_price"], currency)
        check_amount(price)
        return Product(sku=entry["sku"], name=entry["name"], unit_price=price,
                       in_stock=in_stock)
    except PaywireError as exc:
        raise ConfigError(f"{where}: {exc.message}", details={"product": sku}) from exc


def load_catalog(path: Path | str, check_amount: AmountCheck = _no_check) -> Catalog:
    """The catalog in `path`; ConfigError naming the file (and product) for anything wrong."""
    path = Path(path)
    doc = read_document(path)
    unknown = sorted(set(doc) - TOP_FIELDS)
    if unknown:
        raise ConfigError(f"catalog {path}: unknown top-level field(s) {', '.join(unknown)}")
    entries = doc.get("products")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"catalog {path}: needs a non-empty `products` list")
    default_currency = doc.get("currency")
    if default_currency is not None and not isinstance(default_currency, str):
        raise ConfigError(f"catalog {path}: currency must be an ISO 4217 code")
    products = [_product(path, i, entry, default_currency, check_amount)
                for i, entry in enumerate(entries, start=1)]
    try:
        return Catalog(products)
    except PaywireError as exc:
        raise ConfigError(f"catalog {path}: {exc.message}") from exc
