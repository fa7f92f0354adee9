"""``ivr-engine users …``: the database's users, on the config's database (what the users API
does, without a running engine).

    ivr-engine users list [--after NAME] [--limit N]     the database's users (JSON)
    ivr-engine users import FILE                          a users CSV, all or nothing
    ivr-engine users delete NAME                          a database user

and what ``ivr-engine check`` reads of the database (``check_database``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from typing import Any, Awaitable, Callable

from sqlalchemy.engine import make_url

from ..commands import (
    EXIT_FAIL,
    EXIT_INPUT,
    EXIT_OK,
    bad_lines,
    feature_commands,
    file_chunks,
    no_file,
    too_large,
)

CHECK_SECONDS = 10.0  # what `check` waits for the database at most


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _service(cfg: Any, store: Any) -> Any:
    from .service import UsersService

    return UsersService(lambda: cfg, store.users, _now)


def _user(found: Any) -> dict[str, Any]:
    from .http import user_out

    return user_out(found).model_dump(mode="json")


def _run(args: argparse.Namespace, work: Callable[[Any, Any], Awaitable[int]]) -> int:
    return args.with_store("users", args.config, work)


def cmd_list(args: argparse.Namespace) -> int:
    async def work(cfg: Any, store: Any) -> int:
        found, more = await _service(cfg, store).page(args.after, args.limit)
        print(json.dumps({"users": [_user(f) for f in found],
                          "next_after": found[-1].record.name if more and found else None},
                         indent=2))
        return EXIT_OK

    return _run(args, work)


def cmd_import(args: argparse.Namespace) -> int:
    from .service import Conflict, TooLarge

    async def work(cfg: Any, store: Any) -> int:
        try:
            result = await _service(cfg, store).import_csv(file_chunks(args.file))
        except TooLarge as exc:
            return too_large(args.file, exc)
        except Conflict as exc:
            print(f"{args.file}: {exc}", file=sys.stderr)
            return EXIT_FAIL
        if not result.ok:
            return bad_lines(args.file, result.check.errors, result.check.bad_lines)
        print(f"{args.file}: {result.imported} users imported ({result.created} new, "
              f"{result.imported - result.created} replaced)")
        return EXIT_OK

    if no_file(args.file):
        return EXIT_INPUT
    return _run(args, work)


def cmd_delete(args: argparse.Namespace) -> int:
    from .service import Conflict, NotFound

    async def work(cfg: Any, store: Any) -> int:
        try:
            await _service(cfg, store).delete(args.name)
        except NotFound:
            print(f"users delete: no database user named {args.name!r}", file=sys.stderr)
            return EXIT_FAIL
        except Conflict as exc:
            print(f"users delete: {exc}", file=sys.stderr)
            return EXIT_FAIL
        print(f"user {args.name} deleted")
        return EXIT_OK

    return _run(args, work)


def add_commands(sub: Any, with_store: Callable[..., int]) -> None:
    """``ivr-engine users`` and its subcommands; ``with_store``: how a command opens the
    config's Store (commands.with_store)."""
    cmd = feature_commands(sub, "users", "the database's users: list, import a CSV, delete",
                           with_store, "users_command")
    p = cmd("list", cmd_list, "the database's users, by name (JSON)")
    p.add_argument("--after", help="the previous page's next_after")
    p.add_argument("--limit", type=int, default=1000)
    p = cmd("import", cmd_import, "import a users CSV: every user created or replaced, all "
            "or nothing")
    p.add_argument("file")
    p = cmd("delete", cmd_delete, "delete a database user")
    p.add_argument("name")


# --------------------------------------------------------------------- check


async def check_database(cfg: Any) -> tuple[list[Any] | None, str | None]:
    """(the config's warnings with what its database says about users, None) or (None, why
    the database was not read). A SQLite file that does not exist is not created."""
    from ..repositories import Store
    from .audit import audit

    url = cfg.engine.database_url
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - the engine would say it better at start
        return None, "engine.database_url is not a URL"
    if parsed.get_backend_name() == "sqlite" and parsed.database and \
            not os.path.exists(parsed.database):
        return None, f"{parsed.database} does not exist yet"
    db = cfg.engine.database
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            store = await Store.open(url, statement_timeout=db.statement_timeout_seconds,
                                     busy_timeout=db.busy_timeout_seconds)
            try:
                return await audit(cfg, store.users), None
            finally:
                await store.close()
    except TimeoutError:
        return None, f"no answer within {CHECK_SECONDS:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure: said, the check goes on
        return None, " ".join(str(exc).split())[:300] or type(exc).__name__
