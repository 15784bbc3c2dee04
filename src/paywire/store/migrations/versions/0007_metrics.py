"""The health read model's needs-attention count from an index: a partial index on the orders
flagged (`needs_attention IS NOT NULL`), so counting them reads only those, at any table size.

Revision ID: 0007
Revises: 0006
Create Date: 2025-01-05

The other health readings (the outbox backlog and dead messages, the truth queue, stuck orders,
recent webhooks) already have the indexes they read: (status, next_attempt_at), (status,
updated_at), received_at. Written out in full, as 0004 is. (0006 is the dashboard's; the two
were written side by side and are chained when merged.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FLAGGED = sa.text("needs_attention IS NOT NULL")


def upgrade() -> None:
    """Add the partial index."""
    op.create_index("ix_orders_needs_attention", "orders", ["updated_at"],
                    postgresql_where=FLAGGED, sqlite_where=FLAGGED)


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_orders_needs_attention", table_name="orders")
