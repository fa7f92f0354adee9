"""What ``ivr-engine check`` says about users once it has read the database:

- a user both under ``users:`` and in the database: the database's wins (a warning at the
  config's line);
- a ``user:`` destination naming a user that is neither under ``users:`` nor in the
  database: its callers would go to the dialplan fallback (the warning the file alone gives,
  "it must be a database user", is dropped for the users the database has);
- a database user the config no longer fits (an app or a message it names is gone): calls
  to it go to the dialplan fallback.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..config.yamlsrc import Issue

PAGE = 1000


def _unlisted_refs(cfg: Config) -> set[Issue]:
    return {issue for issues in cfg.user_refs.values() for issue in issues}


async def audit(cfg: Config, repo: Any) -> list[Issue]:
    """The config's warnings, with what the database tells about its users (``repo``: the
    UserRepo)."""
    refs = _unlisted_refs(cfg)
    out = [w for w in cfg.warnings if w not in refs]
    names = list(cfg.model.users) + list(cfg.user_refs)
    in_db = await repo.existing(names)
    for name in cfg.model.users:
        if name in in_db:
            line = cfg.user_lines.get(name, 0)
            out.append(Issue(cfg.path, line, f"users.{name}", f"user {name!r} is also in "
                             "the database, whose user wins: calls ring the database's "
                             "(`ivr-engine users delete` brings this one back)", "warning"))
    for name, issues in cfg.user_refs.items():
        if name not in in_db:
            out.extend(Issue(i.file, i.line, i.path, f"user {name!r} is neither under users: "
                             "nor in the database: its callers would go to the dialplan "
                             "fallback", "warning") for i in issues)
    after = None
    while True:
        page = await repo.page(after, PAGE)
        for rec in page:
            for field, msg in rec.problems(cfg.model):
                path = f"users.{rec.name}" + (f".{field}" if field else "")
                out.append(Issue("database", 0, path, f"{msg}: calls to this database user "
                                 "go to the dialplan fallback", "warning"))
        if len(page) < PAGE:
            break
        after = page[-1].name
    return sorted(out, key=lambda i: (i.file != cfg.path, i.line, i.path))
