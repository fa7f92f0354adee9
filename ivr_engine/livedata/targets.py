"""The nodes of an app's trees and the deep-link targets an app may ask for. Pure.

A node id is a menu's name, or ``<menu>.<digit>`` for an option of that menu that leads out
of the IVR (``<menu>.0`` is the menu's dial-0 queue). Only nodes of the trees under the
app's own access points exist for that app — the IVR structure's (where its calls enter) and
the in-app structure's (its SDK's menu): a menu of another app or of the global tree is
refused like a name that does not exist (the answer does not tell them apart). Menu names
are unique, so a node id names one tree; a call deep-linked into the in-app tree stays in
that tree (``*``, dial-0 ``top``, transfers to queues).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ivr.destinations import Destination
from ..ivr.tree import IvrTree
from ..routing.entry import AppEntry


class TargetError(ValueError):
    """Not a node of the app's tree."""


@dataclass(frozen=True, slots=True)
class Target:
    node_id: str
    menu: str  # the menu, or the menu holding the option
    destination: Destination | None  # None: the menu itself


def leaves(tree: IvrTree, menu: str) -> list[tuple[str, Destination]]:
    """``(digit, destination)`` of the menu's options leading out of the IVR, dial-0 queue
    last (as ``0``); sub-menus are nodes of their own."""
    node = tree.menus[menu]
    out = [(k, d) for k, d in sorted(node.options.items()) if d.kind != "menu"]
    if node.dial0.policy == "queue":
        out.append(("0", Destination("queue", node.dial0.queue)))
    return out


def resolve_target(tree: IvrTree, top: str | None, node_id: str) -> Target:
    """The node ``node_id`` of the tree under ``top`` (the app's access-point menu)."""
    if not isinstance(node_id, str) or top is None or top not in tree.menus:
        raise TargetError("the app has no tree to start in")
    menu = tree.menus.get(node_id)
    if menu is not None and menu.root == top:
        return Target(node_id, node_id, None)
    name, _, digit = node_id.rpartition(".")
    menu = tree.menus.get(name)
    if menu is not None and menu.root == top:
        dest = menu.options.get(digit)
        if dest is not None and dest.kind == "menu":
            return Target(dest.target, dest.target, None)
        for key, leaf in leaves(tree, name):
            if key == digit:
                return Target(node_id, name, leaf)
    raise TargetError(f"{node_id[:80]!r} is not a node of this app's tree (see GET "
                      "/v1/apps/{app}/menu)")


def app_target(tree: IvrTree, app: AppEntry, node_id: str) -> Target:
    """The node ``node_id`` of the app's IVR tree or of its in-app tree."""
    for top in (app.menu, app.in_app_menu):
        if top is not None:
            try:
                return resolve_target(tree, top, node_id)
            except TargetError:
                pass
    raise TargetError(f"{str(node_id)[:80]!r} is not a node of this app's trees (see GET "
                      "/v1/apps/{app}/menu?surface=ivr|in-app)")


def deep_link(tree: IvrTree, decision: Any, intent: Any, app: AppEntry | None) -> Target | None:
    """The node an app call starts at: its intent's ``target`` when the call was matched to
    the app (VoIP, or a fallback token), in the app's IVR or in-app tree; TargetError when
    the node is no longer in them (a reload removed it: the shell starts the call at the top
    and logs why)."""
    target = getattr(intent, "target", None) if intent is not None else None
    if not target or decision.entry is None or decision.via != "app":
        return None
    if app is None:
        raise TargetError(f"app {decision.app!r} is no longer configured")
    return app_target(tree, app, target)
