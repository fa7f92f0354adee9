"""Alembic's entry point for ivr-engine's migrations (configured in code by
``ivr_engine.store.db.alembic_config``; ``ivr-engine db upgrade`` is the way to run them).

``db.Database.upgrade`` hands its own connection, already in a transaction, through
``config.attributes["connection"]`` (the async engine runs this synchronously inside
``run_sync``). Run by the ``alembic`` command instead, ``sqlalchemy.url`` (or the
``IVR_DATABASE_URL`` environment variable) names the database and an async engine is made.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ivr_engine.store.db import async_url
from ivr_engine.store.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("IVR_DATABASE_URL")
    if not url:
        raise SystemExit("set sqlalchemy.url or IVR_DATABASE_URL (or use `ivr-engine db upgrade`)")
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `ivr-engine db upgrade`")
run_migrations_online()
