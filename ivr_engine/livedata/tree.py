"""The app's tree as the app shows it: a visual IVR, or the in-app menu. Pure.

Only the app's own structure: the tree under the app's mobile-app access point on the asked
surface (``ivr``: the tree its calls enter; ``in-app``: the in-app menu), never a node of
another app or of the global tree. Each node: ``id`` (a deep-link target, see
``targets.py``), ``kind`` (menu / queue / voicemail / callback / message / user / endpoint /
hangup), ``digit`` (the key that reaches it from its parent), ``label`` and ``description``
in the asked language (then its base language, the app's default, the engine's default;
null when the config has none), ``open`` (its menu's schedule and those above it, each in
its own timezone, at ``now``), ``closed_by`` (why not open: ``date``, a closed date of the
highest closed schedule on the way — the app shows its ``closed`` text — or ``hours``, outside
its hours — ``after_hours``) and, for a queue, its name and the live wait (``wait_of``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Mapping

from ..config.model import ConfigModel, MobileAppAccessPoint
from ..ivr.destinations import Destination
from ..ivr.tree import IvrTree
from .targets import leaves

KIND = {"menu": "menu", "queue": "queue", "voicemail": "voicemail", "callback": "callback",
        "message-then-hangup": "message", "user": "user", "endpoint": "endpoint",
        "hangup": "hangup"}


def app_top(model: ConfigModel, app: str, surface: str) -> str | None:
    """The top-level menu of the app's access point on ``surface`` (None: it has none)."""
    for ap in model.access_points:
        if isinstance(ap, MobileAppAccessPoint) and ap.app == app and ap.surface == surface:
            return ap.menu if ap.menu in model.menus else None
    return None


def pick(text: Mapping[str, str], chain: list[str]) -> str | None:
    for lang in chain:
        if lang in text:
            return text[lang]
    return None


def language_chain(lang: str | None, app_languages: list[str], default: str) -> list[str]:
    chain = [lang, lang.split("_")[0]] if lang else []
    chain += app_languages[:1] + [default]
    out: list[str] = []
    for item in chain:
        if item and item not in out:
            out.append(item)
    return out


def export_tree(model: ConfigModel, tree: IvrTree, app: str, top: str, lang: str | None,
                now: dt.datetime, wait_of: Callable[[str], Any] = lambda q: None) -> dict:
    chain = language_chain(lang, list(model.apps[app].languages),
                           model.engine.default_language)

    def menu_node(name: str, digit: str | None, above: str | None) -> dict:
        """``above``: why a menu above is closed (None: every one is open)."""
        spec, node = model.menus[name], tree.menus[name]
        closed_by = above
        if closed_by is None and node.schedule is not None and not node.schedule.is_open(now):
            closed_by = "date" if node.schedule.closed_date(now) else "hours"
        children: list[dict] = []
        for key, dest in sorted(node.options.items()):
            if dest.kind == "menu":
                children.append(menu_node(dest.target, key, closed_by))
        children += [leaf_node(name, key, dest, closed_by) for key, dest in leaves(tree, name)]
        children.sort(key=lambda c: c["digit"] if c["digit"] != "0" else "9z")
        return {"id": name, "kind": "menu", "digit": digit, "label": pick(spec.label, chain),
                "description": pick(spec.description, chain), "open": closed_by is None,
                "closed_by": closed_by, "queue": None, "wait": None, "children": children}

    def leaf_node(menu: str, key: str, dest: Destination, closed_by: str | None) -> dict:
        text = model.menus[menu].option_labels.get(key)
        queue = dest.target if dest.kind in ("queue", "callback") else None
        return {"id": f"{menu}.{key}", "kind": KIND[dest.kind], "digit": key,
                "label": pick(text.label, chain) if text else None,
                "description": pick(text.description, chain) if text else None,
                "open": closed_by is None, "closed_by": closed_by, "queue": queue,
                "wait": wait_of(queue) if dest.kind == "queue" else None, "children": []}

    return {"app": app, "language": chain[0], "root": menu_node(top, None, None)}


def queues_of(tree: IvrTree, top: str | None) -> frozenset[str]:
    """Every queue a caller (or the app) can reach in the tree under ``top``."""
    if top is None:
        return frozenset()
    out = set()
    for name, node in tree.menus.items():
        if node.root != top:
            continue
        dests = list(node.options.values()) + [node.on_invalid, node.on_timeout]
        if node.after_hours_destination is not None:
            dests.append(node.after_hours_destination)
        out.update(d.target for d in dests if d.kind in ("queue", "callback"))
        if node.dial0.policy == "queue":
            out.add(node.dial0.queue)
    return frozenset(out)
