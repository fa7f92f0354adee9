"""YAML loading that remembers where every key came from.

PyYAML's safe loader forgets line numbers once it builds Python objects, and silently keeps
the last of two duplicate keys. We walk the composed node tree ourselves so that every value
has a ``key.path`` → line entry, duplicates are reported, and ``${ENV}`` references are
substituted (with ``${ENV:-default}`` for defaults) without ever echoing the secret they hold.

The file comes from an operator and is re-read on SIGHUP by a running engine, so reading it
must end in a list of issues, never in an exception, and in bounded time and memory:

- ``decode`` refuses files over ``MAX_BYTES`` before parsing them and non-UTF-8 bytes with
  their line and column;
- ``load_source`` counts the parser's events as PyYAML's (recursive) composer consumes them and
  stops it at ``MAX_DEPTH`` levels of nesting, long before Python's recursion limit, and at an
  alias whose expansion brings the document past ``MAX_ALIAS_NODES`` extra nodes (our walk
  copies what an alias points to, so a few hundred bytes of "billion laughs" would otherwise
  build a gigantic tree);
- a value PyYAML cannot construct (an unknown ``!tag``, ``2026-13-01``) is an issue on its line,
  and anything else that still goes wrong while reading becomes a ``file:`` issue.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

Path = tuple[str | int, ...]

MAX_BYTES = 2 * 1024 * 1024  # ~11 500 menus; 2 000 menus take ~0.35 MB
MAX_DEPTH = 64  # the shipped configs nest 6 levels at most
MAX_ALIAS_NODES = 100_000  # nodes that aliases add; a 2 000-menu config has ~36 000 in all

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a config file, printed as ``file:line: key.path: message``."""

    file: str
    line: int
    path: str
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        label = "" if self.severity == "error" else "warning: "
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {label}{self.message}"


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


@dataclass
class Source:
    """Parsed YAML data plus the line of every key path."""

    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def line_of(self, path: Path) -> int:
        """Line of the longest prefix of ``path`` we know (1-based; 0 when unknown)."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 0)

    def issue(self, path: Path, message: str, severity: str = "error") -> Issue:
        return Issue(self.file, self.line_of(path), dotted(path), message, severity)


def _substitute_env(value: str, env: Mapping[str, str], src: Source, path: Path) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        src.issues.append(src.issue(path, f"environment variable {name} is not set"))
        return ""

    return _ENV_REF.sub(repl, value)


def decode(data: bytes, file: str) -> tuple[str | None, list[Issue]]:
    """The text of a config file, or None and why not (too large, not UTF-8)."""
    if len(data) > MAX_BYTES:
        return None, [Issue(file, 0, "", f"file too large: over the "
                                         f"{MAX_BYTES // (1024 * 1024)} MiB limit")]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [Issue(file, line, "", f"not valid UTF-8: byte 0x{data[exc.start]:02x} at "
                                            f"column {column} (save the file as UTF-8)")]


class _Loader(yaml.SafeLoader):
    pass


class _LimitExceeded(Exception):
    def __init__(self, mark: yaml.Mark, message: str):
        super().__init__(message)
        self.line = mark.line + 1


class _BoundedLoader(_Loader):
    """A loader whose composer cannot nest deeper than MAX_DEPTH or expand aliases past
    MAX_ALIAS_NODES: every event goes through ``get_event`` before the composer acts on it.

    It tracks the size (in nodes, aliases expanded) of each anchored node so that an alias is
    refused by what it would expand to, before anything is expanded. An alias to a collection
    that is still open (``&a [*a]``) is refused too: PyYAML composes it into a cyclic node.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._open: list[list] = [[None, 0]]  # [anchor, nodes so far] per open collection
        self._sizes: dict[str, int | None] = {}  # anchor -> expanded size (None: still open)
        self._added = 0  # nodes the aliases add

    def get_event(self) -> yaml.Event:
        event = super().get_event()
        if isinstance(event, yaml.CollectionStartEvent):
            if len(self._open) > MAX_DEPTH:
                raise _LimitExceeded(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
            self._open.append([event.anchor, 1])
            if event.anchor is not None:
                self._sizes[event.anchor] = None
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = self._open.pop()
            self._open[-1][1] += size
            if anchor is not None:
                self._sizes[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            self._open[-1][1] += 1
            if event.anchor is not None:
                self._sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent) and event.anchor in self._sizes:
            size = self._sizes[event.anchor]
            if size is None:
                raise _LimitExceeded(event.start_mark, f"alias *{event.anchor} is inside the "
                                                       "node it refers to (recursive alias)")
            self._added += size
            if self._added > MAX_ALIAS_NODES:
                raise _LimitExceeded(event.start_mark, "document too large after alias "
                                     f"expansion (YAML aliases): more than {MAX_ALIAS_NODES} "
                                     "repeated nodes")
            self._open[-1][1] += size
        return event


def load_source(text: str, file: str, env: Mapping[str, str] | None = None) -> Source:
    env = os.environ if env is None else env
    src = Source(file=file, data=None)
    try:
        _compose_and_walk(text, src, env)
    except Exception as exc:  # noqa: BLE001 - a bad file must be an issue, not a traceback
        src.data = None
        first_line = (str(exc).splitlines() or [""])[0]
        src.issues.append(Issue(file, 0, "", f"cannot read the YAML ({type(exc).__name__}: "
                                             f"{first_line})"))
    return src


def _compose_and_walk(text: str, src: Source, env: Mapping[str, str]) -> None:
    file = src.file
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
    except _LimitExceeded as exc:
        src.issues.append(Issue(file, exc.line, "", str(exc)))
        return
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        src.issues.append(Issue(file, line, "", f"YAML syntax error: {problem}"))
        return
    finally:
        loader.dispose()
    if root is None:
        src.data = {}
        src.lines[()] = 1
        return
    src.lines[()] = root.start_mark.line + 1
    invalid = object()

    def construct(node: yaml.ScalarNode, path: Path) -> Any:
        try:
            return loader.construct_object(node, deep=True)
        except Exception as exc:  # noqa: BLE001 - unknown !tag, 2026-13-01, bad !!binary...
            problem = getattr(exc, "problem", None) or str(exc)
            src.issues.append(Issue(file, node.start_mark.line + 1, dotted(path),
                                    f"cannot read this value: {problem}"))
            return invalid

    def walk(node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    src.issues.append(
                        src.issue(path, "YAML merge keys (<<) are not supported; repeat the keys")
                    )
                    continue
                # a collection as a key is refused unbuilt: building it may raise (unhashable)
                key = construct(key_node, path) if isinstance(key_node, yaml.ScalarNode) else (
                    "{...}" if isinstance(key_node, yaml.MappingNode) else "[...]")
                if key is invalid:
                    continue
                if isinstance(key, datetime.date):
                    key = key.isoformat()
                if not isinstance(key_node, yaml.ScalarNode) or not isinstance(key, (str, int)) \
                        or isinstance(key, bool):
                    src.lines[path + (str(key),)] = key_node.start_mark.line + 1
                    src.issues.append(src.issue(path + (str(key),), "keys must be strings"))
                    continue
                key = str(key)
                kpath = path + (key,)
                line = key_node.start_mark.line + 1
                if key in out:
                    src.issues.append(
                        Issue(file, line, dotted(kpath),
                              f"duplicate key (first at line {src.lines[kpath]})")
                    )
                    continue
                src.lines[kpath] = line
                out[key] = walk(value_node, kpath)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                src.lines[path + (i,)] = item.start_mark.line + 1
                items.append(walk(item, path + (i,)))
            return items
        value = construct(node, path)
        if isinstance(value, str) and "${" in value:
            value = _substitute_env(value, env, src, path)
        return None if value is invalid else value

    src.data = walk(root, ())
    # `walk` refers to itself: left alone, that cycle would keep the loader and, through its
    # cache, the whole node tree alive until a full garbage collection, whose pass over those
    # objects holds the GIL (and the event loop of a reloading engine) for ~100 ms per 2 000
    # menus
    del walk
