"""The database backends every store, API and app-token test runs on: SQLite and PostgreSQL.

``db_url`` is a database at the newest revision with no rows, once per backend: a copy of a
SQLite file migrated once, or a PostgreSQL database migrated once and emptied before each test
(both migrated by ``ivr_engine.store.db``, i.e. by the migrations themselves). ``empty_db_url``
is a fresh database with no schema, for the migration and ``db`` command tests.

PostgreSQL: the server at IVR_TEST_POSTGRES_URL (``scripts/test`` starts a throw-away cluster
and sets it), else a throw-away cluster this session starts itself (tests/support/
pgcluster.py). A machine without PostgreSQL fails these tests, it does not skip them;
IVR_TEST_BACKENDS=sqlite narrows a local run on purpose (``scripts/test`` sets both).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

BACKENDS = ("sqlite", "postgresql")


def _backends() -> list[str]:
    wanted = [b.strip() for b in os.environ.get("IVR_TEST_BACKENDS", ",".join(BACKENDS))
              .split(",") if b.strip()]
    unknown = sorted(set(wanted) - set(BACKENDS))
    if unknown or not wanted:
        raise pytest.UsageError(f"IVR_TEST_BACKENDS: {unknown or 'empty'}; expected a "
                                f"comma-separated subset of {', '.join(BACKENDS)}")
    return wanted


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        metafunc.parametrize("db_backend", _backends(), scope="session")


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin(server_url: str, *statements: str) -> int:
    """Run ``statements`` on the server's maintenance database; its version number."""
    import asyncpg

    conn = await asyncpg.connect(server_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        for sql in statements:
            await conn.execute(sql)
        return int(await conn.fetchval("SHOW server_version_num"))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_server():
    """The URL of a PostgreSQL server where the tests may create databases."""
    url = os.environ.get("IVR_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    from tests.support import pgcluster

    root = Path(tempfile.mkdtemp(prefix="ivr-pg-"))
    try:
        url = pgcluster.start(root)
    except BaseException:
        pgcluster.stop(root)
        raise
    try:
        yield url
    finally:
        pgcluster.stop(root)


class _SqliteBackend:
    """A fresh file per test: an empty one, or a copy of a file migrated once."""

    def __init__(self, root: Path):
        self.root = root
        self.template: Path | None = None

    async def setup(self) -> None:
        from ivr_engine.store import Database

        url, _ = await self.empty()
        db = Database(url)
        try:
            await db.upgrade()
        finally:
            await db.close()
        self.template = Path(make_url(url).database or "")

    async def empty(self):
        path = self.root / f"{uuid.uuid4().hex[:12]}.db"

        async def drop() -> None:
            path.unlink(missing_ok=True)

        return f"sqlite:///{path}", drop

    async def migrated(self):
        url, drop = await self.empty()
        assert self.template is not None
        shutil.copyfile(self.template, make_url(url).database or "")
        return url, drop

    async def teardown(self) -> None:
        pass


class _PostgresBackend:
    """An empty database: CREATE DATABASE per test. A migrated one: one database migrated
    once, emptied before each test (TRUNCATE … RESTART IDENTITY: as fresh as a new one for
    these tests, and ten times faster to get than a copy)."""

    def __init__(self, server: str):
        self.server = server
        self.work: str | None = None

    async def setup(self) -> None:
        from ivr_engine.store import Database

        self.work, _ = await self.empty()
        db = Database(self.work)
        try:
            await db.upgrade()
        finally:
            await db.close()

    async def empty(self):
        name = f"ivr_test_{uuid.uuid4().hex[:12]}"
        await _admin(self.server, f'CREATE DATABASE "{name}"')

        async def drop() -> None:
            await _admin(self.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return _with_database(self.server, name), drop

    async def migrated(self):
        import ivr_engine.repositories  # noqa: F401 - every feature's tables on Base
        from ivr_engine.store.models import Base

        assert self.work is not None
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        # a test that left a transaction open fails here instead of hanging
        await _admin(self.work, "SET lock_timeout = '5s'",
                     f"TRUNCATE {tables} RESTART IDENTITY")

        async def keep() -> None:
            pass

        return self.work, keep

    async def teardown(self) -> None:
        assert self.work is not None
        name = make_url(self.work).database
        await _admin(self.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def _backend(db_backend, request, tmp_path_factory):
    if db_backend == "sqlite":
        backend: _SqliteBackend | _PostgresBackend = _SqliteBackend(
            tmp_path_factory.mktemp("sqlite"))
    else:
        backend = _PostgresBackend(request.getfixturevalue("postgres_server"))
    await backend.setup()
    yield backend
    await backend.teardown()


@pytest.fixture
async def db_url(_backend):
    """A database at the newest revision with no rows, on each backend."""
    url, drop = await _backend.migrated()
    yield url
    await drop()


@pytest.fixture
async def empty_db_url(_backend):
    """A fresh, empty database (no schema), on each backend."""
    url, drop = await _backend.empty()
    yield url
    await drop()


@pytest.fixture
async def store(db_url):
    """A Store on a fresh migrated database, on each backend."""
    from ivr_engine.repositories import Store

    s = await Store.open(db_url)
    yield s
    await s.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``scripts/test`` splits the run by the ``sandbox`` marker: every end-to-end test must
    carry it, else no run would select it."""
    unmarked = [item.nodeid for item in items
                if "/e2e/" in f"/{item.nodeid}" and item.get_closest_marker("sandbox") is None]
    if unmarked:
        raise pytest.UsageError("end-to-end tests without the sandbox marker: "
                                + ", ".join(unmarked))


@pytest.fixture(scope="module")
async def fcm(tmp_path_factory):
    """A local FCM server (FCM HTTP v1 and its OAuth2 token endpoint, the real wire protocol)
    and a service account file for it: the wake-up, edge and cluster tests' pushes."""
    from tests.support.push_servers import FakeFcm

    server = FakeFcm()
    await server.start()
    server.make_service_account(tmp_path_factory.mktemp("fcm"))
    yield server
    await server.stop()
    assert server.hook_errors == []
