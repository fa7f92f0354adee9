"""Offline walk of the tree: the runtime driven by a scripted caller. Pure.

Keys are sent only when the menu waits for input (after its prompt has played in full), which
is exactly what the live `ivr-engine call` does, so both report the same prompts and path.
A ``t`` token lets the menu time out. When the keys run out while a menu waits, the caller
hangs up (destination ``caller-hangup``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from ..routing.entry import EntryDecision
from .deeplink import start_at_node
from .actions import Collect, Hangup, HandOff, Play, RecordCallback, RingUser
from .runtime import IvrRuntime
from .tree import IvrTree

VALID_TOKENS = set("0123456789*#") | {"t"}


def parse_dtmf(text: str) -> list[str]:
    """``"1 2 *"`` or ``"12*"`` → ``['1', '2', '*']``; ``t`` is a timeout. ValueError if bad."""
    tokens = [c for c in text if not c.isspace() and c != ","]
    bad = sorted({c for c in tokens if c not in VALID_TOKENS})
    if bad:
        raise ValueError(f"invalid keys {''.join(bad)!r}: use 0-9, *, # and t (timeout)")
    return tokens


def simulate(tree: IvrTree, decision: EntryDecision, *, caller: str, keys: Sequence[str],
             at: dt.datetime, max_steps: int = 1000, target: Any = None) -> dict[str, Any]:
    """``target``: a deep link (``livedata.targets.Target``): start at that node."""
    session = IvrRuntime(tree, decision.entry.menu if decision.entry else "",
                         decision.language, decision.label, caller, decision.app)
    now = at
    pending = list(keys)
    used = 0
    callbacks: list[dict[str, Any]] = []
    if target is not None:
        actions = start_at_node(session, target.node_id, target.menu, target.destination, now)
    elif decision.entry is not None:
        actions = session.start(now)
    else:
        assert decision.destination is not None
        actions = session.start_at(decision.destination, now)
    destination: dict[str, Any] | None = None
    steps = 0
    while actions and steps < max_steps:
        steps += 1
        nxt = []
        for a in actions:
            if isinstance(a, Play):
                nxt.append(("play", a.token))
            elif isinstance(a, Collect):
                nxt.append(("collect", a.token, a.seconds))
            elif isinstance(a, RecordCallback):
                callbacks.append({"queue": a.queue, "caller": a.caller})
            elif isinstance(a, (HandOff, Hangup, RingUser)):
                # offline, a user: destination ends the walk (nobody can answer here)
                destination = session.destination.as_json() if session.destination else None
        actions = []
        for item in nxt:
            if item[0] == "play":
                actions = session.playback_finished(item[1], now)
            else:
                if not pending:
                    destination = {"type": "caller-hangup", "target": None}
                    actions = []
                    break
                key = pending.pop(0)
                used += 1
                if key == "t":
                    now = now + dt.timedelta(seconds=item[2])
                    actions = session.timer_fired(item[1], now)
                else:
                    actions = session.digit(key, now)
    return {
        "entry": decision.label,
        "via": decision.via,
        "app": decision.app,
        "language": decision.language,
        "prompts": list(session.prompts),
        "path": list(session.path),
        "destination": destination,
        "keys_used": used,
        "keys_left": pending,
        "callbacks": callbacks,
    }
