"""app log uploads stored in chunks

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

An app log upload (up to ``lifecycle.logs.max_bytes``, 100 MiB at most) was one blob column
written and read whole: the engine held the whole file in memory, twice. It is now kept as
1 MiB chunks in ``app_log_chunks`` (both backends), written one short transaction at a time
and streamed back; ``app_log_requests.blob`` names the chunks of the request's upload. The
uploads already stored are moved into chunks, one row at a time.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CHUNK = 1024 * 1024


def upgrade() -> None:
    op.create_table(
        "app_log_chunks",
        sa.Column("blob", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("blob", "seq"),
    )
    with op.batch_alter_table("app_log_requests") as batch:
        batch.add_column(sa.Column("blob", sa.String(32), nullable=True))
    conn = op.get_bind()
    requests = sa.table("app_log_requests", sa.column("id", sa.String),
                        sa.column("uploaded_at", sa.DateTime(timezone=True)),
                        sa.column("data", sa.LargeBinary), sa.column("blob", sa.String))
    chunks = sa.table("app_log_chunks", sa.column("blob", sa.String),
                      sa.column("seq", sa.Integer), sa.column("data", sa.LargeBinary),
                      sa.column("created_at", sa.DateTime(timezone=True)))
    ids = [r.id for r in conn.execute(sa.select(requests.c.id)
                                      .where(requests.c.data.is_not(None)))]
    for rid in ids:  # one upload in memory at a time
        row = conn.execute(sa.select(requests.c.data, requests.c.uploaded_at)
                           .where(requests.c.id == rid)).one()
        blob, data = secrets.token_hex(16), bytes(row.data)
        for seq, start in enumerate(range(0, len(data), CHUNK)):
            conn.execute(chunks.insert().values(blob=blob, seq=seq,
                                                data=data[start:start + CHUNK],
                                                created_at=row.uploaded_at))
        conn.execute(requests.update().where(requests.c.id == rid).values(blob=blob))
    with op.batch_alter_table("app_log_requests") as batch:
        batch.drop_column("data")


def downgrade() -> None:
    with op.batch_alter_table("app_log_requests") as batch:
        batch.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    requests = sa.table("app_log_requests", sa.column("id", sa.String),
                        sa.column("data", sa.LargeBinary), sa.column("blob", sa.String))
    chunks = sa.table("app_log_chunks", sa.column("blob", sa.String),
                      sa.column("seq", sa.Integer), sa.column("data", sa.LargeBinary))
    for rid, blob in conn.execute(sa.select(requests.c.id, requests.c.blob)
                                  .where(requests.c.blob.is_not(None))).all():
        data = b"".join(bytes(r.data) for r in conn.execute(
            sa.select(chunks.c.data).where(chunks.c.blob == blob).order_by(chunks.c.seq)))
        conn.execute(requests.update().where(requests.c.id == rid).values(data=data))
    with op.batch_alter_table("app_log_requests") as batch:
        batch.drop_column("blob")
    op.drop_table("app_log_chunks")
