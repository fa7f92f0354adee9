"""Persistence: SQLAlchemy 2 (async) over SQLite or PostgreSQL, schema by Alembic.

    db.py          the engine, sessions, URL handling, migration state and upgrade
    models.py      the ORM models (one per table; the features' own tables are declared in
                   their ``models.py`` on the same Base)
    migrations/    the Alembic revisions

The repositories live with their features (apps/repo.py, wakeup/repo.py, calls/repo.py, ...);
``repositories.Store`` (top floor) assembles them. This package imports no feature.
"""

from __future__ import annotations

from .db import (
    Database,
    DatabaseUrlError,
    SchemaError,
    SchemaNotReady,
    SchemaState,
    async_url,
    redact,
)

__all__ = ["Database", "DatabaseUrlError", "SchemaError", "SchemaNotReady", "SchemaState",
           "async_url", "redact"]
