"""``ivr-engine sms …``: the dialer process, single sends, uploads, start/stop, delete,
monitor, the sent-message search, the messages received. Exit codes: 0 done, 1 failed (a
send refused, the database unreachable), 2 bad input (config, file, arguments)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any, Awaitable, Callable

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
from ..config import ConfigError, load_config

log = logging.getLogger("ivr_engine.sms")
STOP_GRACE_SECONDS = 15.0


def _config(path: str) -> Any:
    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None


def _with_service(args: argparse.Namespace,
                  work: Callable[[Any, Any], Awaitable[int]]) -> int:
    """Open the config and its Store (the engine's ``with_store``, handed to add_commands)
    and an SmsService on it; run ``work(cfg, service)``."""
    from .dialer import SmsService

    async def serve(cfg: Any, store: Any) -> int:
        async with SmsService(lambda: cfg, store.sms,
                              worker=getattr(args, "worker", None)) as svc:
            return await work(cfg, svc)

    return args.with_store("sms", args.config, serve)


def cmd_dialer(args: argparse.Namespace) -> int:
    """The lanes under the engine's supervisor (``supervisor.py``, ``engine.supervisor``): a
    failing lane is restarted after a backoff, the others go on."""
    from ..supervisor import RestartPolicy

    async def work(cfg: Any, svc: Any) -> int:
        unknown = sorted(set(args.dialer or ()) - set(cfg.model.sms.dialers))
        if unknown:
            print(f"sms dialer: not configured under sms.dialers: {', '.join(unknown)}",
                  file=sys.stderr)
            return EXIT_INPUT
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        log.info("sms dialer %s running: %s", svc.worker,
                 ", ".join(args.dialer or cfg.model.sms.dialers) or "single lane only")
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(svc.run(
                args.dialer or None, RestartPolicy.from_settings(cfg.engine.supervisor)))
            await stop.wait()
            svc.stop()  # the batches in flight are finished and recorded, then it returns
            done, _ = await asyncio.wait([task], timeout=STOP_GRACE_SECONDS)
            if not done:
                task.cancel()  # rows left in flight are resolved at the next start
        return EXIT_OK

    return _with_service(args, work)


def cmd_send(args: argparse.Namespace) -> int:
    from .models import STATE_NAMES, TO_PROCESS
    from .spool import SpoolError

    async def work(cfg: Any, svc: Any) -> int:
        try:
            row = await svc.enqueue_single(args.to, args.text, campaign=args.campaign,
                                           agent=args.agent, provider=args.provider)
        except (SpoolError, LookupError) as exc:
            print(f"sms send: {exc.args[0] if isinstance(exc, LookupError) else exc}",
                  file=sys.stderr)
            return EXIT_INPUT
        if args.now:
            await svc.single_once()
        got = await svc.repo.get(row["id"])
        out = {"id": row["id"], "destination": row["destination"],
               "status": STATE_NAMES[got.state] if got.state != TO_PROCESS else "queued",
               "segments": row["segments"], "encoding": row["encoding"],
               "provider": got.provider, "message_id": got.provider_message_id,
               "answer": got.provider_answer}
        print(json.dumps(out))
        return EXIT_OK if out["status"] in ("queued", "sent") else EXIT_FAIL

    return _with_service(args, work)


def cmd_app_link(args: argparse.Namespace) -> int:
    """An install-the-app / open-the-app SMS: the text is made here, then sent as ``send``."""
    from .applinks import LinkError, choose_app, link_text

    cfg = _config(args.config)
    if cfg is None:
        return EXIT_INPUT
    try:
        app = choose_app(cfg, args.app)
    except LinkError as exc:
        print(f"sms app-link: {exc}", file=sys.stderr)
        return EXIT_INPUT
    args.text, args.agent, args.provider = link_text(cfg, app, args.kind), f"app-link:{app}", None
    return cmd_send(args)


def _upload(args: argparse.Namespace, kind: str) -> int:
    from .uploads import TooLarge, receive

    async def work(cfg: Any, svc: Any) -> int:
        try:
            result = await receive(kind, svc.repo, cfg.model.sms, file_chunks(args.file),
                                   svc.clock())
        except TooLarge as exc:
            return too_large(args.file, exc)
        if not result.ok:
            return bad_lines(args.file, result.errors, result.bad_lines)
        print(f"{args.file}: {result.imported} {'rows' if kind == 'spool' else 'new numbers'} "
              "imported")
        return EXIT_OK

    if no_file(args.file):
        return EXIT_INPUT
    return _with_service(args, work)


def cmd_start_stop(args: argparse.Namespace) -> int:
    async def work(cfg: Any, svc: Any) -> int:
        if args.dialer not in cfg.model.sms.dialers:
            print(f"sms: dialer {args.dialer!r} is not configured", file=sys.stderr)
            return EXIT_INPUT
        if args.sms_command == "start" and not cfg.model.sms.dialers[args.dialer].enabled:
            from .overview import DISABLED

            print(f"sms: {DISABLED.format(name=args.dialer)}", file=sys.stderr)
            return EXIT_INPUT
        await svc.repo.set_dialer(args.dialer, args.sms_command == "start", svc.clock())
        print(f"dialer {args.dialer}: {'started' if args.sms_command == 'start' else 'stopped'}")
        return EXIT_OK

    return _with_service(args, work)


def cmd_delete(args: argparse.Namespace) -> int:
    async def work(cfg: Any, svc: Any) -> int:
        n = await svc.repo.delete_unprocessed(args.campaign)
        print(f"campaign {args.campaign}: {n} unprocessed rows deleted")
        return EXIT_OK

    return _with_service(args, work)


def cmd_monitor(args: argparse.Namespace) -> int:
    async def work(cfg: Any, svc: Any) -> int:
        print(json.dumps(await svc.monitor(), indent=2))
        return EXIT_OK

    return _with_service(args, work)


def _search_csv(args: argparse.Namespace, command: str,
                rows: Callable[[Any, Any, int], Awaitable[list[Any]]],
                chunk: Callable[..., bytes]) -> int:
    """A search as its ``.csv`` route answers it: the CSV on stdout, read and written a page
    at a time (``rows(store, filters, after)``)."""
    import datetime as dt

    from .search import PAGE_ROWS, SearchError, filters

    async def work(cfg: Any, store: Any) -> int:
        try:
            f = filters(start=args.start, end=args.end, campaign=args.campaign,
                        number=args.number, status=getattr(args, "status", None),
                        provider=args.provider, region=cfg.model.sms.default_region,
                        now=dt.datetime.now(dt.timezone.utc))
        except SearchError as exc:
            print(f"sms {command}: {exc}", file=sys.stderr)
            return EXIT_INPUT
        out = sys.stdout.buffer
        page = await rows(store, f, 0)
        out.write(chunk(page, header=True))
        while len(page) == PAGE_ROWS:
            page = await rows(store, f, page[-1].id)
            out.write(chunk(page))
        out.flush()
        return EXIT_OK

    return args.with_store(f"sms {command}", args.config, work)


def cmd_messages(args: argparse.Namespace) -> int:
    """The sent-message search as ``GET /v1/sms/messages.csv``."""
    from .search import PAGE_ROWS, csv_chunk

    return _search_csv(args, "messages", lambda store, f, after: store.sms.search(
        f, after=after, limit=PAGE_ROWS), csv_chunk)


def cmd_inbound(args: argparse.Namespace) -> int:
    """The messages received as ``GET /v1/admin/sms/inbound.csv``."""
    from .inbound_search import inbound_chunk
    from .search import PAGE_ROWS

    return _search_csv(args, "inbound", lambda store, f, after: store.sms_inbound.search(
        f, after=after, limit=PAGE_ROWS), inbound_chunk)


def add_commands(sub: Any, with_store: Callable[..., int]) -> None:
    """``ivr-engine sms`` and its subcommands; ``with_store``: how a command opens the
    config's Store (commands.with_store)."""
    cmd = feature_commands(sub, "sms", "SMS: the dialer, single sends, uploads, monitor",
                           with_store, "sms_command")
    p = cmd("dialer", cmd_dialer, "run the dialers and the single lane until SIGTERM")
    p.add_argument("--dialer", action="append", help="only this dialer (repeatable)")
    p.add_argument("--worker", help="this worker's stable name (default: the host name); "
                   "give each process on one host its own")
    p = cmd("send", cmd_send, "spool one message in the single lane")
    p.add_argument("--to", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--campaign")
    p.add_argument("--agent")
    p.add_argument("--provider", help="a provider's name (default: sms.single_provider)")
    p.add_argument("--now", action="store_true",
                   help="send it from this command instead of leaving it to a dialer")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p = cmd("app-link", cmd_app_link, "send an install-the-app or open-the-app SMS")
    p.add_argument("--to", required=True)
    p.add_argument("--kind", choices=("install", "open"), required=True)
    p.add_argument("--app", help="required when several apps have sms_links on")
    p.add_argument("--campaign")
    p.add_argument("--now", action="store_true", help="send it from this command")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p = cmd("upload", lambda a: _upload(a, "spool"),
            "upload a campaign;destiny;message;priority CSV (all or nothing)")
    p.add_argument("file")
    p = cmd("dnc-upload", lambda a: _upload(a, "dnc"),
            "upload a number;campaign; do-not-contact CSV (all or nothing)")
    p.add_argument("file")
    for name in ("start", "stop"):
        p = cmd(name, cmd_start_stop, f"{name} a dialer on demand")
        p.add_argument("dialer")
    p = cmd("delete", cmd_delete, "delete a campaign's unprocessed rows")
    p.add_argument("campaign")
    cmd("monitor", cmd_monitor, "per campaign counts and rates, per dialer state (JSON)")
    p = cmd("messages", cmd_messages, "search the messages sent and waiting (CSV on stdout)")
    p.add_argument("--from", dest="start", help="ISO 8601 (UTC without an offset); default: "
                   "a day before --to")
    p.add_argument("--to", dest="end", help="ISO 8601; default: now")
    p.add_argument("--campaign", help="one campaign; - for sends without one")
    p.add_argument("--number", help="the destination, any format")
    p.add_argument("--status", help="queued, sending, sent, failed, blocked, other, none "
                   "(comma-separated)")
    p.add_argument("--provider")
    p = cmd("inbound", cmd_inbound, "search the messages received (CSV on stdout)")
    p.add_argument("--from", dest="start", help="ISO 8601 (UTC without an offset); default: "
                   "a day before --to")
    p.add_argument("--to", dest="end", help="ISO 8601; default: now")
    p.add_argument("--campaign", help="the campaign replied to; - for messages linked to none")
    p.add_argument("--number", help="the sender, any format")
    p.add_argument("--provider")
