"""Where the phone apps register: ``engine.registrar``.

``kind: asterisk`` (the default, every config before it): the apps register on the engine's
Asterisk node(s); registrations come from each node's ARI (``wakeup/watcher.py``).
``kind: kamailio``: the apps register at Kamailio's app side, shared by every node
(docs/cluster.md); the engine reads registrations from Kamailio's ``evapi`` (``events``,
``host:port``), asks its JSON-RPC (``rpc``, ``ul.lookup``) whether an app is reachable, and
rings an app as ``dial`` with ``{aor}`` replaced (``wakeup/kamailio.py``). Several engines
share the apps through Kamailio, so they must share a database too: SQLite is refused.
"""

# ruff: noqa: RUF012 - pydantic fields; ruff cannot see that _Model (fields.py) is a BaseModel

from __future__ import annotations

import re
from typing import Any, Callable, Literal

from pydantic import Field, field_validator

from .fields import _Model


class RegistrarSettings(_Model):
    kind: Literal["asterisk", "kamailio"] = "asterisk"
    events: str | None = None  # evapi, host:port (kamailio)
    rpc: str | None = None  # JSON-RPC over HTTP, e.g. http://127.0.0.20:5081/RPC (kamailio)
    dial: str = "PJSIP/{aor}@kamailio"  # how a node rings an app (kamailio)
    reconnect_max_seconds: float = Field(5.0, gt=0, le=600)
    rpc_timeout_seconds: float = Field(2.0, gt=0, le=60)

    @field_validator("events")
    @classmethod
    def _events(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[^\s:/]+:\d{1,5}", v):
            raise ValueError("expected host:port of Kamailio's evapi (e.g. 127.0.0.20:8448)")
        return v

    @field_validator("rpc")
    @classmethod
    def _rpc(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", v):
            raise ValueError("expected the URL of Kamailio's JSON-RPC "
                             "(e.g. http://127.0.0.20:5081/RPC)")
        return v

    @field_validator("dial")
    @classmethod
    def _dial(cls, v: str) -> str:
        if "{aor}" not in v or re.search(r"\{(?!aor\})", v):
            raise ValueError("expected a dial string with {aor} and no other {…}, e.g. "
                             "PJSIP/{aor}@kamailio")
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        assert self.events is not None
        host, _, port = self.events.rpartition(":")
        return host, int(port)


def check_registrar(engine: Any, err: Callable[[tuple, str], None]) -> None:
    """``kind: kamailio`` needs its events and rpc, and a database several engines share."""
    r = engine.registrar
    if r.kind != "kamailio":
        return
    if r.events is None:
        err(("engine", "registrar"), "registrar.kind kamailio needs events: host:port of "
            "Kamailio's evapi (e.g. 127.0.0.20:8448)")
    if r.rpc is None:
        err(("engine", "registrar"), "registrar.kind kamailio needs rpc: the URL of Kamailio's "
            "JSON-RPC (e.g. http://127.0.0.20:5081/RPC)")
    if engine.database_url.strip().lower().startswith("sqlite"):
        err(("engine", "database_url"), "registrar.kind kamailio shares the apps between "
            "engines, so the engines must share one database: use postgresql://…, not "
            "SQLite (one file per engine)")
