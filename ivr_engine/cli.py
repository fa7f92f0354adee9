"""The ``ivr-engine`` command."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
from typing import Any, Awaitable, Callable
from zoneinfo import ZoneInfo

from . import logs
from .callbacks.cli import add_commands as callbacks_commands
from .commands import DEFAULT_CONFIG, EXIT_CONFIG, EXIT_FAIL, EXIT_OK, with_store
from .commands import load as _load
from .config import Config
from .console.cli import add_commands as graph_commands
from .config.model_nodes import node_configs
from .lifecycle.cli import add_commands as lifecycle_commands
from .sms.cli import add_commands as sms_commands
from .users.cli import add_commands as users_commands


def cmd_check(args: argparse.Namespace) -> int:
    """The file; then, unless --no-database, what its database says about users (a user in
    both the file and the database, a user: destination in neither). A database that cannot
    be read is said, and the check goes on."""
    from .users.cli import check_database

    cfg = _load(args.config, warn=False)
    if cfg is None:
        return EXIT_CONFIG
    warnings, why = (list(cfg.warnings), "--no-database") if not args.database else \
        asyncio.run(check_database(cfg))
    if warnings is None:
        warnings = list(cfg.warnings)
        print(f"{args.config}: the database was not read ({why}): its users are not "
              "checked", file=sys.stderr)
    for w in warnings:
        print(w, file=sys.stderr)
    t = cfg.tree
    print(f"{args.config}: ok — {len(t.menus)} menus ({len(t.top_level())} top-level), "
          f"{len(cfg.routing.numbers)} numbers, {len(cfg.routing.apps)} apps, "
          f"{len(t.messages.names())} messages, {len(cfg.model.users)} users in the file"
          + (f", {len(warnings)} warnings" if warnings else ""))
    return EXIT_OK


def _parse_at(text: str | None, tz: str) -> dt.datetime:
    if text is None:
        return dt.datetime.now(ZoneInfo(tz))
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at: {text!r} is not an ISO-8601 time like 2026-11-23T10:15") from None
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(tz))


def _print_walk(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=None if as_json == "compact" else 2))
        return
    if "entry" in result:
        print(f"entry:       {result['entry']} ({result['language']})")
    print(f"path:        {' > '.join(result['path']) or '-'}")
    print("prompts:     " + ("\n             ".join(result["prompts"]) or "-"))
    d = result["destination"]
    print(f"destination: {d['type'] + (':' + d['target'] if d and d.get('target') else '') if d else '-'}")


def _load_with_keys(args: argparse.Namespace) -> tuple[Config, list[str]] | None:
    """The config and the --dtmf keys, or None after printing why not."""
    from .ivr.simulate import parse_dtmf

    cfg = _load(args.config)
    if cfg is None:
        return None
    try:
        return cfg, parse_dtmf(args.dtmf)
    except ValueError as exc:
        print(f"--dtmf: {exc}", file=sys.stderr)
        return None


def cmd_simulate(args: argparse.Namespace) -> int:
    from .ivr.simulate import simulate
    from .routing.entry import after_token, route_pstn

    loaded = _load_with_keys(args)
    if loaded is None:
        return EXIT_CONFIG
    cfg, keys = loaded
    try:
        at = _parse_at(args.at, cfg.engine.timezone)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    decision = route_pstn(cfg.routing, args.did, args.caller)
    if decision.via == "app-fallback":
        decision = after_token(cfg.routing, decision, args.from_app, args.language)
    target = None
    if args.target:  # a deep-linked app call (issue 10)
        from .livedata.targets import TargetError, app_target
        try:
            if decision.via != "app" or decision.entry is None:
                raise TargetError("--target needs an app call: the app's fallback number "
                                  "with --from-app")
            target = app_target(cfg.tree, cfg.routing.apps[decision.app], args.target)
        except TargetError as exc:
            print(f"--target: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    result = simulate(cfg.tree, decision, caller=args.caller, keys=keys, at=at, target=target)
    result = {"did": args.did, "caller": args.caller, "at": at.isoformat(), **result}
    _print_walk(result, args.json)
    return EXIT_OK


def cmd_call(args: argparse.Namespace) -> int:
    from .testing.caller import place_call

    loaded = _load_with_keys(args)
    if loaded is None:
        return EXIT_CONFIG
    cfg, keys = loaded
    ari = node_configs(cfg.engine)[0].ari  # the first node (engine.nodes: the first listed)
    try:
        result = asyncio.run(place_call(
            ari.url, ari.username, ari.password.get_secret_value(),
            did=args.did, caller=args.caller, keys=keys, timeout=args.timeout,
            context=args.context))
    except Exception as exc:  # noqa: BLE001 - a CLI reports, it does not trace back
        print(f"call failed: {exc}", file=sys.stderr)
        return EXIT_FAIL
    _print_walk(result, args.json)
    return EXIT_OK if result.get("destination") else EXIT_FAIL


def cmd_run(args: argparse.Namespace) -> int:
    from .main import run

    cfg = _load(args.config)
    if cfg is None:
        return EXIT_CONFIG
    try:
        return run(cfg)
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_push_test(args: argparse.Namespace) -> int:
    """Send a test wake-up push through the app's credentials to the user's devices."""
    cfg = _load(args.config)
    if cfg is None:
        return EXIT_CONFIG
    if args.app not in cfg.model.apps:
        print(f"push test: no app named {args.app!r}", file=sys.stderr)
        return EXIT_CONFIG

    async def work(cfg: Config, store: Any) -> int:
        from .push import PushError, PushService

        out: list[dict] = []
        devices = await store.devices.for_user(args.user, args.app)
        async with PushService(lambda: cfg, store) as push:
            for d in devices:
                try:
                    r = await push.test(args.app, d)
                    out.append({"platform": d.platform, "ok": r.ok, "provider": r.provider,
                                "status": r.status, "reason": r.reason,
                                "token_removed": r.token_invalid,
                                "elapsed_ms": round(r.elapsed_ms, 1)})
                except PushError as exc:
                    out.append({"platform": d.platform, "ok": False, "reason": str(exc)})
        if not out:
            print(f"push test: user {args.user!r} has no device registered for app "
                  f"{args.app!r}", file=sys.stderr)
            return EXIT_FAIL
        print(json.dumps({"app": args.app, "user": args.user, "results": out}, indent=2))
        return EXIT_OK if all(r["ok"] for r in out) else EXIT_FAIL

    return with_store("push test", args.config, work)


def _database_url(args: argparse.Namespace) -> str | None:
    """--url, else the config's engine.database_url (None after printing why not)."""
    if args.url:
        return args.url
    cfg = _load(args.config)
    return cfg.engine.database_url if cfg is not None else None


def _db_command(args: argparse.Namespace, name: str,
                work: Callable[[Any], Awaitable[Any]]) -> tuple[str, Any] | int:
    """Run ``work(Database)`` on the command's database; (url, result) or an exit code."""
    from sqlalchemy.exc import SQLAlchemyError

    from .store import Database, DatabaseUrlError, SchemaError, redact

    url = _database_url(args)
    if url is None:
        return EXIT_CONFIG

    async def run() -> Any:
        db = Database(url)
        try:
            return await work(db)
        finally:
            await db.close()

    try:
        return url, asyncio.run(run())
    except DatabaseUrlError as exc:
        print(f"db {name}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SchemaError as exc:
        print(f"db {name}: {redact(url)}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except (OSError, SQLAlchemyError) as exc:
        print(f"db {name}: cannot use the database {redact(url)}: {exc}", file=sys.stderr)
        return EXIT_FAIL


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Bring the database's schema to the newest revision (a database made before migrations
    is recognised as revision 0001 and stamped first)."""
    from .store import redact

    done = _db_command(args, "upgrade", lambda db: db.upgrade())
    if isinstance(done, int):
        return done
    url, (before, after) = done
    if before.current == after.current:
        print(f"{redact(url)}: already at {after.describe()}")
    else:
        print(f"{redact(url)}: upgraded from {before.describe()} to {after.describe()}")
    return EXIT_OK


def cmd_db_current(args: argparse.Namespace) -> int:
    """Print the database's revision; exit 1 when it needs ``db upgrade``."""
    from .store import redact

    done = _db_command(args, "current", lambda db: db.state())
    if isinstance(done, int):
        return done
    url, state = done
    print(f"{redact(url)}: {state.describe()}")
    problem = state.problem(url)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from .config.model import ConfigModel

    print(json.dumps(ConfigModel.model_json_schema(mode="validation"), indent=2, default=str))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr-engine", description=__doc__)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logs (-vv: debug)")
    p.add_argument("--log-format", choices=logs.FORMATS,
                   default=os.environ.get("IVR_LOG_FORMAT", "text"),
                   help="text, or json (one object per line); default $IVR_LOG_FORMAT or text")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("run", help="run the engine against Asterisk")
    s.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("check", help="validate a config; exit 2 with file:line messages")
    s.add_argument("config")
    s.add_argument("--no-database", dest="database", action="store_false",
                   help="do not read the config's database (its users)")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("simulate", help="walk the tree offline, no Asterisk")
    s.add_argument("config")
    s.add_argument("--did", required=True, help="dialled number")
    s.add_argument("--caller", default="anonymous", help="caller number")
    s.add_argument("--dtmf", default="", help='keys, e.g. "1 2 *"; t = let the menu time out')
    s.add_argument("--at", help="ISO-8601 time for schedules (default: now)")
    s.add_argument("--from-app", action="store_true",
                   help="on an app's fallback number: the call carries a valid app token")
    s.add_argument("--language", help="with --from-app: the language the app asked for")
    s.add_argument("--target", help="with --from-app: start at this node of the app's "
                   "IVR or in-app tree")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("call", help="place a live test call through Asterisk (Local channel)")
    s.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="for the ARI connection")
    s.add_argument("--did", required=True)
    s.add_argument("--caller", default="anonymous")
    s.add_argument("--dtmf", default="")
    s.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    s.add_argument("--context", default="from-pstn", help="dialplan context the call enters")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_call)

    s = sub.add_parser("push", help="push notifications")
    push_sub = s.add_subparsers(dest="push_command", required=True)
    t = push_sub.add_parser("test", help="send a test wake-up push to a user's devices")
    t.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    t.add_argument("--app", required=True)
    t.add_argument("--user", required=True)
    t.set_defaults(func=cmd_push_test)

    s = sub.add_parser("db", help="the database schema (Alembic migrations)")
    db_sub = s.add_subparsers(dest="db_command", required=True)
    for name, func, text in (
            ("upgrade", cmd_db_upgrade, "bring the schema to the newest revision (run it "
             "before starting a new engine version; safe to repeat)"),
            ("current", cmd_db_current, "print the schema's revision; exit 1 when "
             "`db upgrade` is needed")):
        t = db_sub.add_parser(name, help=text)
        t.add_argument("-c", "--config", default=DEFAULT_CONFIG,
                       help="read engine.database_url from this config")
        t.add_argument("--url", help="the database URL instead of the config's "
                       "(sqlite:///file.db, postgresql://user@host/db)")
        t.set_defaults(func=func)

    s = sub.add_parser("schema", help="print the config's JSON Schema")
    s.set_defaults(func=cmd_schema)
    lifecycle_commands(sub, with_store)
    sms_commands(sub, with_store)
    graph_commands(sub, _load)
    users_commands(sub, with_store)
    callbacks_commands(sub, with_store)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.command != "run" else (
        logging.DEBUG if args.verbose > 1 else logging.INFO)
    logs.setup(level, args.log_format)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
