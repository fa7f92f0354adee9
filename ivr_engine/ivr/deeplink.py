"""Deep-linked calls (issue 10): a call that starts at a node of its tree instead of at the
top — the caller who picked "billing" in the app does not hear the main menu again. Pure.

A node is a menu (its name) or one option of a menu that leads out of the IVR (queue,
voicemail, callback, message, user, endpoint, hang-up); ``livedata/targets.py`` resolves the
node ids an app may ask for. The call behaves as if the caller had walked there:

- the schedules on the way still apply: if the target menu, or a menu above it, is closed
  now, the caller enters the highest closed one and hears its after-hours message;
- ``IVR_PATH`` shows the jump: its first element is ``@<node id>`` (``@billing``, or
  ``@customer.1`` for an option), then the menus entered after it (``@billing/customer``
  after ``*``).
"""

from __future__ import annotations

import datetime as dt

from .actions import Action
from .destinations import Destination
from .runtime import IvrRuntime
from .tree import IvrTree


def menus_above(tree: IvrTree, menu: str) -> list[str]:
    """``menu`` and its ancestors, from the top-level menu down."""
    chain = [menu]
    while tree.menus[chain[-1]].parent is not None:
        chain.append(tree.menus[chain[-1]].parent)  # type: ignore[arg-type]
    return chain[::-1]


def first_closed(tree: IvrTree, menu: str, now: dt.datetime) -> str | None:
    """The highest menu on the way to ``menu`` (itself included) closed at ``now``."""
    for name in menus_above(tree, menu):
        sched = tree.menus[name].schedule
        if sched is not None and not sched.is_open(now):
            return name
    return None


def start_at_node(rt: IvrRuntime, node_id: str, menu: str, destination: Destination | None,
                  now: dt.datetime) -> list[Action]:
    """Start ``rt`` at menu ``menu`` (``destination`` None) or at its option leading to
    ``destination``; the first actions of the call, like :meth:`IvrRuntime.start`."""
    rt._now = now
    out = rt._start_actions()
    mark = "@" + node_id
    closed = first_closed(rt.tree, menu, now)
    if destination is None and closed in (None, menu):
        rt._enter(menu, now, out, mark=mark)
    elif closed is not None:
        rt.path.append(mark)
        rt._enter(closed, now, out)  # plays its after-hours message
    else:
        rt.path.append(mark)
        rt._menu = rt.tree.menus[menu]
        rt._go(destination, now, out, "deep-link")  # type: ignore[arg-type]
    return out
