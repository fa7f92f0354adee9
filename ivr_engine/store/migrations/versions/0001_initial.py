"""initial schema: callback requests, call intents, devices

Revision ID: 0001
Revises:
Create Date: 2026-05-01

The schema as the engine created it at start-up (``create_all``) before migrations existed:
callback requests, app call intents (one-time tokens) and devices (push tokens). A database
made that way (these three tables, no ``alembic_version``) is this revision exactly:
``ivr-engine db upgrade`` stamps it 0001 and goes on from there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callback_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("entry", sa.String(128), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("channel_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "call_intents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("token", sa.String(16), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("custom_data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channel_id", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_intents_app", "call_intents", ["app"])
    op.create_index("ix_call_intents_token", "call_intents", ["token"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("push_token", sa.String(512), nullable=True),
        sa.Column("voip_token", sa.String(512), nullable=True),
        sa.Column("app_version", sa.String(64), nullable=False),
        sa.Column("os_version", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user", "app", "platform", name="uq_device"),
    )
    op.create_index("ix_devices_user", "devices", ["user"])


def downgrade() -> None:
    op.drop_index("ix_devices_user", table_name="devices")
    op.drop_table("devices")
    op.drop_index("ix_call_intents_token", table_name="call_intents")
    op.drop_index("ix_call_intents_app", table_name="call_intents")
    op.drop_table("call_intents")
    op.drop_table("callback_requests")
