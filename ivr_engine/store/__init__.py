"""Persistence: SQLAlchemy 2 (async) over SQLite or PostgreSQL, schema by Alembic.

    db.py          the engine, sessions, URL handling, migration state and upgrade
    models.py      the ORM models (one per table)
    migrations/    the Alembic revisions (0001: the schema before migrations; 0002: call records)
    repos.py       ``Store``: the object the engine passes around as "store" — one database and
                   a repository per feature (the repositories live with their features:
                   apps/repo.py, wakeup/repo.py, calls/repo.py)

``Store`` is imported lazily: the feature repositories import ``store.models``, and this
package must not import them back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .db import Database, DatabaseUrlError, SchemaError, SchemaState, async_url, redact

if TYPE_CHECKING:
    from .repos import SchemaNotReady, Store

__all__ = ["Database", "DatabaseUrlError", "SchemaError", "SchemaNotReady", "SchemaState",
           "Store", "async_url", "redact"]


def __getattr__(name: str) -> Any:
    if name in ("Store", "SchemaNotReady"):
        from . import repos

        return getattr(repos, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
