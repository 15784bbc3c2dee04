"""The initial schema: orders and their lines, history, outbox, provider operations, refunds and
client idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than built from `sql.tables`, so this revision keeps creating the
same schema when the tables module moves on; only the column types are shared.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from paywire.store.sql.tables import BigId, UtcDateTime, json_doc

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "orders",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("intent", sa.String, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("provider", "provider_order_id",
                            name="uq_orders_provider_provider_order_id"),
    )
    op.create_index("ix_orders_created_at_id", "orders", ["created_at", "id"])
    op.create_index("ix_orders_status_created_at_id", "orders", ["status", "created_at", "id"])

    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("sku", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("unit_price_minor", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("order_id", "position", name="pk_order_lines"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE",
                                name="fk_order_lines_order_id_orders"),
    )

    op.create_table(
        "history",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("order_id", sa.String, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("verdict", sa.String, nullable=False),
        sa.Column("from_status", sa.String, nullable=False),
        sa.Column("to_status", sa.String, nullable=False),
        sa.Column("detail", json_doc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_history"),
    )
    op.create_index("ix_history_order_id_at_id", "history", ["order_id", "at", "id"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("key", sa.String, nullable=False),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("order_id", sa.String, nullable=False),
        sa.Column("payload", json_doc(), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime),
        sa.Column("lease_owner", sa.String),
        sa.Column("lease_until", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
    )
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_order_id_created_at", "outbox", ["order_id", "created_at"])

    op.create_table(
        "provider_operations",
        sa.Column("key", sa.String, nullable=False),
        sa.Column("order_id", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("lease_until", UtcDateTime),
        sa.Column("result", json_doc()),
        sa.Column("error", json_doc()),
        sa.PrimaryKeyConstraint("key", name="pk_provider_operations"),
    )
    op.create_index("ix_provider_operations_order_id", "provider_operations", ["order_id"])

    op.create_table(
        "refunds",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("order_id", sa.String, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("operation_key", sa.String, nullable=False),
        sa.Column("provider_refund_id", sa.String),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refunds"),
    )
    op.create_index("ix_refunds_order_id_created_at", "refunds", ["order_id", "created_at"])

    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String, nullable=False),
        sa.Column("key", sa.String, nullable=False),
        sa.Column("request_hash", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("locked_until", UtcDateTime),
        sa.Column("resource_id", sa.String),
        sa.Column("response_status", sa.Integer),
        sa.Column("response_body", json_doc()),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    """Drop everything (children first)."""
    for table in ("idempotency_keys", "refunds", "provider_operations", "outbox", "history",
                  "order_lines", "orders"):
        op.drop_table(table)
