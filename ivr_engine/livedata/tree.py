"""The app's tree as the app shows it: a visual IVR, or the in-app menu. Pure.

Only the app's own structure: the tree under the app's mobile-app access point on the asked
surface (``ivr``: the tree its calls enter; ``in-app``: the in-app menu), never a node of
another app or of the global tree. Each node: ``id`` (a deep-link target, see
``targets.py``), ``kind`` (menu / queue / voicemail / callback / message / user / endpoint /
hangup), ``digit`` (the key that reaches it from its parent), ``label`` and ``description``
in the asked language (then its base language, the app's default, the engine's default;
null when the config has none), ``open`` (its menu's schedule and those above it, each in
its own timezone, at ``now``) and, for a queue, its name and the live wait (``wait_of``).
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

    def menu_node(name: str, digit: str | None, parent_open: bool) -> dict:
        spec, node = model.menus[name], tree.menus[name]
        is_open = parent_open and (node.schedule is None or node.schedule.is_open(now))
        children: list[dict] = []
        for key, dest in sorted(node.options.items()):
            if dest.kind == "menu":
                children.append(menu_node(dest.target, key, is_open))
        children += [leaf_node(name, key, dest, is_open) for key, dest in leaves(tree, name)]
        children.sort(key=lambda c: c["digit"] if c["digit"] != "0" else "9z")
        return {"id": name, "kind": "menu", "digit": digit, "label": pick(spec.label, chain),
                "description": pick(spec.description, chain), "open": is_open,
                "queue": None, "wait": None, "children": children}

    def leaf_node(menu: str, key: str, dest: Destination, is_open: bool) -> dict:
        text = model.menus[menu].option_labels.get(key)
        queue = dest.target if dest.kind in ("queue", "callback") else None
        return {"id": f"{menu}.{key}", "kind": KIND[dest.kind], "digit": key,
                "label": pick(text.label, chain) if text else None,
                "description": pick(text.description, chain) if text else None,
                "open": is_open, "queue": queue,
                "wait": wait_of(queue) if dest.kind == "queue" else None, "children": []}

    return {"app": app, "language": chain[0], "root": menu_node(top, None, True)}


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
