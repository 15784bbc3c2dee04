"""The operator's dashboard: its audit log, each delivery attempt to the shop, and the indexes
its searches and timelines read.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Indexes: orders by provider newest first; the needs-attention queue as a partial index (only
flagged orders are in it, so the queue is one short index walk at a million orders); an order's
stored events by order. docs/operating.md shows the query plans (tests/contract/
test_store_operator_contract.py checks them). Column types from `sql.tables`, as 0001 takes them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from paywire.store.sql.tables import BigId, UtcDateTime, json_doc

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the audit log, the delivery attempts and the dashboard's indexes."""
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("order_id", sa.String),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("detail", json_doc(), nullable=False),
        sa.Column("trace_id", sa.String(32)),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at_id", "audit_log", ["at", "id"])
    op.create_index("ix_audit_log_order_id_at", "audit_log", ["order_id", "at"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", BigId, primary_key=True,
                  autoincrement=True),
        sa.Column("message_id", sa.String, nullable=False),
        sa.Column("order_id", sa.String, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("message_type", sa.String),
        sa.Column("trace_id", sa.String(32)),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_attempts"),
    )
    op.create_index("ix_delivery_attempts_order_id_at_id", "delivery_attempts",
                    ["order_id", "at", "id"])
    op.create_index("ix_orders_provider_created_at_id", "orders",
                    ["provider", "created_at", "id"])
    flagged = sa.text("needs_attention IS NOT NULL")
    op.create_index("ix_orders_attention_created_at_id", "orders", ["created_at", "id"],
                    sqlite_where=flagged, postgresql_where=flagged)
    op.create_index("ix_inbox_events_order_id_received_at", "inbox_events",
                    ["order_id", "received_at"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_inbox_events_order_id_received_at", table_name="inbox_events")
    op.drop_index("ix_orders_attention_created_at_id", table_name="orders")
    op.drop_index("ix_orders_provider_created_at_id", table_name="orders")
    op.drop_index("ix_delivery_attempts_order_id_at_id", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index("ix_audit_log_order_id_at", table_name="audit_log")
    op.drop_index("ix_audit_log_at_id", table_name="audit_log")
    op.drop_table("audit_log")
