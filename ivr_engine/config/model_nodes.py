"""The Asterisk nodes an engine drives: ``engine.nodes`` (a list: name, ari, ami) or the
one-node shorthand ``engine.ari`` + ``engine.ami`` that every config before it used.

A node's ``name`` is its system name (asterisk.conf ``systemname``): Asterisk makes channel
ids ``<systemname>-<epoch>.<seq>``, so with distinct system names the ids of calls on
different nodes never clash (they are ``call_records``' primary key, shared by the engines
on one PostgreSQL). The engine refuses a listed node whose Asterisk says another name, or
none (``node.py``). The shorthand's node is named ``asterisk`` and not checked.
"""

# ruff: noqa: RUF012 - pydantic fields; ruff cannot see that _Model (fields.py) is a BaseModel

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import Field, SecretStr, field_validator

from .fields import Name, _Model

#: the shorthand's node name (logs, metrics, /readyz)
SHORTHAND_NODE = "asterisk"


class AriSettings(_Model):
    url: str = "http://127.0.0.1:8088"
    username: str = "ivr-engine"
    password: SecretStr
    app: Name = "ivr-engine"
    reconnect_max_seconds: float = Field(30.0, gt=0, le=600)
    # how REST requests travel: over the events websocket when Asterisk has it (22.4+,
    # 21.9+, 20.14+) and HTTP otherwise (auto), or always one of them
    transport: Literal["auto", "http", "websocket"] = "auto"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", v):
            raise ValueError("expected http://host:port (the engine adds /ari)")
        return v.rstrip("/")


class AmiSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(5038, gt=0, lt=65536)
    username: str = "ivr-engine"
    password: SecretStr | None = None


class NodeSettings(_Model):
    """One Asterisk of ``engine.nodes``."""

    name: Name  # its system name (asterisk.conf [options] systemname)
    ari: AriSettings
    ami: AmiSettings = AmiSettings()


@dataclass(frozen=True)
class NodeConfig:
    """A node as the engine builds it, whichever way it was configured."""

    name: str
    ari: AriSettings
    ami: AmiSettings
    system_name: str | None  # what Asterisk must say it is; None: not checked (shorthand)


def node_configs(engine: Any) -> tuple[NodeConfig, ...]:
    """The nodes of a validated ``engine`` section (``check_nodes`` passed)."""
    if engine.nodes:
        return tuple(NodeConfig(n.name, n.ari, n.ami, n.name) for n in engine.nodes)
    return (NodeConfig(SHORTHAND_NODE, engine.ari, engine.ami or AmiSettings(), None),)


def engine_name(engine: Any) -> str:
    """``engine.name``, else its nodes' names joined by ``+`` (``node-a``; ``asterisk`` for
    the shorthand): one engine per node makes it unique on a shared database."""
    return engine.name or "+".join(n.name for n in node_configs(engine))


def check_nodes(engine: Any, err: Callable[[tuple, str], None]) -> None:
    """Exactly one of the two forms; node names, ARI URLs and AMI addresses unique."""
    if engine.nodes and engine.ari is not None:
        err(("engine", "ari"), "engine.ari is the one-node shorthand of engine.nodes: use "
            "one or the other (move it into a node of engine.nodes)")
    if engine.nodes and engine.ami is not None:
        err(("engine", "ami"), "with engine.nodes each node has its own ami: move it into "
            "its node")
    if not engine.nodes and engine.ari is None:
        err(("engine",), "no Asterisk: set engine.ari (one node) or engine.nodes (a list of "
            "{name, ari, ami})")
    names: dict[str, int] = {}
    urls: dict[str, int] = {}
    amis: dict[tuple[str, int], int] = {}
    for i, node in enumerate(engine.nodes):
        if node.name in names:
            err(("engine", "nodes", i, "name"), f"node {node.name!r} is already node "
                f"{names[node.name]}; each node's name is its own system name")
        names.setdefault(node.name, i)
        url = node.ari.url.lower()
        if url in urls:
            err(("engine", "nodes", i, "ari", "url"), f"{node.ari.url} is already the ARI "
                f"of node {urls[url]}; each node is its own Asterisk")
        urls.setdefault(url, i)
        if node.ami.password is not None and node.ami.password.get_secret_value():
            where = (node.ami.host.lower(), node.ami.port)
            if where in amis:
                err(("engine", "nodes", i, "ami"), f"{node.ami.host}:{node.ami.port} is "
                    f"already the AMI of node {amis[where]}")
            amis.setdefault(where, i)
