"""users in the database

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10

- ``users``: the users a call can be sent to with ``user:<name>``, kept by the users API and
  ``ivr-engine users`` beside the config's ``users:`` (on a name in both, the database's
  wins). A mobile endpoint belongs to one user at most.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("ringing_device", sa.String(16), nullable=False),
        sa.Column("mobile_endpoint", sa.String(128), nullable=True),
        sa.Column("uc_endpoint", sa.String(128), nullable=True),
        sa.Column("app", sa.String(128), nullable=True),
        sa.Column("no_answer", sa.String(300), nullable=True),
        sa.Column("wakeup", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("mobile_endpoint", name="uq_users_mobile_endpoint"),
    )


def downgrade() -> None:
    op.drop_table("users")
