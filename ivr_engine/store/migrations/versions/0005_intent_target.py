"""deep-link target of an app call plan

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``call_intents.target``: the node of the app's tree a deep-linked call starts at (issue 10);
null for a call that starts at the top.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_intents") as batch:
        batch.add_column(sa.Column("target", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_intents") as batch:
        batch.drop_column("target")
