"""The nodes of an app's tree and the deep-link targets an app may ask for. Pure.

A node id is a menu's name, or ``<menu>.<digit>`` for an option of that menu that leads out
of the IVR (``<menu>.0`` is the menu's dial-0 queue). Only nodes of the tree under the app's
own access point exist for that app: a menu of another app or of the global tree is refused
like a name that does not exist (the answer does not tell them apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ivr.destinations import Destination
from ..ivr.tree import IvrTree


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


def deep_link(tree: IvrTree, decision: Any, intent: Any) -> Target | None:
    """The node an app call starts at: its intent's ``target`` when the call was matched to
    the app (VoIP, or a fallback token); TargetError when the node is no longer in the app's
    tree (a reload removed it: the shell starts the call at the top and logs why)."""
    target = getattr(intent, "target", None) if intent is not None else None
    if not target or decision.entry is None or decision.via != "app":
        return None
    return resolve_target(tree, decision.entry.menu, target)
