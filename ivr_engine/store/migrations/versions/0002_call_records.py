"""call records

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-01

The context behind GET /v1/calls/<id>, kept after the call and across engine restarts,
deleted after ``engine.call_records.retention_days`` (hence the index on updated_at).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_records",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("channel_name", sa.Text(), nullable=False),
        sa.Column("caller", sa.Text(), nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("via", sa.String(32), nullable=False),
        sa.Column("app", sa.String(128), nullable=True),
        sa.Column("root_menu", sa.Text(), nullable=False),
        sa.Column("language", sa.String(64), nullable=False),
        sa.Column("custom_data", sa.JSON(), nullable=False),
        sa.Column("path", sa.JSON(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("transfers", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_records_updated_at", "call_records", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_call_records_updated_at", table_name="call_records")
    op.drop_table("call_records")
