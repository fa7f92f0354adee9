"""YAML loading that remembers where every key came from.

PyYAML's safe loader forgets line numbers once it builds Python objects, and silently keeps
the last of two duplicate keys. We walk the composed node tree ourselves so that every value
has a ``key.path`` → line entry, duplicates are reported, and ``${ENV}`` references are
substituted (with ``${ENV:-default}`` for defaults) without ever echoing the secret they hold.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

Path = tuple[str | int, ...]

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


class _Loader(yaml.SafeLoader):
    pass


def load_source(text: str, file: str, env: Mapping[str, str] | None = None) -> Source:
    env = os.environ if env is None else env
    src = Source(file=file, data=None)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        src.issues.append(Issue(file, line, "", f"YAML syntax error: {problem}"))
        return src
    if root is None:
        src.data = {}
        src.lines[()] = 1
        return src
    loader = _Loader("")
    src.lines[()] = root.start_mark.line + 1

    def walk(node: yaml.Node, path: Path) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    src.issues.append(
                        src.issue(path, "YAML merge keys (<<) are not supported; repeat the keys")
                    )
                    continue
                key = loader.construct_object(key_node, deep=True)
                if isinstance(key, datetime.date):
                    key = key.isoformat()
                if not isinstance(key, (str, int)) or isinstance(key, bool):
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
        value = loader.construct_object(node, deep=True)
        if isinstance(value, str) and "${" in value:
            value = _substitute_env(value, env, src, path)
        return value

    src.data = walk(root, ())
    return src
