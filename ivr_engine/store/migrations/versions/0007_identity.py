"""identity: verified users on call plans and calls, single-use assertions, offline codes,
one active token per value

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

- ``call_intents.user`` / ``verified``: the user a session-made plan carries (verified), or
  none (an anonymous plan made with the app's key); ``call_records.user`` / ``verified``.
- ``uq_intent_active_token``: at most one unused intent per app and token value (two
  concurrent plans cannot share a token). Duplicates an older engine may have left are
  retired first (the newest of each kept).
- ``assertion_jtis``: the ``jti`` of every user assertion accepted, until it expires (an
  assertion logs in once).
- ``app_sessions.fallback_secret`` / ``fallback_counter``: the session's HOTP secret for
  offline fallback codes and the counter of the last code accepted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UNUSED = sa.text("used_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("call_intents") as batch:
        batch.add_column(sa.Column("user", sa.String(128), nullable=True))
        batch.add_column(sa.Column("verified", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.execute("UPDATE call_intents SET used_at = expires_at, channel_id = 'retired' "
               "WHERE used_at IS NULL AND id NOT IN (SELECT MAX(id) FROM call_intents "
               "WHERE used_at IS NULL GROUP BY app, token)")
    op.create_index("uq_intent_active_token", "call_intents", ["app", "token"], unique=True,
                    sqlite_where=_UNUSED, postgresql_where=_UNUSED)
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("user", sa.String(128), nullable=True))
        batch.add_column(sa.Column("verified", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("app_sessions") as batch:
        batch.add_column(sa.Column("fallback_secret", sa.String(64), nullable=True))
        batch.add_column(sa.Column("fallback_counter", sa.Integer(), nullable=False,
                                   server_default="0"))
    op.create_table(
        "assertion_jtis",
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("jti", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("app", "jti"),
    )
    op.create_index("ix_assertion_jtis_expires_at", "assertion_jtis", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_assertion_jtis_expires_at", table_name="assertion_jtis")
    op.drop_table("assertion_jtis")
    with op.batch_alter_table("app_sessions") as batch:
        batch.drop_column("fallback_counter")
        batch.drop_column("fallback_secret")
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("verified")
        batch.drop_column("user")
    op.drop_index("uq_intent_active_token", table_name="call_intents")
    with op.batch_alter_table("call_intents") as batch:
        batch.drop_column("verified")
        batch.drop_column("user")
