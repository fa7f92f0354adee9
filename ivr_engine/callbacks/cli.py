"""``ivr-engine callbacks …``: the callback requests in the config's database, without a
running engine.

    ivr-engine callbacks list [--state S] [--queue Q] [--limit N] [--json]

A table by default (id, state, queue, number, attempts, last outcome, owner, created), or the
same objects ``GET /v1/callbacks`` answers with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Callable

from .policy import STATES
from .schemas import Callback

EXIT_OK = 0
_COLUMNS = ("id", "state", "queue", "caller", "attempts", "last_outcome", "claimed_by",
            "created_at")


def cmd_list(args: argparse.Namespace) -> int:
    async def work(cfg: Any, store: Any) -> int:
        rows = await store.callbacks.find(args.state, args.queue, limit=args.limit)
        items = [Callback.model_validate(r).model_dump(mode="json") for r in rows]
        if args.json:
            print(json.dumps({"count": len(items), "callbacks": items}, indent=2))
            return EXIT_OK
        table = [_COLUMNS] + [tuple("" if i[c] is None else str(i[c]) for c in _COLUMNS)
                              for i in items]
        widths = [max(len(r[k]) for r in table) for k in range(len(_COLUMNS))]
        for r in table:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        return EXIT_OK

    return args.with_store("callbacks", args.config, work)


def add_commands(sub: Any, with_store: Callable[..., int]) -> None:
    """``ivr-engine callbacks`` (called by ``cli.build_parser``, which hands ``with_store``)."""
    s = sub.add_parser("callbacks", help="callback requests: who asked, where they stand")
    s.set_defaults(with_store=with_store)
    cb = s.add_subparsers(dest="callbacks_command", required=True)
    t = cb.add_parser("list", help="the callback requests, oldest first")
    t.add_argument("-c", "--config", default=os.environ.get("IVR_CONFIG", "config/example.yaml"))
    t.add_argument("--state", choices=STATES)
    t.add_argument("--queue")
    t.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_list)
