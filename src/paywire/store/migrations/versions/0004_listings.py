"""Listings that stay fast as the tables grow: the outbox by status newest first, and the
truth queue by due time across statuses.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04

`paywire outbox list --status dead` read every message of that status through the
(status, next_attempt_at) index and sorted them all to show the newest 50 (on PostgreSQL, with
a cursor, it walked the whole (created_at, id) index instead); the admin API's truth-task
listing without a status read the whole table and sorted it. bench/growth.py shows both plans
before and after. Written out in full rather than built from `sql.tables`, as 0001-0003 are.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the two listing indexes."""
    op.create_index("ix_outbox_status_created_at_id", "outbox", ["status", "created_at", "id"])
    op.create_index("ix_truth_tasks_next_attempt_at_id", "truth_tasks",
                    ["next_attempt_at", "id"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_truth_tasks_next_attempt_at_id", table_name="truth_tasks")
    op.drop_index("ix_outbox_status_created_at_id", table_name="outbox")
