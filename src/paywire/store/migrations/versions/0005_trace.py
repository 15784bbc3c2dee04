"""Traces: the W3C trace id (`paywire.domain.trace`) of the work that wrote an order, a history
line, an outbox row or a provider operation, so one id finds an order's whole story.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-04

Nullable columns, no default and no backfill: rows written before have no trace, and work on
such an order starts a trace of its own. Written out in full, as 0003 is. (Written beside
0004, the listing indexes, and put after it.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TRACED = ("orders", "history", "outbox", "provider_operations")


def upgrade() -> None:
    """Add a nullable `trace_id` to each traced table."""
    for table in TRACED:
        op.add_column(table, sa.Column("trace_id", sa.String(32)))


def downgrade() -> None:
    """Drop the `trace_id` columns (SQLite rebuilds each table: batch mode)."""
    for table in reversed(TRACED):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("trace_id")
