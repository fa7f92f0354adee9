"""app lifecycle: sessions, releases, release notices, app log requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

One row per login (``active_user`` unique while open: one open session per user and app),
the releases published per app and platform, and each release notice's delivery result.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("active_user", sa.String(260), nullable=True),
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("app_type", sa.String(64), nullable=False),
        sa.Column("app_version", sa.String(64), nullable=False),
        sa.Column("os", sa.String(16), nullable=False),
        sa.Column("os_version", sa.String(64), nullable=False),
        sa.Column("device_model", sa.String(128), nullable=False),
        sa.Column("push_token", sa.String(512), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
        sa.UniqueConstraint("active_user"),
    )
    op.create_index("ix_app_sessions_user", "app_sessions", ["user"])
    op.create_index("ix_app_sessions_started_at", "app_sessions", ["started_at"])
    op.create_table(
        "app_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("store_url", sa.Text(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("grace_seconds", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("republished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("app", "platform", "version", name="uq_app_release"),
    )
    op.create_table(
        "release_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("device_version", sa.String(64), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(128), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("release_id", "device_id", name="uq_release_notice"),
    )
    op.create_index("ix_release_notices_release_id", "release_notices", ["release_id"])
    op.create_table(
        "app_log_requests",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("push_result", sa.String(16), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_type", sa.String(64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_app_log_requests_app", "app_log_requests", ["app"])


def downgrade() -> None:
    op.drop_index("ix_app_log_requests_app", table_name="app_log_requests")
    op.drop_table("app_log_requests")
    op.drop_index("ix_release_notices_release_id", table_name="release_notices")
    op.drop_table("release_notices")
    op.drop_table("app_releases")
    op.drop_index("ix_app_sessions_started_at", table_name="app_sessions")
    op.drop_index("ix_app_sessions_user", table_name="app_sessions")
    op.drop_table("app_sessions")
