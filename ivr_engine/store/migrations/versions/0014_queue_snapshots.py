"""cluster: queue snapshots, so every engine's queue status covers every node

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

``queue_snapshots``: per node and queue, what that node's app_queue said last (counts, and
the wait estimator's inputs as JSON), written by the engine holding the node
(livedata/shared.py); ``updated_at`` is the database's ``now()``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_snapshots",
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("callers", sa.Integer(), nullable=False),
        sa.Column("logged_in", sa.Integer(), nullable=False),
        sa.Column("serving", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("busy", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Integer(), nullable=False),
        sa.Column("longest_wait", sa.Float(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("abandoned", sa.Integer(), nullable=False),
        sa.Column("asterisk_holdtime", sa.Integer(), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("engine", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node", "queue"),
    )


def downgrade() -> None:
    op.drop_table("queue_snapshots")
