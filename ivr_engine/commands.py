"""What the ``ivr-engine`` commands share: exit codes, the default config, loading it
(``load``) and opening its database's Store (``with_store``, handed to the features'
commands), a feature's subcommands declared with ``-c/--config``, a file read off the loop,
and how an all-or-nothing CSV import reports a refusal (``FILE:LINE: reason``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

from .config import Config, ConfigError, load_config

EXIT_OK, EXIT_FAIL, EXIT_INPUT = 0, 1, 2
EXIT_CONFIG = EXIT_INPUT  # a config that does not load, a database not ready
DEFAULT_CONFIG = os.environ.get("IVR_CONFIG", "config/example.yaml")
READ_BYTES = 256 * 1024

Command = Callable[[argparse.Namespace], int]


def feature_commands(sub: Any, name: str, text: str, with_store: Callable[..., int],
                     dest: str) -> Callable[[str, Command, str], argparse.ArgumentParser]:
    """``ivr-engine <name>``: its parser (``with_store`` in its defaults: how a command opens
    the config's Store) and a function that adds one subcommand with ``-c/--config``."""
    s = sub.add_parser(name, help=text)
    s.set_defaults(with_store=with_store)
    commands = s.add_subparsers(dest=dest, required=True)

    def cmd(command: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = commands.add_parser(command, help=help_text)
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG)
        p.set_defaults(func=func)
        return p

    return cmd


async def file_chunks(path: str) -> AsyncIterator[bytes]:
    """A file's bytes, read off the loop."""
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, READ_BYTES):
            yield chunk
    finally:
        f.close()


def no_file(path: str) -> bool:
    """True (said on stderr) when ``path`` is not a file."""
    if os.path.isfile(path):
        return False
    print(f"{path}: no such file", file=sys.stderr)
    return True


def too_large(path: str, exc: Exception) -> int:
    """An import refused whole for its size."""
    print(f"{path}: {exc}; nothing imported", file=sys.stderr)
    return EXIT_INPUT


def bad_lines(path: str, errors: Iterable[Any], count: int) -> int:
    """An import refused for its bad lines: each as ``FILE:LINE: reason``, then how many."""
    for err in errors:
        print(f"{path}:{err.line}: {err.reason}", file=sys.stderr)
    print(f"{path}: {count} bad line(s); nothing imported", file=sys.stderr)
    return EXIT_INPUT


def load(path: str, warn: bool = True) -> Config | None:
    """The config at ``path``, its issues (and with ``warn`` its warnings) on stderr; None
    when it does not load."""
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        n = sum(1 for i in exc.issues if i.severity == "error")
        print(f"{path}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return None
    if warn:
        for w in cfg.warnings:
            print(w, file=sys.stderr)
    return cfg


StoreWork = Callable[[Config, Any], Awaitable[int]]


def with_store(prefix: str, path: str, work: StoreWork) -> int:
    """Load the config at ``path``, open its database's Store, run ``work(cfg, store)``: the
    way every command that needs the database runs (handed to the features' commands, which
    do not assemble the Store themselves). Errors are printed as ``<prefix>: …``."""
    from sqlalchemy.exc import SQLAlchemyError

    from .repositories import Store
    from .store import DatabaseUrlError, SchemaNotReady

    cfg = load(path)
    if cfg is None:
        return EXIT_CONFIG

    async def run() -> int:
        db = cfg.engine.database
        store = await Store.open(cfg.engine.database_url,
                                 statement_timeout=db.statement_timeout_seconds,
                                 busy_timeout=db.busy_timeout_seconds)
        try:
            return await work(cfg, store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (DatabaseUrlError, SchemaNotReady) as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, SQLAlchemyError) as exc:
        print(f"{prefix}: the database: {exc}", file=sys.stderr)
        return EXIT_FAIL
