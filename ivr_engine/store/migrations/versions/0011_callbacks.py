"""callbacks: states, owners and attempts of callback requests

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-10

Callback requests were only ever written (``status`` ``pending``). They now go through
``requested → claimed → dialing → completed | failed | expired`` (``callbacks/policy.py``):

- ``status``: ``pending`` becomes ``requested``;
- ``app``, ``user``, ``verified``: the app and the verified user of the call that asked;
- ``claimed_by`` (``api:<agent>`` or ``engine:<worker>``), ``claim_token`` (what an API
  client completes with), ``claimed_at``;
- ``attempts`` (tries at the customer's phone), ``placements`` (times placed in a queue),
  ``not_before`` (no placement before), ``dial_channel`` (the Local channel of the current
  placement), ``last_outcome``, ``note``, ``updated_at`` (also the engine's lease),
  ``completed_at``;
- ``ix_callback_requests_due`` (status, not_before): what the placer looks for.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callback_requests") as batch:
        batch.add_column(sa.Column("app", sa.String(128), nullable=True))
        batch.add_column(sa.Column("user", sa.String(128), nullable=True))
        batch.add_column(sa.Column("verified", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("claimed_by", sa.String(160), nullable=True))
        batch.add_column(sa.Column("claim_token", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("placements", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("dial_channel", sa.String(128), nullable=True))
        batch.add_column(sa.Column("last_outcome", sa.String(32), nullable=True))
        batch.add_column(sa.Column("note", sa.String(500), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE callback_requests SET status = 'requested' WHERE status = 'pending'")
    op.execute("UPDATE callback_requests SET updated_at = created_at")
    op.create_index("ix_callback_requests_due", "callback_requests", ["status", "not_before"])


def downgrade() -> None:
    op.drop_index("ix_callback_requests_due", table_name="callback_requests")
    op.execute("UPDATE callback_requests SET status = 'pending' WHERE status = 'requested'")
    with op.batch_alter_table("callback_requests") as batch:
        for name in ("completed_at", "updated_at", "note", "last_outcome", "dial_channel",
                     "not_before", "placements", "attempts", "claimed_at", "claim_token",
                     "claimed_by", "verified", "user", "app"):
            batch.drop_column(name)
