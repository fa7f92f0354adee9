"""sms: the spool, the do-not-contact list, the dialers' run state

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_spool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lane", sa.String(128), nullable=False),
        sa.Column("campaign", sa.String(128), nullable=True),
        sa.Column("destination", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(8), nullable=False),
        sa.Column("idem_key", sa.String(40), nullable=False),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("provider", sa.String(128), nullable=True),
        sa.Column("channel", sa.Integer(), nullable=True),
        sa.Column("provider_message_id", sa.String(128), nullable=True),
        sa.Column("provider_answer", sa.Text(), nullable=True),
        sa.Column("delivery_status", sa.String(64), nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sms_spool_lane", "sms_spool",
                    ["state", "lane", "priority", "position", "id"])
    op.create_index("ix_sms_spool_campaign", "sms_spool", ["campaign", "state"])
    op.create_index("ix_sms_spool_message_id", "sms_spool", ["provider_message_id"])
    op.create_index("ix_sms_spool_idem_key", "sms_spool", ["idem_key"], unique=True)
    op.create_table(
        "sms_dnc",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("campaign", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number", "campaign", name="uq_sms_dnc"),
    )
    op.create_table(
        "sms_dialers",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("running", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("sms_dialers")
    op.drop_table("sms_dnc")
    for name in ("ix_sms_spool_idem_key", "ix_sms_spool_message_id", "ix_sms_spool_campaign",
                 "ix_sms_spool_lane"):
        op.drop_index(name, table_name="sms_spool")
    op.drop_table("sms_spool")
