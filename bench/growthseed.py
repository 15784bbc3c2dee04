"""Seeding a migrated paywire database with `n` orders' worth of rows, fast (bench/growth.py).

Every table the SQL store writes gets the rows a real shop's orders leave behind, in the
proportions paywire's own flows write them (taken from a run of the real API against the
emulator): an order paid through the API leaves its row and lines, six-odd history lines, its
`create` and `capture` operations, an Idempotency-Key, the three PayPal webhooks (stored
bodies of the emulator's size and shape, about 2 KB each), a confirmation task for the early
APPROVED event, and its announcements (delivered). Around them: refunds, abandoned checkouts
that expired, declines, voids, reversals, flagged orders, a few dead or retrying outbox
messages and truth tasks, rejected deliveries; and, among the newest orders only, the unsettled
ones (created, approved, authorized, pending) with a reconciliation state whose next check is
an hour away, so the reconciler walks them without calling the provider during a measurement.

Orders are spread over `n / 3000` days (at least one) before now. Ids have the length and
alphabet of paywire's and PayPal's, but begin with a serial number, so the primary keys and
unique constraints the load keeps in place take appends instead of inserts all over their trees
(a lookup costs the same either way; the orders measured get paywire's own random ids).

The rows are written straight into the store's tables (the columns named in `COLUMNS`, checked
against `paywire.store.sql.tables` so a new column fails here loudly): the secondary indexes are
dropped first and rebuilt from the database's own definitions afterwards (the migrations'
DDL, so the schema stays exactly what `paywire migrate` made: `growth.py` checks it with
`migrate.check`). SQLite by `executemany` with journaling off, then back to WAL; PostgreSQL by
`COPY`, then `VACUUM ANALYZE` (what autovacuum would have done to an old table). SQLite gets no
ANALYZE: paywire never runs one, so its planner works without statistics in production too.
"""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.pool import AsyncResult
from typing import Any

import sqlalchemy as sa

from paywire.store.sql.tables import ALL_TABLES

# The columns written, per table, in the order of the tuples below. `history.id` is the
# database's (an auto-increment).
COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": ("id", "version", "status", "intent", "currency", "amount_minor",
               "captured_minor", "refunded_minor", "refund_reserved_minor", "created_at",
               "updated_at", "provider", "provider_order_id", "approve_url", "capture_id",
               "authorization_id", "disputed", "needs_attention", "capture_attempt",
               "metadata", "trace_id"),
    "order_lines": ("order_id", "position", "sku", "name", "quantity", "currency",
                    "unit_price_minor"),
    "history": ("order_id", "at", "source", "verdict", "from_status", "to_status", "detail",
                "trace_id"),
    "outbox": ("id", "key", "type", "order_id", "payload", "created_at", "status", "attempts",
               "next_attempt_at", "lease_owner", "lease_until", "last_error", "delivered_at",
               "trace_id"),
    "provider_operations": ("key", "order_id", "kind", "status", "created_at", "updated_at",
                            "lease_until", "result", "error", "trace_id"),
    "refunds": ("id", "order_id", "currency", "amount_minor", "status", "operation_key",
                "provider_refund_id", "reason", "created_at", "updated_at"),
    "idempotency_keys": ("scope", "key", "request_hash", "status", "created_at", "expires_at",
                         "locked_until", "resource_id", "response_status", "response_body"),
    "inbox_events": ("provider", "event_id", "event_type", "received_at", "body",
                     "transmission_id", "status", "order_id", "note"),
    "webhook_rejections": ("provider", "transmission_id", "received_at", "check", "reason",
                           "likely_cause", "event_id", "event_type", "cert_url", "body_sha256"),
    "truth_tasks": ("id", "provider", "kind", "resource_id", "reason", "created_at",
                    "next_attempt_at", "status", "attempts", "order_id", "lease_owner",
                    "lease_until", "last_error"),
    "reconcile_states": ("order_id", "attempts", "next_check_at", "first_checked_at",
                         "last_checked_at"),
    "audit_log": ("id", "at", "actor", "action", "order_id", "outcome", "detail", "trace_id"),
    "delivery_attempts": ("message_id", "order_id", "at", "attempt", "outcome", "error",
                          "message_type", "trace_id"),
}
DATABASE_DEFAULTS = {("history", "id"), ("delivery_attempts", "id")}

# Settled orders by kind, per 10,000 (the unsettled ones are drawn among the newest, below).
KINDS: tuple[tuple[str, int], ...] = (
    ("completed", 8200), ("auth_completed", 200), ("refunded", 300), ("partial", 200),
    ("expired", 800), ("denied", 100), ("failed", 50), ("voided", 100), ("reversed", 20),
    ("flagged", 30))
CATALOG = (("mug", "paywire mug", 1250), ("tea", "Breakfast tea", 499),
           ("beans", "Coffee beans 1kg", 2899), ("poster", "Poster A2", 1800))
HOST = "https://api-m.sandbox.paypal.com"
MINUTE = 60_000_000  # microseconds
HOUR, DAY = 60 * MINUTE, 24 * 60 * MINUTE
CHUNK = 10_000  # orders generated and written at a time
AHEAD = 2  # chunks generated ahead of the writer
SCOPE = "public|POST /v1/checkout/orders"
REQUEST_HASH = "311e90c2015cf123db979dc96dbd00e6109195695e1296f5b54e07f17cec959f"


def check_columns() -> None:
    """Refuse to seed a schema this module does not know every column of."""
    for table in ALL_TABLES:
        known = set(COLUMNS.get(table.name, ())) | {c for t, c in DATABASE_DEFAULTS
                                                    if t == table.name}
        if known != set(table.c.keys()):
            raise SystemExit(f"bench/growthseed.py writes {sorted(known)} to {table.name}, "
                             f"which has {sorted(table.c.keys())}: update COLUMNS and the rows")


# --- event bodies, shaped and sized as the emulator's (PayPal's) ---------------------------

_PAYER = ('"payer":{"name":{"given_name":"Test","surname":"Buyer"},"email_address":'
          '"sb-buyer@personal.example.com","payer_id":"G5WAMX7ME3LCW","address":'
          '{"country_code":"US"}}')


def _event(event_id: str, event_type: str, resource_type: str, summary: str, when: str,
           resource: str) -> bytes:
    hooks = f"{HOST}/v1/notifications/webhooks-events/{event_id}"
    return (f'{{"id":"{event_id}","event_version":"1.0","create_time":"{when}",'
            f'"resource_type":"{resource_type}","resource_version":"2.0","event_type":'
            f'"{event_type}","summary":"{summary}","resource":{resource},"links":[{{"href":'
            f'"{hooks}","rel":"self","method":"GET"}},{{"href":"{hooks}/resend","rel":"resend",'
            f'"method":"POST"}}]}}').encode()


def _capture(capture_id: str, status: str, value: str, order_id: str, pp_order: str,
             when: str) -> str:
    cap = f"{HOST}/v2/payments/captures/{capture_id}"
    return (f'{{"id":"{capture_id}","status":"{status}","amount":{{"currency_code":"USD",'
            f'"value":"{value}"}},"final_capture":true,"seller_protection":{{"status":"ELIGIBLE",'
            f'"dispute_categories":["ITEM_NOT_RECEIVED","UNAUTHORIZED_TRANSACTION"]}},'
            f'"seller_receivable_breakdown":{{"gross_amount":{{"currency_code":"USD","value":'
            f'"{value}"}}}},"invoice_id":"{order_id}","custom_id":"{order_id}",'
            f'"supplementary_data":{{"related_ids":{{"order_id":"{pp_order}"}}}},'
            f'"create_time":"{when}","update_time":"{when}","links":[{{"href":"{cap}","rel":'
            f'"self","method":"GET"}},{{"href":"{cap}/refund","rel":"refund","method":"POST"}},'
            f'{{"href":"{HOST}/v2/checkout/orders/{pp_order}","rel":"up","method":"GET"}}]}}')


def _checkout(pp_order: str, status: str, value: str, order_id: str, when: str,
              captures: str) -> str:
    payments = f',"payments":{{"captures":[{captures}]}}' if captures else ""
    return (f'{{"id":"{pp_order}","status":"{status}","intent":"CAPTURE","purchase_units":[{{'
            f'"reference_id":"{order_id}","amount":{{"currency_code":"USD","value":"{value}",'
            f'"breakdown":{{"item_total":{{"currency_code":"USD","value":"{value}"}}}}}},'
            f'"payee":{{"email_address":"sb-merchant@business.example.com","merchant_id":'
            f'"Q42UXR3UAJAVQ"}},"custom_id":"{order_id}","invoice_id":"{order_id}"{payments}}}],'
            f'"create_time":"{when}","update_time":"{when}",{_PAYER},"links":[{{"href":'
            f'"{HOST}/v2/checkout/orders/{pp_order}","rel":"self","method":"GET"}}]}}')


# --- one order's rows ------------------------------------------------------------------------


@dataclass
class Rows:
    """Rows per table, as tuples in `COLUMNS` order."""

    tables: dict[str, list[tuple[Any, ...]]] = field(
        default_factory=lambda: {name: [] for name in COLUMNS})

    def count(self) -> int:
        """How many rows in all."""
        return sum(len(rows) for rows in self.tables.values())


class Seeder:
    """Generates the rows of orders `0..n-1` (oldest first) for one dialect's value types."""

    def __init__(self, n: int, now_us: int, dialect: str, seed: int = 18) -> None:
        self.n = n
        self.now_us = now_us
        self.span_us = max(DAY, n * DAY // 3000)
        self.seed = seed
        self.rng = random.Random(seed)
        self.sqlite = dialect == "sqlite"
        self.kinds = [k for k, w in KINDS for _ in range(w)]
        self._seconds: dict[int, str] = {}
        self.serial = 0

    # Column values: datetimes as the dialect's driver takes them through the raw connection
    # (SQLite: paywire's fixed-width ISO text; PostgreSQL: aware datetimes), booleans likewise.
    def at(self, us: int) -> Any:
        """The stored form of an instant given in microseconds since the epoch."""
        if self.sqlite:
            return f"{self.second(us)}.{us % 1_000_000:06d}+00:00"
        return datetime.fromtimestamp(us / 1_000_000, UTC)

    def second(self, us: int) -> str:
        """"YYYY-MM-DDTHH:MM:SS" of an instant (cached: an order's times share seconds)."""
        sec = us // 1_000_000
        text = self._seconds.get(sec)
        if text is None:
            if len(self._seconds) > 100_000:
                self._seconds.clear()
            text = self._seconds[sec] = datetime.fromtimestamp(sec, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S")
        return text

    def flag(self, value: bool) -> Any:
        """The stored form of a boolean."""
        return int(value) if self.sqlite else value

    def hexid(self, bits: int = 96) -> str:
        """Lowercase hex of `bits` bits: a serial number, then random (ascending)."""
        self.serial += 1
        return f"{self.serial:08x}{self.rng.randbytes(bits // 8 - 4).hex()}"

    def randhex(self, bits: int) -> str:
        """Random lowercase hex of `bits` bits (for values no kept index orders)."""
        return self.rng.randbytes(bits // 8).hex()

    def paypal_id(self, size: int = 17) -> str:
        """A PayPal-style id (17 upper-case characters; ascending, as `hexid`)."""
        self.serial += 1
        return f"{self.serial:08X}{self.rng.randbytes(5).hex().upper()}"[:size]

    def chunk(self, start: int, stop: int) -> Rows:
        """The rows of orders `start..stop-1`; the rejection log after the last order. Chunks
        are independent of each other (their own random stream, ids numbered by order), so
        they can be made in parallel."""
        self.rng = random.Random(self.seed * 1_000_003 + start)
        rows = Rows()
        for i in range(start, stop):
            self.order(i, rows)
        if stop == self.n:
            self.rejections(rows)
        return rows

    def order(self, i: int, rows: Rows) -> None:
        """Order `i`'s rows, by what happened to it."""
        self.serial = i * 64  # an order takes fewer ids than that
        t0 = self.now_us - self.span_us + (i * self.span_us) // self.n
        age = self.now_us - t0
        kind = self.unsettled(age) or self.rng.choice(self.kinds)
        if kind == "expired" and age < 5 * HOUR:
            kind = "created"  # not expired yet: still within its approval window
        Story(self, rows, t0, kind).tell()

    def unsettled(self, age: int) -> str | None:
        """Among the newest orders, some not settled yet (as a live shop has)."""
        roll = self.rng.random()
        if age < 10 * MINUTE and roll < 0.05:
            return "approved"
        if age < 3 * HOUR and roll < 0.20:
            return "created"
        if age < 7 * DAY and roll < 0.001:
            return "pending"
        if age < 29 * DAY and roll < 0.005:
            return "authorized"
        return None

    def rejections(self, rows: Rows) -> None:
        """Refused deliveries: one per 100 orders, at most the log's default bound."""
        for _ in range(min(10_000, max(1, self.n // 100))):
            at = self.now_us - self.span_us + self.rng.randrange(self.span_us)
            rows.tables["webhook_rejections"].append((
                "paypal", self.randhex(128), self.at(at), "signature",
                "the signature does not match the body", "a body changed in transit",
                f"WH-{self.randhex(64).upper()}", "PAYMENT.CAPTURE.COMPLETED",
                f"{HOST}/v1/notifications/certs/CERT-360caa42", self.randhex(256)))


class Story:
    """The rows one order of one kind leaves behind, written as its flows would."""

    def __init__(self, s: Seeder, rows: Rows, t0: int, kind: str) -> None:
        self.s, self.t, self.t0, self.kind = s, rows.tables, t0, kind
        self.id = f"ord_{s.hexid()}"
        self.trace = s.randhex(128)  # the W3C trace id its checkout started (32 hex digits)
        self.pp = s.paypal_id()
        lines = [s.rng.choice(CATALOG) for _ in range(1 + (s.rng.random() < 0.3))]
        self.lines = [(sku, name, 1 + (s.rng.random() < 0.2), price)
                      for sku, name, price in lines]
        self.amount = sum(q * p for _, _, q, p in self.lines)
        self.value = f"{self.amount // 100}.{self.amount % 100:02d}"
        self.intent = "AUTHORIZE" if kind in ("auth_completed", "voided", "authorized") else (
            "CAPTURE")
        self.capture_id: str | None = None
        self.authorization_id: str | None = None

    def later(self, start: int, span: int) -> int:
        """A random time within `span` after `start`, but before now."""
        span = min(span, self.s.now_us - 1_000_000 - start)
        return start + self.s.rng.randrange(span) if span > 0 else start

    def iso(self, us: int) -> str:
        """PayPal's whole-second time."""
        return self.s.second(us) + "Z"

    def tell(self) -> None:
        """Every row, from creation to where the order now stands."""
        s, t0, k = self.s, self.t0, self.kind
        created = t0 + 30_000
        self.history(t0, "api", "APPLY", "CREATED", "CREATED",
                     f'{{"amount": "{self.value}", "currency": "USD"}}')
        self.operation("create", t0 + 5_000, t0 + 60_000, "succeeded",
                       f'{{"provider_order_id": "{self.pp}", "approve_url": '
                       f'"{HOST}/checkoutnow?token={self.pp}", "status": "CREATED"}}')
        self.history(t0 + 60_000, "api", "NOTE", "CREATED", "CREATED",
                     f'{{"provider_order_id": "{self.pp}"}}')
        if s.rng.random() < 0.9:
            self.idempotency(t0)
        for pos, (sku, name, qty, price) in enumerate(self.lines):
            self.t["order_lines"].append((self.id, pos, sku, name, qty, "USD", price))
        if k == "created":
            return self.finish("CREATED", created, version=2, check=True)
        if k == "expired":
            at = self.later(t0 + 4 * HOUR, HOUR)
            self.history(at, "reconcile", "APPLY", "CREATED", "EXPIRED",
                         '{"reason": "provider_not_found_after_window"}')
            self.announce("order.expired", at, "EXPIRED")
            return self.finish("EXPIRED", at, version=3)
        approved = t0 + 20 * 1_000_000 + s.rng.randrange(60 * 1_000_000)
        early = s.rng.random() < 0.5  # the APPROVED webhook came before the shop captured
        self.webhook("CHECKOUT.ORDER.APPROVED", approved + 800_000, "APPROVED", confirm=early)
        if early:
            self.history(approved + 900_000, "webhook", "APPLY", "CREATED", "APPROVED", "{}")
            self.announce("order.approved", approved + 900_000, "APPROVED")
        if k == "approved":
            return self.finish("APPROVED", approved + 900_000, version=3, check=True)
        paid = approved + 3_000_000
        if self.intent == "AUTHORIZE":
            self.authorization_id = s.paypal_id()
            self.operation("authorize", paid - 500_000, paid, "succeeded",
                           f'{{"authorization_id": "{self.authorization_id}", '
                           '"status": "AUTHORIZED"}')
            self.history(paid, "api", "APPLY", "APPROVED", "AUTHORIZED",
                         f'{{"authorization_id": "{self.authorization_id}"}}')
            self.announce("order.authorized", paid, "AUTHORIZED")
            if k == "authorized":
                return self.finish("AUTHORIZED", paid, version=4, check=True)
            if k == "voided":
                at = self.later(paid, 2 * DAY)
                self.operation("void", at - 300_000, at, "succeeded",
                               f'{{"voided": "{self.authorization_id}"}}')
                self.history(at, "api", "APPLY", "AUTHORIZED", "VOIDED", "{}")
                self.announce("order.voided", at, "VOIDED")
                return self.finish("VOIDED", at, version=5)
            paid = self.later(paid, 3 * DAY)
            if paid - self.t0 > DAY:
                # Checked while it sat AUTHORIZED, then captured by the shop: the check state
                # stays behind (only the reconciler's own settling clears it).
                checked = self.t0 + DAY + HOUR
                self.t["reconcile_states"].append((self.id, 1, s.at(checked + HOUR),
                                                   s.at(checked), s.at(checked)))
        if k in ("denied", "failed"):
            self.operation("capture", paid - 500_000, paid, "failed", None,
                           '{"kind": "declined", "status": 422, "name": "UNPROCESSABLE_ENTITY",'
                           ' "issue": "INSTRUMENT_DECLINED", "debug_id": "f00d", "message": '
                           '"The instrument presented was declined."}')
            status = "DENIED" if k == "denied" else "FAILED"
            self.history(paid, "api", "APPLY", "APPROVED", status,
                         '{"reason": "INSTRUMENT_DECLINED"}')
            self.announce(f"order.{status.lower()}", paid, status)
            return self.finish(status, paid, version=4)
        self.capture_id = s.paypal_id()
        kind = "capture_authorization" if self.intent == "AUTHORIZE" else "capture"
        self.operation(kind, paid - 500_000, paid, "succeeded",
                       f'{{"capture_id": "{self.capture_id}", "status": "COMPLETED", '
                       f'"amount": "{self.value} USD", "provider_status": "COMPLETED"}}')
        pending = k == "pending"
        status = "PENDING" if pending else "COMPLETED"
        before = "AUTHORIZED" if self.intent == "AUTHORIZE" else "APPROVED"
        self.history(paid, "api", "APPLY", before, status,
                     f'{{"capture_id": "{self.capture_id}", "amount": "{self.value}", '
                     '"currency": "USD"}')
        if pending:
            return self.finish("PENDING", paid, version=4, check=True)
        self.announce("order.completed", paid, "COMPLETED")
        self.webhook("PAYMENT.CAPTURE.COMPLETED", paid + 1_200_000, "COMPLETED")
        self.webhook("CHECKOUT.ORDER.COMPLETED", paid + 1_500_000, "COMPLETED")
        final, at, version = "COMPLETED", paid, 5
        if k in ("refunded", "partial"):
            at = self.later(paid, 20 * DAY)
            refunded = self.amount if k == "refunded" else self.amount // 2
            if k == "partial":  # a partial refund is an operator's, from the dashboard
                self.t["audit_log"].append((
                    f"aud_{self.s.hexid()}", self.s.at(at), "operator (api key ...a1b2)",
                    "refund", self.id, "ok", f'{{"amount": {refunded}}}', self.trace))
            final = "REFUNDED" if k == "refunded" else "PARTIALLY_REFUNDED"
            self.refund(at, refunded)
            self.announce(f"order.{final.lower()}", at, final)
            version += 2
            return self.finish(final, at, version=version, refunded=refunded)
        if k == "reversed":
            at = self.later(paid, 30 * DAY)
            self.webhook("PAYMENT.CAPTURE.REVERSED", at, "REVERSED")
            self.history(at, "webhook", "APPLY", "COMPLETED", "REVERSED", "{}")
            self.announce("order.reversed", at, "REVERSED")
            return self.finish("REVERSED", at, version=6)
        attention = None
        if k == "flagged":
            attention = "amount_mismatch"
            self.history(paid + 2_000_000, "webhook", "CONFLICT", "COMPLETED", "COMPLETED",
                         '{"reason": "amount_mismatch"}')
            self.announce("order.needs_attention", paid + 2_000_000, "COMPLETED")
        return self.finish(final, at, version=version, attention=attention)

    def finish(self, status: str, updated: int, *, version: int, check: bool = False,
               refunded: int | None = None, attention: str | None = None) -> None:
        """The order's own row; an unsettled one also its (not yet due) reconciliation state."""
        s = self.s
        captured = self.amount if self.capture_id and status not in ("PENDING",) else None
        self.t["orders"].append((
            self.id, version, status, self.intent, "USD", self.amount, captured, refunded,
            0 if refunded else None, s.at(self.t0), s.at(updated), "paypal", self.pp,
            f"{HOST}/checkoutnow?token={self.pp}", self.capture_id, self.authorization_id,
            s.flag(status == "REVERSED"), attention,
            1, '{"customer_email": "buyer@example.com"}', self.trace))
        if check:
            # Checked before; the next check is an hour off, so not due while measured.
            due = s.now_us + HOUR + s.rng.randrange(HOUR)
            last = s.now_us - 10 * MINUTE
            self.t["reconcile_states"].append((self.id, 3, s.at(due),
                                               s.at(min(updated + 10 * MINUTE, last)),
                                               s.at(last)))

    def history(self, at: int, source: str, verdict: str, before: str, after: str,
                detail: str) -> None:
        """One history line."""
        self.t["history"].append((self.id, self.s.at(at), source, verdict, before, after,
                                  detail, self.trace))

    def operation(self, kind: str, start: int, end: int, status: str, result: str | None,
                  error: str | None = None) -> None:
        """A provider call under its key, finished."""
        key = f"{self.id}:{kind}" + ("" if kind in ("create", "void") else ":1")
        self.t["provider_operations"].append((key, self.id, kind, status, self.s.at(start),
                                              self.s.at(end), None, result, error,
                                              self.trace))

    def idempotency(self, at: int) -> None:
        """The shop's Idempotency-Key for the create (expired a day later, never swept)."""
        s = self.s
        body = (f'{{"id": "{self.id}", "provider": "paypal", "provider_order_id": "{self.pp}", '
                f'"status": "CREATED", "intent": "{self.intent}", "amount": {{"currency_code": '
                f'"USD", "value": "{self.value}"}}, "approve_url": "{HOST}/checkoutnow?token='
                f'{self.pp}", "capture_id": null, "authorization_id": null, "captured": null, '
                '"refunded": null, "needs_attention": null, "disputed": false}')
        s_at = s.at(at)
        self.t["idempotency_keys"].append((SCOPE, f"cart-{s.hexid(64)}", REQUEST_HASH, "done",
                                           s_at, s.at(at + DAY), None, self.id, 201, body))

    def announce(self, type_: str, at: int, status: str) -> None:
        """An announcement, delivered a moment later (a few dead, retrying or queued)."""
        s = self.s
        roll = s.rng.random()
        status_, attempts, next_at, error, delivered = "delivered", 1, None, None, s.at(at + 50_000)
        if roll < 0.0001:
            status_, attempts, error, delivered = "dead", 12, "HTTP 500 from the shop", None
        elif roll < 0.0002 and s.now_us - at < 3 * DAY:
            status_, attempts, delivered = "pending", 4, None
            next_at, error = s.at(s.now_us + HOUR), "HTTP 503 from the shop"
        elif roll < 0.0004:
            status_, delivered = "queued", None
        payload = (f'{{"type": "{type_}", "order_id": "{self.id}", "status": "{status}", '
                   f'"amount": "{self.value}", "currency": "USD", "provider": "paypal", '
                   f'"provider_order_id": "{self.pp}"}}')
        message_id = f"msg_{s.hexid(128)}"
        self.t["outbox"].append((message_id, f"{type_}:{self.id}", type_, self.id,
                                 payload, s.at(at), status_, attempts, next_at, None, None,
                                 error, delivered, self.trace))
        if status_ != "queued":  # each attempt and the shop's answer (the worker's log)
            for n in range(1, attempts + 1):
                last = n == attempts
                self.t["delivery_attempts"].append((
                    message_id, self.id, s.at(at + n * 50_000), n,
                    status_ if last else "pending", None if last and delivered else error,
                    type_, self.trace))

    def webhook(self, event_type: str, at: int, status: str, *, confirm: bool = False) -> None:
        """A PayPal delivery as stored (and, if it came early, its confirmation task)."""
        s = self.s
        event_id = f"WH-{s.paypal_id(8)}-{s.rng.randbytes(9).hex().upper()[:17]}"
        when = self.iso(at)
        if event_type.startswith("CHECKOUT."):
            captures = "" if self.capture_id is None else _capture(
                self.capture_id, "COMPLETED", self.value, self.id, self.pp, when)
            resource = _checkout(self.pp, status, self.value, self.id, when, captures)
            body = _event(event_id, event_type, "checkout-order", "Checkout Order " + status,
                          when, resource)
        else:
            resource = _capture(self.capture_id or "", status, self.value, self.id, self.pp,
                                when)
            body = _event(event_id, event_type, "capture", "Payment " + status.lower(), when,
                          resource)
        stored = "confirming" if confirm else "applied"
        self.t["inbox_events"].append((
            "paypal", event_id, event_type, s.at(at), body,
            f"{s.randhex(32)}-f201-11f1-{s.randhex(16)}-{s.randhex(48)}", stored, self.id, None))
        if not confirm:
            self.history(at + 20_000, "webhook", "STALE", status, status,
                         f'{{"provider_status": "{status}"}}')
            return
        task_status, attempts, next_at, error = "done", 1, at + 300_000, None
        roll = s.rng.random()
        if roll < 0.0002:
            task_status, attempts, error = "failed", 12, "PayPal answered 500 twelve times"
        elif roll < 0.0004 and s.now_us - at < DAY:
            task_status, attempts, error = "pending", 5, "PayPal answered 503"
            next_at = s.now_us + HOUR
        reason = f"confirm {event_type} {event_id} {status} -"
        self.t["truth_tasks"].append((
            f"paypal:confirm:{event_id}:{s.randhex(64)}", "paypal", "order", self.pp, reason,
            s.at(at), s.at(next_at), task_status, attempts, self.id, None, None, error))

    def refund(self, at: int, amount: int) -> None:
        """A refund through the API, completed, and PayPal's REFUNDED webhook."""
        s = self.s
        refund_id, key = f"ref_{s.hexid()}", f"{self.id}:refund:{s.randhex(32)}"
        provider_refund = s.paypal_id()
        value = f"{amount // 100}.{amount % 100:02d}"
        self.t["refunds"].append((refund_id, self.id, "USD", amount, "completed", key,
                                  provider_refund, "customer request", s.at(at),
                                  s.at(at + 900_000)))
        self.t["provider_operations"].append((
            key, self.id, "refund", "succeeded", s.at(at), s.at(at + 900_000), None,
            f'{{"refund_id": "{provider_refund}", "status": "COMPLETED", "amount": '
            f'"{value} USD"}}', None, self.trace))
        self.history(at + 900_000, "api", "APPLY", "COMPLETED", "REFUNDED",
                     f'{{"refund_id": "{provider_refund}", "amount": "{value}"}}')
        self.webhook("PAYMENT.CAPTURE.REFUNDED", at + 2_000_000, "REFUNDED")


# --- writing ---------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What a seed wrote and how long it took."""

    orders: int
    rows: dict[str, int]
    seconds: float
    index_seconds: float


Writer = Callable[[str, list[tuple[Any, ...]]], None]


def _chunk(n: int, now_us: int, dialect: str, start: int, stop: int) -> Rows:
    return Seeder(n, now_us, dialect).chunk(start, stop)


def _generated(n: int, now: datetime, dialect: str) -> Iterator[Rows]:
    """Every chunk's rows, in order, made in a child process while the caller writes the
    previous ones (at most `AHEAD` chunks waiting, to bound the memory)."""
    now_us = int(now.timestamp() * 1_000_000)
    ranges = [(start, min(n, start + CHUNK)) for start in range(0, n, CHUNK)]
    with multiprocessing.get_context("fork").Pool(1) as pool:
        waiting: deque[AsyncResult[Rows]] = deque()
        for start, stop in ranges:
            waiting.append(pool.apply_async(_chunk, (n, now_us, dialect, start, stop)))
            if len(waiting) > AHEAD:
                yield waiting.popleft().get()
        while waiting:
            yield waiting.popleft().get()


def _load(n: int, now: datetime, dialect: str, write: Writer) -> dict[str, int]:
    counts = dict.fromkeys(COLUMNS, 0)
    for rows in _generated(n, now, dialect):
        for name, table_rows in rows.tables.items():
            if table_rows:
                write(name, table_rows)
                counts[name] += len(table_rows)
    return counts


def seed_sqlite(path: str, n: int, now: datetime) -> Seeded:
    """Seed the migrated SQLite file at `path` with `n` orders."""
    check_columns()
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -1000000")
        indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                               "AND sql IS NOT NULL").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("BEGIN")

        def write(name: str, rows: list[tuple[Any, ...]]) -> None:
            cols = COLUMNS[name]
            names = ", ".join(f'"{c}"' for c in cols)
            marks = ", ".join("?" for _ in cols)
            # Our own table and column names, from COLUMNS.
            conn.executemany(f"INSERT INTO {name} ({names}) VALUES ({marks})", rows)  # noqa: S608

        counts = _load(n, now, "sqlite", write)
        conn.execute("COMMIT")
        built = time.perf_counter()
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("PRAGMA journal_mode = WAL")
        done = time.perf_counter()
    finally:
        conn.close()
    return Seeded(n, counts, done - started, done - built)


def seed_postgres(url: str, n: int, now: datetime) -> Seeded:
    """Seed the migrated PostgreSQL database at `url` (a SQLAlchemy URL) with `n` orders."""
    import psycopg

    check_columns()
    started = time.perf_counter()
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # a bench's seed: no fsync per COPY
        # Secondary indexes only: those backing a primary key or unique constraint stay.
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = 'public' AND "
            "NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')

        def write(name: str, rows: list[tuple[Any, ...]]) -> None:
            cols = ", ".join(f'"{c}"' for c in COLUMNS[name])
            with conn.cursor() as cur, cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

        counts = _load(n, now, "postgresql", write)
        built = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("VACUUM ANALYZE")
        done = time.perf_counter()
    return Seeded(n, counts, done - started, done - built)


def now_utc() -> datetime:
    """The seed's "now" (the servers measured afterwards run on the wall clock too)."""
    return datetime.now(UTC) - timedelta(seconds=1)
