"""The database: URL handling, the async engine and its sessions, and where the schema stands
against the Alembic revisions shipped in ``migrations/`` (state, upgrade).

Two backends: SQLite (aiosqlite) and PostgreSQL (asyncpg). ``database_url`` is written as
``sqlite:///path.db`` or ``postgresql://user:password@host/db`` (the async driver is added
here); ``?host=/run/postgresql`` reaches PostgreSQL over a unix socket.

The engine never changes the schema: ``ivr-engine db upgrade`` does. A database made by an
engine from before migrations (the three tables of revision 0001 created at start-up, no
``alembic_version``) is recognised as revision 0001: ``upgrade`` stamps it, then upgrades.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

# alembic is imported only to upgrade (or to explain an unknown revision): the engine's start-up
# check reads alembic_version itself. It announces each of its plugins at INFO as it is
# imported: not news for an operator.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
INITIAL_REVISION = "0001"
HEAD_REVISION = "0014"  # the newest revision in migrations/versions (a test checks)
# the tables ``create_all`` made before there were migrations: revision 0001 exactly
LEGACY_TABLES = frozenset({"callback_requests", "call_intents", "devices"})
UPGRADE_COMMAND = "ivr-engine db upgrade"

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "sqlite+aiosqlite": "sqlite+aiosqlite",
            "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
            "postgresql+asyncpg": "postgresql+asyncpg"}


class DatabaseUrlError(ValueError):
    pass


class SchemaError(RuntimeError):
    """The database's schema is not one this engine can use (or upgrade) as it is."""


class SchemaNotReady(RuntimeError):
    """The database is behind (or empty, or ahead): the message names the command to run."""

    def __init__(self, message: str, state: "SchemaState"):
        super().__init__(message)
        self.state = state


def async_url(url: str) -> str:
    """``sqlite:///x.db`` → ``sqlite+aiosqlite:///x.db``; ``postgresql://`` → asyncpg."""
    scheme, sep, rest = url.partition("://")
    driver = _DRIVERS.get(scheme.lower()) if sep else None
    if driver is None:
        raise DatabaseUrlError(f"database_url {redact(url)!r}: expected sqlite:///<file> or "
                               "postgresql://<user>[:<password>]@<host>/<database>")
    return f"{driver}://{rest}"


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: show its scheme only
        return url.partition("://")[0] + "://…"


def alembic_config() -> AlembicConfig:
    """The Alembic configuration, built in code: the migrations ship inside the package, so
    they work from an installed engine as well as from the repository (no alembic.ini)."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return cfg


@functools.cache
def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The head as alembic reads it from migrations/versions (HEAD_REVISION must equal it)."""
    heads = script_directory().get_heads()
    assert len(heads) == 1, f"the migrations have several heads: {heads}"
    return heads[0]


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands: its revision(s) in ``alembic_version`` and its
    tables, against the newest revision this engine ships (``head``)."""

    current: tuple[str, ...]
    head: str
    tables: frozenset[str]

    @property
    def legacy(self) -> bool:
        """Created by ``create_all`` before migrations existed: taken as revision 0001."""
        return not self.current and LEGACY_TABLES <= self.tables

    @property
    def revision(self) -> str | None:
        """The revision the database is at (a legacy one counts as 0001); None when empty."""
        if self.legacy:
            return INITIAL_REVISION
        return self.current[0] if len(self.current) == 1 else None

    @property
    def ready(self) -> bool:
        return self.current == (self.head,)

    @property
    def known(self) -> bool:
        """Every revision in ``alembic_version`` is one this engine ships."""
        if self.current == (self.head,):
            return True
        try:
            return all(script_directory().get_revision(rev) is not None
                       for rev in self.current)
        except Exception:  # noqa: BLE001 - alembic raises several kinds for unknown ids
            return False

    def describe(self) -> str:
        """``0002 (head)``, ``empty``, ``0001 (made before migrations)``, ``0001``…"""
        if self.ready:
            return f"{self.head} (head)"
        if self.legacy:
            return f"{INITIAL_REVISION} (made before migrations: no alembic_version yet)"
        if not self.current:
            return "empty" if not self.tables & LEGACY_TABLES else \
                "unknown (some of revision 0001's tables, no alembic_version)"
        return ", ".join(self.current) + ("" if self.known else " (unknown to this engine)")

    def problem(self, url: str) -> str | None:
        """Why an engine must not start on this database, naming the command to run; None
        when the schema is at the head revision."""
        if self.ready:
            return None
        where = f"database {redact(url)}"
        if self.current and not self.known:
            return (f"{where} is at revision {', '.join(self.current)}, which this engine "
                    "does not know (upgraded by a newer engine?): run an engine that ships it")
        if not self.current and not self.legacy and self.tables & LEGACY_TABLES:
            return (f"{where} has some of revision {INITIAL_REVISION}'s tables but not all, "
                    "and no alembic_version: it is not a schema this engine made")
        if self.legacy:
            now = f"was made before migrations (revision {INITIAL_REVISION})"
        elif not self.current:
            now = "is empty"
        else:
            now = f"is at revision {', '.join(self.current)}"
        return (f"{where} {now}; this engine needs revision {self.head}: "
                f"run `{UPGRADE_COMMAND}` (with the same config) first")


def _state(conn: Connection) -> SchemaState:
    tables = frozenset(inspect(conn).get_table_names())
    current: tuple[str, ...] = ()
    if "alembic_version" in tables:  # read directly: the engine's check logs nothing
        current = tuple(sorted(conn.execute(
            text("SELECT version_num FROM alembic_version")).scalars()))
    return SchemaState(current, HEAD_REVISION, tables)


def _upgrade(conn: Connection, target: str) -> None:
    state = _state(conn)
    if not state.current and state.tables & LEGACY_TABLES and not state.legacy:
        raise SchemaError(f"the database has {sorted(state.tables & LEGACY_TABLES)} but not "
                          f"all of {sorted(LEGACY_TABLES)}, and no alembic_version: it is not "
                          "a schema this engine made; repair it by hand")
    if state.current and not state.known:
        raise SchemaError(f"the database is at revision {', '.join(state.current)}, which "
                          "this engine does not know (upgraded by a newer engine?)")
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn  # env.py runs on this connection (and transaction)
    if state.legacy:
        command.stamp(cfg, INITIAL_REVISION)
    command.upgrade(cfg, target)


def _sqlite_pragmas(busy_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        cur = dbapi_connection.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")  # a writer waits, then fails
            cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        finally:
            cur.close()
    return on_connect


def timeout_options(url: str, statement_timeout: float, busy_timeout: float) -> dict[str, Any]:
    """The driver's own limits (``engine.database``): PostgreSQL — asyncpg's
    ``command_timeout`` on every statement (a server that stopped answering costs a query
    this long, then it fails); SQLite — the lock wait (``timeout``)."""
    if async_url(url).startswith("sqlite"):
        return {"connect_args": {"timeout": busy_timeout}}
    return {"connect_args": {"command_timeout": statement_timeout}}


class Database:
    """One async engine and its session factory.

    Every connection has a deadline of its own (see :func:`timeout_options`). PostgreSQL ones
    are pinged as they leave the pool (one round trip): a connection the server closed — a
    restart, a failover — is replaced there, not found out by the first query after. SQLite
    ones are put in WAL journal mode with a busy timeout, so a caller's read never waits for
    a writer and a writer waits ``busy_timeout`` for another one (another process's too)
    instead of failing at once with "database is locked"."""

    def __init__(self, url: str, *, statement_timeout: float = 30.0, busy_timeout: float = 5.0,
                 **engine_options: Any):
        self.url = url
        options = timeout_options(url, statement_timeout, busy_timeout)
        if not async_url(url).startswith("sqlite"):
            # a pooled connection the server closed (a restart, a failover, a terminated
            # backend) is found out when it is checked out and replaced, instead of failing
            # the first query after — a caller's token, sent to the fallback
            options["pool_pre_ping"] = True
        options["connect_args"].update(engine_options.pop("connect_args", {}))
        self.engine: AsyncEngine = create_async_engine(async_url(url), **options,
                                                       **engine_options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect",
                         _sqlite_pragmas(int(busy_timeout * 1000)))
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, url: str, settings: Any, **engine_options: Any) -> "Database":
        """With the limits of ``engine.database`` (config.model.DatabaseSettings)."""
        return cls(url, statement_timeout=settings.statement_timeout_seconds,
                   busy_timeout=settings.busy_timeout_seconds, **engine_options)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name  # sqlite | postgresql

    async def state(self) -> SchemaState:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_state)

    async def upgrade(self, target: str = "head") -> tuple[SchemaState, SchemaState]:
        """Bring the schema to ``target`` (stamping a database made before migrations as
        revision 0001 first); the states before and after. Raises SchemaError."""
        before = await self.state()
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, target)
        return before, await self.state()

    async def ping(self) -> None:
        """Raises when the database cannot be reached (readiness checks)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
