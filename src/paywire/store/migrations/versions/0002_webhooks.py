"""Webhook ingest: the inbox, the rejection log and the truth-fetch queue; indexes to find an
order by its capture or authorization id and a refund by the provider's refund id.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

Written out in full rather than built from `sql.tables`, as 0001 is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from paywire.store.sql.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three webhook tables and the new lookup indexes."""
    op.create_index("ix_orders_provider_capture_id", "orders", ["provider", "capture_id"])
    op.create_index("ix_orders_provider_authorization_id", "orders",
                    ["provider", "authorization_id"])
    op.create_index("ix_refunds_provider_refund_id", "refunds", ["provider_refund_id"])

    op.create_table(
        "inbox_events",
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("event_id", sa.String, nullable=False),
        sa.Column("event_type", sa.String, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("transmission_id", sa.String),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("order_id", sa.String),
        sa.Column("note", sa.Text),
        sa.PrimaryKeyConstraint("provider", "event_id", name="pk_inbox_events"),
    )
    op.create_index("ix_inbox_events_received_at", "inbox_events", ["received_at"])
    op.create_index("ix_inbox_events_provider_transmission_id", "inbox_events",
                    ["provider", "transmission_id"])

    op.create_table(
        "webhook_rejections",
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("transmission_id", sa.String, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("check", sa.String, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("likely_cause", sa.Text),
        sa.Column("event_id", sa.String),
        sa.Column("event_type", sa.String),
        sa.Column("cert_url", sa.Text),
        sa.Column("body_sha256", sa.String(64)),
        sa.PrimaryKeyConstraint("provider", "transmission_id", name="pk_webhook_rejections"),
    )
    op.create_index("ix_webhook_rejections_received_at_transmission_id", "webhook_rejections",
                    ["received_at", "transmission_id"])

    op.create_table(
        "truth_tasks",
        sa.Column("id", sa.String, nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_truth_tasks"),
    )
    op.create_index("ix_truth_tasks_status_next_attempt_at", "truth_tasks",
                    ["status", "next_attempt_at"])


def downgrade() -> None:
    """Drop the webhook tables and the lookup indexes."""
    for table in ("truth_tasks", "webhook_rejections", "inbox_events"):
        op.drop_table(table)
    op.drop_index("ix_refunds_provider_refund_id", table_name="refunds")
    op.drop_index("ix_orders_provider_authorization_id", table_name="orders")
    op.drop_index("ix_orders_provider_capture_id", table_name="orders")
