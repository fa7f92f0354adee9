"""Engine options that leave PostgreSQL's planner only nested loops: with them, a subquery
that is joined to its statement is rerun once per outer row. A claim of the form
``id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`` then takes every candidate row (each rerun
skips the rows the statement already locked); PostgreSQL may pick that plan by itself on a
table whose statistics make it look cheap. A claim through a MATERIALIZED CTE runs it once."""

from __future__ import annotations

from typing import Any

_OFF = ("enable_hashagg", "enable_hashjoin", "enable_mergejoin", "enable_material",
        "enable_sort")


def nested_loops(db_url: str) -> dict[str, Any]:
    """``Store.open(url, **nested_loops(url))``: nothing on SQLite (no planner to corner)."""
    if not db_url.startswith("postgresql"):
        return {}
    return {"connect_args": {"server_settings": {name: "off" for name in _OFF}}}
