"""Another process holding the database's write lock, for the bulkhead tests.

    python -m tests.support.dblock sqlite:///path.db [TABLE]

SQLite: ``BEGIN EXCLUSIVE`` (in WAL mode readers go on, every writer waits); PostgreSQL:
``LOCK TABLE <TABLE> IN EXCLUSIVE MODE`` (the same for that table). It prints ``locked`` once
it holds the lock and keeps it until its standard input closes. :func:`write_lock` runs it
(a process of its own: a lock taken on the tests' event loop would stall the loop too).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from contextlib import asynccontextmanager
from typing import AsyncIterator

from sqlalchemy.engine import make_url


@asynccontextmanager
async def write_lock(db_url: str, table: str = "sms_spool",
                     timeout: float = 30.0) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.dblock", db_url, table,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        assert line.strip() == b"locked", line
        yield proc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _hold_pg(url: str, table: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.execute(f"BEGIN; LOCK TABLE {table} IN EXCLUSIVE MODE")
    print("locked", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await conn.execute("ROLLBACK")
    await conn.close()


def main(argv: list[str]) -> int:
    url = make_url(argv[0])
    table = argv[1] if len(argv) > 1 else "sms_spool"
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database or "", timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        sys.stdin.read()
        conn.execute("ROLLBACK")
        conn.close()
        return 0
    asyncio.run(_hold_pg(url.set(drivername="postgresql").render_as_string(
        hide_password=False), table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
