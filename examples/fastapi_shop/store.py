"""The shop's own data: its orders and the fulfilment messages it has applied (SQLite).

paywire delivers each announcement at least once, under a stable message id. `fulfil` records
the message id and changes the order in one transaction, so a message delivered twice (a retry
after a timeout, a second process) changes nothing the second time: the shop's order is marked
paid exactly once.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS shop_orders (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    status TEXT NOT NULL,            -- awaiting_payment | paid | payment_failed | refunded
    paywire_order_id TEXT UNIQUE,
    paypal_order_id TEXT UNIQUE,
    paid_by_message TEXT,            -- the fulfilment message that marked it paid
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fulfilment_messages (
    message_id TEXT PRIMARY KEY,     -- paywire's message id: each applied once
    type TEXT NOT NULL,
    paywire_order_id TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""

# What each announcement does to an order of ours (others are recorded, nothing more).
TRANSITIONS = {
    "order.completed": ("paid", ("awaiting_payment", "payment_failed")),
    "order.denied": ("payment_failed", ("awaiting_payment",)),
    "order.voided": ("payment_failed", ("awaiting_payment",)),
    "order.expired": ("payment_failed", ("awaiting_payment",)),
    "order.refunded": ("refunded", ("paid",)),
}


@dataclass(frozen=True)
class ShopOrder:
    """One of the shop's orders."""

    id: str
    sku: str
    quantity: int
    status: str
    paywire_order_id: str | None
    paypal_order_id: str | None
    paid_by_message: str | None

    def to_json(self) -> dict[str, Any]:
        """The order for the shop's JSON endpoints."""
        return {"id": self.id, "sku": self.sku, "quantity": self.quantity,
                "status": self.status, "paywire_order_id": self.paywire_order_id,
                "paypal_order_id": self.paypal_order_id}


class ShopStore:
    """The shop's SQLite database (a connection per call: `fulfil` runs in a worker thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def create(self, sku: str, quantity: int) -> ShopOrder:
        """A new order awaiting payment."""
        order_id = "shop-" + secrets.token_hex(6)
        with self._db() as db:
            db.execute("INSERT INTO shop_orders (id, sku, quantity, status, created_at) "
                       "VALUES (?, ?, ?, 'awaiting_payment', ?)",
                       (order_id, sku, quantity, _now()))
        found = self.get(order_id)
        assert found is not None  # noqa: S101 - just written
        return found

    def link(self, order_id: str, paywire_order_id: str, paypal_order_id: str | None) -> None:
        """Remember which paywire (and PayPal) order pays for ours."""
        with self._db() as db:
            db.execute("UPDATE shop_orders SET paywire_order_id = ?, paypal_order_id = ? "
                       "WHERE id = ?", (paywire_order_id, paypal_order_id, order_id))

    def get(self, order_id: str) -> ShopOrder | None:
        """One order by our id."""
        return self._one("id", order_id)

    def by_paypal_order(self, paypal_order_id: str) -> ShopOrder | None:
        """The order PayPal's order (the `token` of PayPal's return) pays for."""
        return self._one("paypal_order_id", paypal_order_id)

    def _one(self, column: str, value: str) -> ShopOrder | None:
        with self._db() as db:
            row = db.execute(f"SELECT id, sku, quantity, status, paywire_order_id, "  # noqa: S608 - a fixed column name
                             f"paypal_order_id, paid_by_message FROM shop_orders "
                             f"WHERE {column} = ?", (value,)).fetchone()
        return None if row is None else ShopOrder(**dict(row))

    def messages(self) -> list[tuple[str, str, str]]:
        """Every fulfilment message applied: (message id, type, paywire order id)."""
        with self._db() as db:
            rows = db.execute("SELECT message_id, type, paywire_order_id "
                              "FROM fulfilment_messages ORDER BY received_at").fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def fulfil(self, message_id: str, type_: str, payload: dict[str, Any]) -> None:
        """paywire's fulfilment target: apply one announcement, once per message id."""
        paywire_order_id = str(payload["order_id"])
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                seen = db.execute("SELECT 1 FROM fulfilment_messages WHERE message_id = ?",
                                  (message_id,)).fetchone()
                if seen is None:
                    db.execute("INSERT INTO fulfilment_messages VALUES (?, ?, ?, ?)",
                               (message_id, type_, paywire_order_id, _now()))
                    target = TRANSITIONS.get(type_)
                    if target is not None:
                        status, sources = target
                        marks = ", ".join("?" for _ in sources)
                        db.execute(
                            f"UPDATE shop_orders SET status = ?, "  # noqa: S608 - placeholders only
                            f"paid_by_message = CASE WHEN ? = 'paid' THEN ? "
                            f"ELSE paid_by_message END "
                            f"WHERE paywire_order_id = ? AND status IN ({marks})",
                            (status, status, message_id, paywire_order_id, *sources))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
