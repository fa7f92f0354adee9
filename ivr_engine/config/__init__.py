"""YAML → validated, immutable configuration.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError` carrying every
problem found, each printable as ``file:line: key.path: message``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from pydantic import ValidationError

from ..callbacks.policy import QueuePolicy
from ..ivr.tree import IvrTree
from ..routing.entry import RoutingTable
from ..wakeup.plan import UserSpec
from .callbacks import compile_callbacks
from .model import ConfigModel
from .validate import _schedule, check, compile_tree, unlisted_user, user_references
from . import yamlsrc
from .yamlsrc import Issue, Source, decode, load_source

__all__ = ["Config", "ConfigError", "Issue", "load_config", "parse_config"]


class ConfigError(Exception):
    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass(frozen=True)
class Config:
    """One immutable snapshot of the configuration; reload builds a new one."""

    path: str
    model: ConfigModel
    tree: IvrTree
    routing: RoutingTable
    users: Mapping[str, UserSpec] = field(default_factory=dict)  # user: destinations
    callbacks: Mapping[str, QueuePolicy] = field(default_factory=dict)  # queues placed
    warnings: tuple[Issue, ...] = field(default=())
    # the line of each user under users:, and the user: destinations naming a user that is
    # not there (a database user, or a mistake), by name: what `ivr-engine check` looks up
    # in the database (users/audit.py)
    user_lines: Mapping[str, int] = field(default_factory=dict)
    user_refs: Mapping[str, tuple[Issue, ...]] = field(default_factory=dict)

    @property
    def engine(self):  # noqa: ANN201 - shorthand
        return self.model.engine


_UNION_TAGS = {"phone-number", "user-segment", "mobile-app"}
_PATTERN_HINTS = {
    "numbers": "expected a phone number of digits, optionally starting with +",
    "callers": "expected a caller number or prefix pattern like +1555* (digits, optional "
               "leading +, optional trailing *)",
    "number": "expected an E.164 number with its country code, like +17144505656",
}


def _clean_loc(loc: tuple) -> tuple:
    """Drop what pydantic adds to an error location that is not a YAML key."""
    out: list = []
    for p in loc:
        if isinstance(p, str) and ("[" in p or p in ("str", "date")):
            continue  # validator names (function-after[...]) and union branches
        if isinstance(p, str) and p in _UNION_TAGS and out and isinstance(out[-1], int):
            continue  # the tag of a discriminated union (access point types)
        out.append(p)
    return tuple(out)


def _pydantic_issues(exc: ValidationError, src: Source) -> list[Issue]:
    out = []
    for e in exc.errors(include_url=False):
        path = _clean_loc(tuple(e["loc"]))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `ivr-engine schema` lists every key)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "string_pattern_mismatch":
            field = next((p for p in reversed(path) if isinstance(p, str)), "")
            hint = _PATTERN_HINTS.get(field)
            if hint:
                msg = f"{e['input']!r}: {hint}"
            else:
                msg = f"{e['input']!r} is not a valid name (letters, digits and . _ + -, " \
                      "starting with a letter or digit)" if "A-Za-z0-9][A-Za-z0-9_.+-]" in \
                      str(e.get("ctx", {}).get("pattern", "")) else msg
        out.append(src.issue(path, msg))
    # one problem may surface once per union branch; keep the first
    seen, unique = set(), []
    for i in out:
        if (i.line, i.path, i.message) not in seen:
            seen.add((i.line, i.path, i.message))
            unique.append(i)
    return unique


def parse_config(text: str, file: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    src = load_source(text, file, env)
    issues = list(src.issues)
    if src.data is None:
        raise ConfigError(issues)
    if not isinstance(src.data, dict):
        raise ConfigError(issues + [Issue(file, 1, "", "the file must be a mapping of keys")])
    try:
        model = ConfigModel.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(issues + _pydantic_issues(exc, src)) from None
    issues += check(model, src)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise ConfigError(sorted(issues, key=lambda i: (i.line, i.path)))
    tree, routing, users = compile_tree(model)
    callbacks = compile_callbacks(
        model, lambda name, tz: _schedule(name, model.schedules[name], tz))
    warnings = tuple(sorted((i for i in issues if i.severity != "error"), key=lambda i: i.line))
    refs = {name: tuple(src.issue(path, unlisted_user(name), "warning") for path in paths)
            for name, paths in user_references(model).items() if name not in model.users}
    return Config(file, model, tree, routing, users, callbacks, warnings,
                  user_lines={name: src.line_of(("users", name)) for name in model.users},
                  user_refs=refs)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file. Every problem, an unreadable, oversized or non-UTF-8
    file included, is a ConfigError; reading stops one byte past the size limit, so a huge file
    (or a device) costs no more than a file at the limit."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(yamlsrc.MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([Issue(str(p), 0, "", f"cannot read: {exc.strerror}")]) from None
    text, issues = decode(data, str(p))
    if text is None:
        raise ConfigError(issues)
    return parse_config(text, str(p), env)
