"""What the features' ``ivr-engine`` commands share: exit codes, the default config, a
feature's subcommands declared with ``-c/--config``, a file read off the loop, and how an
all-or-nothing CSV import reports a refusal (``FILE:LINE: reason``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, AsyncIterator, Callable, Iterable

EXIT_OK, EXIT_FAIL, EXIT_INPUT = 0, 1, 2
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
