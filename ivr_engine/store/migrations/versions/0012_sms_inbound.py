"""sms: inbound messages, the parts of long ones, why a number is on the do-not-contact list

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-05

``sms_inbound``: one row per message a provider received for us (unique per provider and
provider message id: a provider's retry is the same row), the send it answers, the opt-out
keyword it carried, its webhook's state. ``sms_inbound_parts``: the parts of a long message
that come one by one (Vonage) until it is whole. ``sms_dnc.reason`` and ``added_at``: an
opt-out by SMS says so (uploaded numbers have neither).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_inbound",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(128), nullable=False),
        sa.Column("provider_message_id", sa.String(128), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reply_to", sa.Integer(), nullable=True),
        sa.Column("campaign", sa.String(128), nullable=True),
        sa.Column("stop_word", sa.String(32), nullable=True),
        sa.Column("stop_language", sa.String(16), nullable=True),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("hook_state", sa.SmallInteger(), nullable=False),
        sa.Column("hook_attempts", sa.Integer(), nullable=False),
        sa.Column("hook_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hook_error", sa.String(200), nullable=True),
        sa.Column("hook_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "provider_message_id", name="uq_sms_inbound_message"),
    )
    op.create_index("ix_sms_inbound_received", "sms_inbound", ["received_at", "id"])
    op.create_index("ix_sms_inbound_sender", "sms_inbound", ["sender", "received_at"])
    op.create_index("ix_sms_inbound_campaign", "sms_inbound", ["campaign", "received_at"])
    op.create_index("ix_sms_inbound_hook", "sms_inbound", ["hook_state", "hook_next_at"])
    op.create_table(
        "sms_inbound_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(128), nullable=False),
        sa.Column("message_id", sa.String(128), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("ref", sa.String(32), nullable=False),
        sa.Column("total", sa.SmallInteger(), nullable=False),
        sa.Column("part", sa.SmallInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "message_id", name="uq_sms_inbound_part"),
    )
    op.create_index("ix_sms_inbound_parts_group", "sms_inbound_parts",
                    ["provider", "sender", "ref", "inbound_id"])
    with op.batch_alter_table("sms_dnc") as batch:
        batch.add_column(sa.Column("reason", sa.String(200), nullable=True))
        batch.add_column(sa.Column("added_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sms_dnc") as batch:
        batch.drop_column("added_at")
        batch.drop_column("reason")
    op.drop_index("ix_sms_inbound_parts_group", table_name="sms_inbound_parts")
    op.drop_table("sms_inbound_parts")
    for name in ("ix_sms_inbound_hook", "ix_sms_inbound_campaign", "ix_sms_inbound_sender",
                 "ix_sms_inbound_received"):
        op.drop_index(name, table_name="sms_inbound")
    op.drop_table("sms_inbound")
