"""The engine's connection pool after the database server dropped its connections (a
PostgreSQL restart, a failover, an administrator's ``pg_terminate_backend``): the first query
after must run on a new connection, not fail on a pooled one the server closed. Found by
tests/integration/test_cluster_restarts.py: after a PostgreSQL restart the first caller
presenting a valid app token at an engine went to the fallback ("connection is closed")."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from ivr_engine.repositories import Store


async def _cut_connections(url: str) -> int:
    """Terminate every other server connection to this database (the pool's); how many."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await conn.close()


async def test_the_first_query_after_the_server_dropped_the_pool_succeeds(db_url):
    store = await Store.open(db_url, pool_size=2, max_overflow=0)
    try:
        # two pooled connections, both idle in the pool
        await store.intents.for_channel("chan-0")
        async with store.db.engine.connect() as one, store.db.engine.connect() as two:
            for conn in (one, two):
                await conn.exec_driver_sql("SELECT 1")
        if store.db.dialect == "postgresql":
            assert await _cut_connections(db_url) >= 1
        # each of the next queries gets a pooled connection the server has closed
        for channel in ("chan-1", "chan-2", "chan-3"):
            assert await store.intents.for_channel(channel) is None
        await store.ping()
    finally:
        await store.close()
