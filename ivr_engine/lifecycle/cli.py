"""``ivr-engine lifecycle …``: the app administrators' commands, on the config's database and
push credentials (what the admin API does, without a running engine).

    ivr-engine lifecycle sessions --app APP [--user U]          the open sessions (JSON)
    ivr-engine lifecycle report [--from T] [--to T] [--app A] [--user U] [--csv]
    ivr-engine lifecycle publish --app APP --platform ios --version 2.18.0 \\
        --kind mandatory --store-url https://… [--message en="Please update"] [--grace S] \\
        [--remind-after S --remind-max N]
    ivr-engine lifecycle logs list --app APP [--user U] [--origin admin|user]   (JSON)
    ivr-engine lifecycle logs get ID [-o FILE]          an upload's bytes (stdout or FILE)

A publication from the command line runs its own fan-out: do not publish the same release
from the command line and the admin API at the same moment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any, Awaitable, Callable

from pydantic import ValidationError

from .report import MAX_ROWS, RangeError, iso, time_range, to_csv
from .versions import VersionError

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2
_COLUMNS = ("session_id", "app", "user", "platform", "app_type", "app_version", "device_id",
            "device_model", "os", "os_version", "login_at", "logout_at", "ended")


def _row(s: Any) -> dict[str, Any]:
    values = (s.id, s.app, s.user, s.platform, s.app_type, s.app_version, s.device_id,
              s.device_model, s.os, s.os_version, s.started_at, s.ended_at, s.end_reason)
    return dict(zip(_COLUMNS, values))


def _with_store(args: argparse.Namespace,
                work: Callable[[Any, Any], Awaitable[int]]) -> int:
    """``work(cfg, store)`` through the engine's ``with_store`` (handed to add_commands)."""
    async def checked(cfg: Any, store: Any) -> int:
        if getattr(args, "app", None) and args.app not in cfg.model.apps:
            print(f"lifecycle: no app named {args.app!r}", file=sys.stderr)
            return EXIT_CONFIG
        return await work(cfg, store)

    return args.with_store("lifecycle", args.config, checked)


def cmd_sessions(args: argparse.Namespace) -> int:
    async def work(cfg: Any, store: Any) -> int:
        rows = await store.lifecycle.open_sessions(app=args.app, user=args.user)
        out = [{k: iso(v) if isinstance(v, dt.datetime) else v for k, v in _row(s).items()
                if k not in ("logout_at", "ended")} for s in rows]
        print(json.dumps({"sessions": out}, indent=2))
        return EXIT_OK

    return _with_store(args, work)


def cmd_report(args: argparse.Namespace) -> int:
    try:
        start, end = time_range(args.start, args.end, dt.datetime.now(dt.timezone.utc))
    except RangeError as exc:
        print(f"lifecycle report: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def work(cfg: Any, store: Any) -> int:
        rows = [_row(s) for s in await store.lifecycle.report(
            start=start, end=end, app=args.app, user=args.user, limit=MAX_ROWS)]
        if args.csv:
            sys.stdout.write(to_csv(rows))
        else:
            print(json.dumps({"from": iso(start), "to": iso(end), "rows": [
                {k: iso(v) if isinstance(v, dt.datetime) else v for k, v in r.items()}
                for r in rows]}, indent=2))
        return EXIT_OK

    return _with_store(args, work)


def cmd_publish(args: argparse.Namespace) -> int:
    from .schemas import ReleaseRequest

    messages = dict(m.split("=", 1) for m in args.message if "=" in m)
    if (args.remind_after is None) != (args.remind_max is None):
        print("lifecycle publish: --remind-after and --remind-max go together", file=sys.stderr)
        return EXIT_CONFIG
    reminders = None if args.remind_max is None else {"after_seconds": args.remind_after,
                                                        "max": args.remind_max}
    try:
        req = ReleaseRequest.model_validate({
            "platform": args.platform, "version": args.version, "kind": args.kind,
            "store_url": args.store_url, "messages": messages, "grace_seconds": args.grace,
            "reminders": reminders})
    except (ValidationError, VersionError) as exc:
        print(f"lifecycle publish: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def work(cfg: Any, store: Any) -> int:
        from ..push import PushService
        from .service import Lifecycle

        async with PushService(lambda: cfg, store) as push:
            out = await Lifecycle(lambda: cfg, store, push).releases.publish(args.app, req)
        print(json.dumps(out.model_dump(mode="json"), indent=2))
        return EXIT_OK if not out.notified.provider_error else EXIT_FAIL

    return _with_store(args, work)


def cmd_logs_list(args: argparse.Namespace) -> int:
    from .logs import info

    async def work(cfg: Any, store: Any) -> int:
        now = dt.datetime.now(dt.timezone.utc)
        rows = await store.lifecycle.logs.for_app(args.app, args.user, origin=args.origin)
        print(json.dumps({"requests": [info(r, now).model_dump(mode="json") for r in rows]},
                         indent=2))
        return EXIT_OK

    return _with_store(args, work)


def cmd_logs_get(args: argparse.Namespace) -> int:
    async def work(cfg: Any, store: Any) -> int:
        logs = store.lifecycle.logs
        row = await logs.get(args.id)
        if row is None or row.blob is None:
            print(f"lifecycle logs get: no upload for {args.id[:40]!r}", file=sys.stderr)
            return EXIT_FAIL
        out = open(args.output, "wb") if args.output else sys.stdout.buffer
        try:
            seq = 0
            while (data := await logs.chunk(row.blob, seq)) is not None:
                out.write(data)
                seq += 1
        finally:
            if args.output:
                out.close()
            else:
                out.flush()
        print(f"{row.size} bytes, {row.content_type}, {row.origin} log of {row.user!r} "
              f"({row.app}), uploaded {iso(row.uploaded_at)}", file=sys.stderr)
        return EXIT_OK

    return _with_store(args, work)


def add_commands(sub: Any, with_store: Callable[..., int]) -> None:
    """``ivr-engine lifecycle`` and its subcommands (called by ``cli.build_parser``, which
    hands ``with_store``: how a command opens the config's Store)."""
    config = os.environ.get("IVR_CONFIG", "config/example.yaml")
    s = sub.add_parser("lifecycle", help="app sessions, releases, the login report, app logs")
    s.set_defaults(with_store=with_store)
    life = s.add_subparsers(dest="lifecycle_command", required=True)

    t = life.add_parser("sessions", help="the open sessions of an app's users (JSON)")
    t.add_argument("-c", "--config", default=config)
    t.add_argument("--app", required=True)
    t.add_argument("--user")
    t.set_defaults(func=cmd_sessions)

    t = life.add_parser("report", help="the login/logout report (JSON, or --csv)")
    t.add_argument("-c", "--config", default=config)
    t.add_argument("--from", dest="start", help="ISO 8601 (UTC without an offset); default: "
                   "a day before --to")
    t.add_argument("--to", dest="end", help="ISO 8601; default: now")
    t.add_argument("--app")
    t.add_argument("--user")
    t.add_argument("--csv", action="store_true")
    t.set_defaults(func=cmd_report)

    t = life.add_parser("publish", help="publish a release: notices to the older devices")
    t.add_argument("-c", "--config", default=config)
    t.add_argument("--app", required=True)
    t.add_argument("--platform", required=True)
    t.add_argument("--version", required=True)
    t.add_argument("--kind", required=True, choices=("recommended", "mandatory"))
    t.add_argument("--store-url", required=True)
    t.add_argument("--message", action="append", default=[], metavar="LANG=TEXT")
    t.add_argument("--grace", type=int, default=0, help="mandatory: seconds before open "
                   "sessions below it end")
    t.add_argument("--remind-after", type=int, help="recommended: seconds between "
                   "reminders (with --remind-max; default: lifecycle.reminders)")
    t.add_argument("--remind-max", type=int, help="recommended: at most this many reminders")
    t.set_defaults(func=cmd_publish)

    t = life.add_parser("logs", help="app logs: requested by an admin or sent unasked")
    logs = t.add_subparsers(dest="logs_command", required=True)
    t = logs.add_parser("list", help="an app's log requests and uploads, newest first (JSON)")
    t.add_argument("-c", "--config", default=config)
    t.add_argument("--app", required=True)
    t.add_argument("--user")
    t.add_argument("--origin", choices=("admin", "user"))
    t.set_defaults(func=cmd_logs_list)
    t = logs.add_parser("get", help="write an upload's bytes to stdout or --output")
    t.add_argument("-c", "--config", default=config)
    t.add_argument("id")
    t.add_argument("-o", "--output", help="a file to write (default: stdout)")
    t.set_defaults(func=cmd_logs_get)
