"""Operations: outbox delivery bookkeeping (last error, delivery time), per-order reconciliation
state, and the indexes reconciliation and operator listings read.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03

Written out in full rather than built from `sql.tables`, as 0001 and 0002 are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from paywire.store.sql.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the outbox columns, the reconcile_states table and the new indexes."""
    op.add_column("outbox", sa.Column("last_error", sa.Text))
    op.add_column("outbox", sa.Column("delivered_at", UtcDateTime))
    op.create_index("ix_outbox_created_at_id", "outbox", ["created_at", "id"])
    op.create_index("ix_orders_status_updated_at", "orders", ["status", "updated_at"])
    op.create_index("ix_refunds_status_updated_at", "refunds", ["status", "updated_at"])

    op.create_table(
        "reconcile_states",
        sa.Column("order_id", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_check_at", UtcDateTime, nullable=False),
        sa.Column("first_checked_at", UtcDateTime, nullable=False),
        sa.Column("last_checked_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_reconcile_states"),
    )
    op.create_index("ix_reconcile_states_next_check_at", "reconcile_states", ["next_check_at"])


def downgrade() -> None:
    """Drop the reconcile_states table, the new indexes and the outbox columns."""
    op.drop_table("reconcile_states")
    op.drop_index("ix_refunds_status_updated_at", table_name="refunds")
    op.drop_index("ix_orders_status_updated_at", table_name="orders")
    op.drop_index("ix_outbox_created_at_id", table_name="outbox")
    # SQLite drops columns by rebuilding the table; batch mode does that (and is a plain ALTER
    # on PostgreSQL).
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("delivered_at")
        batch.drop_column("last_error")
