"""The SQL schema (SQLAlchemy Core) the migrations create and `SqlStore` reads and writes.

Money is integer minor units beside an ISO currency code, never a float. Datetimes are aware UTC:
`timestamptz` on PostgreSQL; on SQLite, which has no time zones, fixed-width ISO-8601 text in UTC,
so comparing the text compares the instants (lease and expiry checks run in SQL). JSON is JSONB on
PostgreSQL and text on SQLite.

Only `order_lines` has a foreign key (lines are part of their order). The other tables name their
order without one, as the DynamoDB backend will: the contract suite, not the database, defines
what a write may reference.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime, stored in UTC; naive datetimes are refused rather than guessed."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            # "2024-05-01T12:00:00.000000+00:00": always 32 characters, so text order is time order.
            return dialect.type_descriptor(sa.String(32))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: paywire stores aware UTC datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.isoformat(timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).astimezone(UTC)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        return value.astimezone(UTC)


def json_doc() -> TypeEngine[Any]:
    """JSON: JSONB on PostgreSQL, text elsewhere; Python None is SQL NULL (not JSON 'null')."""
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True),
                                                   "postgresql")


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("intent", sa.String, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    # Same currency as `amount`; NULL means "none yet" (distinct from zero).
    sa.Column("captured_minor", sa.BigInteger),
    sa.Column("refunded_minor", sa.BigInteger),
    sa.Column("refund_reserved_minor", sa.BigInteger),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("provider", sa.String, nullable=False),
    sa.Column("provider_order_id", sa.String),
    sa.Column("approve_url", sa.String),
    sa.Column("capture_id", sa.String),
    sa.Column("authorization_id", sa.String),
    sa.Column("disputed", sa.Boolean, nullable=False),
    sa.Column("needs_attention", sa.Text),
    sa.Column("capture_attempt", sa.Integer, nullable=False),
    sa.Column("metadata", json_doc(), nullable=False),
    # W3C trace ids (32 hex digits) of the work that wrote a row; NULL before they were kept.
    sa.Column("trace_id", sa.String(32)),
    # NULLs are distinct in both dialects: many orders may not have a provider id yet.
    sa.UniqueConstraint("provider", "provider_order_id"),
    sa.Index(None, "created_at", "id"),
    sa.Index(None, "status", "created_at", "id"),
    # Reconciliation's candidates: orders in a status, last updated before a cut-off.
    sa.Index(None, "status", "updated_at"),
    # Webhooks name a payment by its capture or authorization id (find_order_by_capture_id).
    sa.Index(None, "provider", "capture_id"),
    sa.Index(None, "provider", "authorization_id"),
    # The dashboard's search by provider, newest first (keyset).
    sa.Index(None, "provider", "created_at", "id"),
    # The health read model's needs-attention count: partial, so it holds only flagged orders.
    sa.Index("ix_orders_needs_attention", "updated_at",
             postgresql_where=sa.text("needs_attention IS NOT NULL"),
             sqlite_where=sa.text("needs_attention IS NOT NULL")),
)
# The needs-attention queue, newest first: a partial index, holding the flagged orders only.
sa.Index("ix_orders_attention_created_at_id", orders.c.created_at, orders.c.id,
         sqlite_where=orders.c.needs_attention.isnot(None),
         postgresql_where=orders.c.needs_attention.isnot(None))

order_lines = sa.Table(
    "order_lines", metadata,
    sa.Column("order_id", sa.String, sa.ForeignKey("orders.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("sku", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("unit_price_minor", sa.BigInteger, nullable=False),
)

history = sa.Table(
    "history", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("verdict", sa.String, nullable=False),
    sa.Column("from_status", sa.String, nullable=False),
    sa.Column("to_status", sa.String, nullable=False),
    sa.Column("detail", json_doc(), nullable=False),
    sa.Column("trace_id", sa.String(32)),
    sa.Index(None, "order_id", "at", "id"),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("key", sa.String, nullable=False, unique=True),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("order_id", sa.String, nullable=False),
    sa.Column("payload", json_doc(), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime),
    sa.Column("lease_owner", sa.String),
    sa.Column("lease_until", UtcDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", UtcDateTime),
    sa.Column("trace_id", sa.String(32)),
    # The worker's candidate query: status = 'pending' AND next_attempt_at <= now.
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "order_id", "created_at"),
    # Newest-first keyset listing for operators, of every status and of one.
    sa.Index(None, "created_at", "id"),
    sa.Index(None, "status", "created_at", "id"),
)

provider_operations = sa.Table(
    "provider_operations", metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("order_id", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("lease_until", UtcDateTime),
    sa.Column("result", json_doc()),
    sa.Column("error", json_doc()),
    sa.Column("trace_id", sa.String(32)),
    sa.Index(None, "order_id"),
)

refunds = sa.Table(
    "refunds", metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("order_id", sa.String, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("operation_key", sa.String, nullable=False),
    sa.Column("provider_refund_id", sa.String),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index(None, "order_id", "created_at"),
    # Not unique: a DynamoDB index cannot promise it either, and PayPal's ids are unique anyway.
    sa.Index(None, "provider_refund_id"),
    # Reconciliation's pending refunds, last updated before a cut-off.
    sa.Index(None, "status", "updated_at"),
)

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("scope", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("request_hash", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("locked_until", UtcDateTime),
    sa.Column("resource_id", sa.String),
    sa.Column("response_status", sa.Integer),
    sa.Column("response_body", json_doc()),
    # For a sweeper deleting expired keys.
    sa.Index(None, "expires_at"),
)

# The webhook inbox: one row per provider event, put-if-absent on the primary key. `body` holds
# the bytes exactly as received (bytea / BLOB), since signatures are checked over them.
inbox_events = sa.Table(
    "inbox_events", metadata,
    sa.Column("provider", sa.String, primary_key=True),
    sa.Column("event_id", sa.String, primary_key=True),
    sa.Column("event_type", sa.String, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("transmission_id", sa.String),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("order_id", sa.String),
    sa.Column("note", sa.Text),
    sa.Index(None, "received_at"),
    # An order's events (the dashboard's timeline).
    sa.Index(None, "order_id", "received_at"),
    # Finds the body a genuine signature was first seen with (CRC-32 forgeries, see ingest).
    sa.Index(None, "provider", "transmission_id"),
)

# Deliveries refused for good, once per transmission id, trimmed to the newest N rows.
webhook_rejections = sa.Table(
    "webhook_rejections", metadata,
    sa.Column("provider", sa.String, primary_key=True),
    sa.Column("transmission_id", sa.String, primary_key=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("check", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("likely_cause", sa.Text),
    sa.Column("event_id", sa.String),
    sa.Column("event_type", sa.String),
    sa.Column("cert_url", sa.Text),
    sa.Column("body_sha256", sa.String(64)),
    # Newest-first keyset listing and the trim of the oldest rows.
    sa.Index(None, "received_at", "transmission_id"),
)

# The truth-fetch queue: one row per provider resource (the id names it), claimed with a lease.
truth_tasks = sa.Table(
    "truth_tasks", metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("provider", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("resource_id", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("order_id", sa.String),
    sa.Column("lease_owner", sa.String),
    sa.Column("lease_until", UtcDateTime),
    sa.Column("last_error", sa.Text),
    # The claim's candidate query: status = 'pending' AND next_attempt_at <= now.
    sa.Index(None, "status", "next_attempt_at"),
    # The listing of every status by due time.
    sa.Index(None, "next_attempt_at", "id"),
)

# Where each order's reconciliation checks stand (their backoff); absent = never checked.
reconcile_states = sa.Table(
    "reconcile_states", metadata,
    sa.Column("order_id", sa.String, primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_check_at", UtcDateTime, nullable=False),
    sa.Column("first_checked_at", UtcDateTime, nullable=False),
    sa.Column("last_checked_at", UtcDateTime, nullable=False),
    sa.Index(None, "next_check_at"),
)

# What operators did (the dashboard's actions, sign-ins), appended only.
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("order_id", sa.String),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("detail", json_doc(), nullable=False),
    sa.Column("trace_id", sa.String(32)),
    sa.Index(None, "at", "id"),
    sa.Index(None, "order_id", "at"),
)

# Each attempt to hand an outbox message to the shop, with its answer.
delivery_attempts = sa.Table(
    "delivery_attempts", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String, nullable=False),
    sa.Column("order_id", sa.String, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("message_type", sa.String),
    sa.Column("trace_id", sa.String(32)),
    sa.Index(None, "order_id", "at", "id"),
)

# Every table the store writes, children before parents (for TRUNCATE / cleanup in tests).
ALL_TABLES = (order_lines, orders, history, outbox, provider_operations, refunds,
              idempotency_keys, inbox_events, webhook_rejections, truth_tasks, reconcile_states,
              audit_log, delivery_attempts)
