"""lifecycle: release reminders, logs the user sends unasked

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

- ``app_releases.remind_after_seconds`` / ``remind_max``: a release's own reminder policy
  (NULL: ``lifecycle.reminders`` decides).
- ``release_notices.reminders`` / ``reminded_at`` / ``reminder_result`` / ``reminder_stop``:
  the reminders a device was sent for the release, when the last one went, how it was
  answered, and why no more will go (``updated``: the device reported a version at or above).
- ``app_log_requests.origin`` (``admin``: asked by an admin; ``user``: sent by the app
  unasked), ``session_id`` (the session that sent it); ``device_id`` may be NULL (a user's
  upload from a device with no ``devices`` row); an index for the per-user upload budget.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("app_releases") as batch:
        batch.add_column(sa.Column("remind_after_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("remind_max", sa.Integer(), nullable=True))
    with op.batch_alter_table("release_notices") as batch:
        batch.add_column(sa.Column("reminders", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reminder_result", sa.String(16), nullable=True))
        batch.add_column(sa.Column("reminder_stop", sa.String(16), nullable=True))
    with op.batch_alter_table("app_log_requests") as batch:
        batch.add_column(sa.Column("origin", sa.String(8), nullable=False,
                                   server_default="admin"))
        batch.add_column(sa.Column("session_id", sa.Integer(), nullable=True))
        batch.alter_column("device_id", existing_type=sa.Integer(), nullable=True)
    op.create_index("ix_app_log_requests_user", "app_log_requests",
                    ["app", "user", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_app_log_requests_user", table_name="app_log_requests")
    op.execute("DELETE FROM app_log_chunks WHERE blob IN (SELECT blob FROM app_log_requests "
               "WHERE device_id IS NULL AND blob IS NOT NULL)")
    op.execute("DELETE FROM app_log_requests WHERE device_id IS NULL")
    with op.batch_alter_table("app_log_requests") as batch:
        batch.alter_column("device_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("session_id")
        batch.drop_column("origin")
    with op.batch_alter_table("release_notices") as batch:
        batch.drop_column("reminder_stop")
        batch.drop_column("reminder_result")
        batch.drop_column("reminded_at")
        batch.drop_column("reminders")
    with op.batch_alter_table("app_releases") as batch:
        batch.drop_column("remind_max")
        batch.drop_column("remind_after_seconds")
