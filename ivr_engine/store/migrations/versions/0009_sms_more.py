"""sms: indexes for the sent-message search

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-03

``GET /v1/sms/messages`` (and its CSV, and ``ivr-engine sms messages``) reads the spool by
creation time and by number: ``ix_sms_spool_created`` (created_at, id) serves the date
range, ``ix_sms_spool_destination`` (destination, created_at) a number's messages.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sms_spool_created", "sms_spool", ["created_at", "id"])
    op.create_index("ix_sms_spool_destination", "sms_spool", ["destination", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_sms_spool_destination", table_name="sms_spool")
    op.drop_index("ix_sms_spool_created", table_name="sms_spool")
