"""A throw-away PostgreSQL cluster for the tests: ``initdb`` in a temporary directory, the
server listening on a unix socket in that directory only (no TCP port, so nothing else on the
machine can reach it or collide with it), trust authentication, no fsync.

    python -m tests.support.pgcluster start DIR    # prints its URL
    python -m tests.support.pgcluster stop DIR     # stops it and removes DIR

``scripts/test`` starts one for the whole run and exports its URL as IVR_TEST_POSTGRES_URL;
``tests/conftest.py`` starts its own when that variable is not set. PostgreSQL refuses to run
as root: as root, the cluster belongs to the ``postgres`` system user (the Debian package
creates it). Its binaries are found on PATH or in /usr/lib/postgresql/<version>/bin.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

SERVER_OPTIONS = ("-c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                  "-c full_page_writes=off -c max_connections=200")


class PostgresMissing(RuntimeError):
    pass


def bindir() -> Path:
    """The directory of initdb / pg_ctl (the newest version installed)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not versions:
        raise PostgresMissing("PostgreSQL is not installed (no initdb on PATH nor in "
                              "/usr/lib/postgresql/*/bin): run `scripts/install --test`, or "
                              "set IVR_TEST_POSTGRES_URL to a server where the tests may "
                              "create databases")
    return Path(versions[-1]).parent


def _owner() -> str | None:
    """The user the cluster runs as: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresMissing("running as root and there is no 'postgres' user to run the "
                              "test cluster as (install the postgresql package)") from None
    return "postgres"


def _run(args: list[str], owner: str | None, log: Path | None = None) -> None:
    out = subprocess.run(args, user=owner, group=owner, capture_output=True, text=True,
                         cwd="/", check=False)
    if out.returncode != 0:
        detail = out.stderr.strip() or out.stdout.strip()
        if log is not None and log.exists():
            detail += "\n" + log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(args[:2])} failed ({out.returncode}): {detail}")


def url_for(root: Path, database: str = "postgres") -> str:
    return f"postgresql://postgres@/{database}?host={root / 'sock'}"


def start(root: Path) -> str:
    """Make and start a cluster under ``root`` (created if needed); its URL."""
    bins, owner = bindir(), _owner()
    root.mkdir(parents=True, exist_ok=True)
    (root / "sock").mkdir(exist_ok=True)
    if owner is not None:
        for path in (root, root / "sock"):
            shutil.chown(path, owner, owner)
    data, log = root / "data", root / "server.log"
    _run([str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
          "--no-sync", "-E", "UTF8", "--locale=C"], owner)
    _run([str(bins / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30",
          "-o", f"-k {root / 'sock'} {SERVER_OPTIONS}", "start"], owner, log)
    return url_for(root)


def halt(root: Path) -> None:
    """Stop the server, its clients cut, keeping its data: the database gone from under a
    running engine. :func:`restart` brings it back. Fast mode, not immediate: the cluster
    runs with ``synchronous_commit=off``, so an immediate stop can lose the last commits
    (the schema a test has just made)."""
    _run([str(bindir() / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w",
          "stop"], _owner())


def restart(root: Path) -> None:
    """Start again a cluster stopped by :func:`halt`."""
    log = root / "server.log"
    _run([str(bindir() / "pg_ctl"), "-D", str(root / "data"), "-l", str(log), "-w", "-t", "30",
          "-o", f"-k {root / 'sock'} {SERVER_OPTIONS}", "start"], _owner(), log)


def stop(root: Path) -> None:
    """Stop the cluster under ``root`` (if it runs) and remove ``root``."""
    data = root / "data"
    if (data / "postmaster.pid").exists():
        try:
            _run([str(bindir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                 _owner())
        except (RuntimeError, PostgresMissing) as exc:
            print(f"pgcluster: {exc}", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)


@asynccontextmanager
async def own(prefix: str):
    """A throw-away cluster of the test's own (it may stop it: ``halt``, ``restart``);
    yields ``(root, url)`` and removes it after."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root, await asyncio.to_thread(start, root)
    finally:
        await asyncio.to_thread(stop, root)


@asynccontextmanager
async def upgraded(prefix: str):
    """:func:`own`, its database at the newest revision."""
    from ivr_engine.store import Database

    async with own(prefix) as (root, url):
        db = Database(url)
        try:
            await db.upgrade()
        finally:
            await db.close()
        yield root, url


async def fetch(url: str, sql: str, *args):
    """The rows of one query on a connection of its own (the tests' look into the database
    the engines share)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.support.pgcluster start|stop DIR", file=sys.stderr)
        return 2
    root = Path(argv[1]).resolve()
    if argv[0] == "stop":
        stop(root)
        return 0
    try:
        print(start(root))
    except (RuntimeError, PostgresMissing) as exc:
        print(f"pgcluster: {exc}", file=sys.stderr)
        stop(root)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
