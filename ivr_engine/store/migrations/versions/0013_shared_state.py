"""cluster: shared guessing counters, the engine of each call, the engines' API addresses

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

``token_failures``: every try of an app token or offline code a fallback caller made, counted
before its lookup and deleted again when it matched (apps/guard_db.py): the exact sliding
windows of the guard, shared by every engine on the database. ``token_hardening``: per app,
until when it is hardened (the row is also what serialises the admission of tries for that
app across engines). ``call_records.node`` / ``engine``: the Asterisk node the call is on and
the engine that drives it. ``engines``: each engine's advertised API URL and when it last
said it was alive (API calls for a call another engine holds are forwarded there).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_token_failures_app", "token_failures", ["app", "at"])
    op.create_index("ix_token_failures_caller", "token_failures", ["app", "caller", "at"])
    op.create_table(
        "token_hardening",
        sa.Column("app", sa.String(128), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("app"),
    )
    op.create_table(
        "engines",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("api_url", sa.String(256), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("node", sa.String(128), nullable=True))
        batch.add_column(sa.Column("engine", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("engine")
        batch.drop_column("node")
    op.drop_table("engines")
    op.drop_table("token_hardening")
    op.drop_index("ix_token_failures_caller", table_name="token_failures")
    op.drop_index("ix_token_failures_app", table_name="token_failures")
    op.drop_table("token_failures")
