"""``ivr-engine graph``: the IVR tree drawn as the console draws it (``dot.py`` +
``graphviz.py``), for docs and code review."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def _graph(load: Callable[[str], Any], args: argparse.Namespace) -> int:
    from .dot import Scope, ScopeError, tree_dot
    from .graphviz import GraphvizError, render_svg

    cfg = load(args.config)
    if cfg is None:
        return EXIT_CONFIG
    scope = (Scope("entry", args.entry) if args.entry else
             Scope("app", args.app) if args.app else Scope())
    tz = ZoneInfo(cfg.engine.timezone)
    try:
        at = dt.datetime.fromisoformat(args.at) if args.at else dt.datetime.now(tz)
    except ValueError:
        print(f"--at: {args.at!r} is not an ISO-8601 time like 2026-11-23T10:15",
              file=sys.stderr)
        return EXIT_CONFIG
    at = at if at.tzinfo else at.replace(tzinfo=tz)
    try:
        text = tree_dot(cfg, scope, at)
    except ScopeError as exc:
        print(f"graph: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    out = Path(args.output)
    fmt = args.format or ("dot" if out.suffix in (".dot", ".gv") else "svg")
    if fmt == "dot":
        data = text.encode()
    else:
        try:
            data = asyncio.run(render_svg(text))
        except (GraphvizError, TimeoutError) as exc:
            print(f"graph: {exc or 'dot took too long'}", file=sys.stderr)
            return EXIT_FAIL
        data = b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + data
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)
        print(f"{args.output}: {scope} ({fmt}, {len(data)} bytes)", file=sys.stderr)
    return EXIT_OK


def add_commands(sub: Any, load: Callable[[str], Any]) -> None:
    s = sub.add_parser("graph", help="draw the IVR tree (SVG through Graphviz, or DOT)")
    s.add_argument("config")
    which = s.add_mutually_exclusive_group()
    which.add_argument("--entry", help="only the tree a dialled number (DID) enters")
    which.add_argument("--app", help="only the trees of this app's access points")
    s.add_argument("-o", "--output", required=True, help="the file (- for stdout)")
    s.add_argument("--format", choices=("svg", "dot"),
                   help="default: dot for a .dot/.gv file, else svg")
    s.add_argument("--at", help="ISO-8601 time for the open-now states (default: now)")
    s.set_defaults(func=lambda args: _graph(load, args))
