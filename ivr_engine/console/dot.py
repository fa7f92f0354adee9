"""The IVR tree as a Graphviz DOT description. Pure: a Config and a time in, text out.

One renderer for the console's Trees page and ``ivr-engine graph`` (``graphviz.py`` runs
``dot`` on what this builds). A graph shows one scope — everything, one dialled number
(DID) or one app — as:

- **entries** (a DID, a caller segment, an app's access point) pointing at their menu;
- **menus**: name, prompt, the wait and the counts of invalid keys and silences allowed,
  what ``*``, ``#`` and ``0`` do (the dial-0 policy), and the schedule with its open-now
  state at ``now``;
- **edges**: options by key (solid), ``0`` when it leaves the menu (dashed), the
  destinations after the last invalid key or silence (dotted), after-hours (dashed, orange);
- **destinations**: queues, voicemail boxes, endpoints, users (and where an unanswered user
  goes), callbacks, closing messages, hang-up.

Every node and edge carries an SVG ``id``/``class`` (:func:`menu_id`, :func:`dest_id`;
edges ``from-<id> to-<id>``) so the console highlights the path a simulated caller walks
without drawing again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

from ..config.model import MobileAppAccessPoint, PhoneNumberAccessPoint, UserSegmentAccessPoint
from ..ivr.destinations import Destination
from ..ivr.tree import MenuNode
from ..routing.entry import route_pstn

FONT = "DejaVu Sans"
KIND_STYLE = {  # destination kind: (shape, fill colour, what the node says)
    "queue": ("box3d", "#dbeafe", "queue"),
    "voicemail": ("note", "#fef3c7", "voicemail"),
    "endpoint": ("component", "#e0e7ff", "endpoint"),
    "user": ("octagon", "#fce7f3", "user"),
    "callback": ("cds", "#dcfce7", "callback for"),
    "message-then-hangup": ("larrow", "#f3f4f6", "message then hang-up"),
    "hangup": ("doublecircle", "#f3f4f6", "hang-up"),
}


class ScopeError(ValueError):
    """The scope names no entry of the config."""


@dataclass(frozen=True)
class Scope:
    """What a graph shows: ``all``, ``entry`` (a dialled number) or ``app`` (an app)."""

    kind: str = "all"
    value: str = ""

    def __str__(self) -> str:
        return "all entries" if self.kind == "all" else f"{self.kind} {self.value}"


def menu_id(name: str) -> str:
    return f"m-{name}"


def dest_id(dest: Destination) -> str:
    return f"d-{dest.kind}-{dest.target}" if dest.target else f"d-{dest.kind}"


def _q(text: str) -> str:
    """A DOT double-quoted string (escapes, and no newline but the label's own ``\\n``)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs: Any) -> str:
    return "[" + ", ".join(f"{k}={_q(str(v))}" for k, v in attrs.items() if v is not None) + "]"


@dataclass(frozen=True)
class _Entry:
    id: str
    label: str
    menu: str | None
    dest: Destination | None = None


def scopes(cfg: Any) -> list[Scope]:
    """Every scope the config offers: all, each dialled number, each app with an entry."""
    out = [Scope()]
    for ap in cfg.model.access_points:
        if isinstance(ap, PhoneNumberAccessPoint):
            out += [Scope("entry", n) for n in ap.numbers]
    apps = {ap.app for ap in cfg.model.access_points if isinstance(ap, MobileAppAccessPoint)}
    out += [Scope("app", a) for a in sorted(apps)]
    return out


def _entries(cfg: Any, scope: Scope) -> list[_Entry]:
    model = cfg.model
    if scope.kind == "all":
        out = []
        for i, ap in enumerate(model.access_points):
            if isinstance(ap, PhoneNumberAccessPoint):
                label = f"DID {', '.join(ap.numbers)}" + (f"\n{ap.name}" if ap.name else "")
            elif isinstance(ap, UserSegmentAccessPoint):
                label = f"segment {ap.name or ap.caller_list or ''}".strip()
            else:
                label = f"app {ap.app} ({ap.surface})"
            out.append(_Entry(f"e-{i}", label, ap.menu))
        return out
    if scope.kind == "entry":
        decision = route_pstn(cfg.routing, scope.value)
        if decision.via == "app-fallback":  # the app's fallback number: its access point
            return [_Entry("e-0", f"DID {scope.value}\napp {decision.app} fallback (token)",
                           cfg.routing.apps[decision.app].menu)]
        if decision.entry is None:
            if scope.value not in {s.value for s in scopes(cfg) if s.kind == "entry"}:
                raise ScopeError(f"no access point takes the number {scope.value!r} "
                                 f"(it goes to routing.unknown_number)")
        return [_Entry("e-0", f"DID {scope.value}\n{decision.label} ({decision.language})",
                       decision.entry.menu if decision.entry else None, decision.destination)]
    if scope.kind == "app":
        found = [_Entry(f"e-{i}", f"app {ap.app} ({ap.surface})", ap.menu)
                 for i, ap in enumerate(model.access_points)
                 if isinstance(ap, MobileAppAccessPoint) and ap.app == scope.value]
        if not found:
            raise ScopeError(f"no mobile-app access point for app {scope.value!r}")
        return found
    raise ScopeError(f"unknown scope {scope.kind!r}: all, entry or app")


def _schedule_line(menu: MenuNode, now: dt.datetime) -> str | None:
    if menu.schedule is None:
        return None
    state = "OPEN now" if menu.schedule.is_open(now) else "CLOSED now"
    return f"{menu.schedule.name}: {state}"


def _menu_label(menu: MenuNode, now: dt.datetime) -> str:
    star = f"* back to {menu.parent}" if menu.parent else "* repeats"
    policy = menu.dial0.policy
    zero = {"disabled": "0 invalid", "stay": "0 repeats", "queue": f"0 → queue {menu.dial0.queue}",
            "parent": f"0 → {menu.parent}" if menu.parent else "0 repeats",
            "top": f"0 → {menu.root}" if menu.root != menu.name else "0 repeats"}[policy]
    lines = [menu.name, f"prompt {menu.prompt}",
             f"wait {menu.timeout:g} s · {menu.max_invalid} invalid · {menu.max_timeouts} silences",
             f"{star} · # repeats · {zero}"]
    sched = _schedule_line(menu, now)
    if sched:
        lines.append(sched)
    return "\n".join(lines)


def _dest_label(dest: Destination, users: Any) -> str:
    shape_label = KIND_STYLE.get(dest.kind, ("box", "", dest.kind))[2]
    if dest.kind == "user":
        spec = users.get(dest.target)
        device = getattr(spec, "ringing_device", "") if spec is not None else ""
        return f"user {dest.target}" + (f"\n({device})" if device else "")
    return f"{shape_label}\n{dest.target}" if dest.target else shape_label


class _Graph:
    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.lines: list[str] = []
        self.dests: dict[str, Destination] = {}

    def edge(self, a: str, b: str, **attrs: Any) -> None:
        self.lines.append(f"  {_q(a)} -> {_q(b)} "
                          + _attrs(**{"class": f"from-{a} to-{b}"}, **attrs) + ";")

    def to(self, src: str, dest: Destination, **attrs: Any) -> None:
        """An edge from ``src`` to a destination (a menu's node, or the destination's own)."""
        if dest.kind == "menu":
            self.edge(src, menu_id(dest.target), **attrs)
            return
        node = dest_id(dest)
        self.dests.setdefault(node, dest)
        self.edge(src, node, **attrs)

    def menu(self, menu: MenuNode, now: dt.datetime) -> None:
        mid = menu_id(menu.name)
        closed = menu.schedule is not None and not menu.schedule.is_open(now)
        self.lines.append(f"  {_q(mid)} " + _attrs(
            id=mid, label=_menu_label(menu, now), shape="box", style="rounded,filled",
            fillcolor="#e5e7eb" if closed else "#ffffff",
            color="#b45309" if closed else "#1f2937", **{"class": "menu"}) + ";")
        for key, dest in sorted(menu.options.items()):
            self.to(mid, dest, label=f" {key} ", penwidth="1.4")
        if menu.dial0.policy == "queue":
            self.to(mid, Destination("queue", menu.dial0.queue), label=" 0 ", style="dashed")
        elif menu.dial0.policy == "parent" and menu.parent:
            self.edge(mid, menu_id(menu.parent), label=" 0 ", style="dashed",
                      constraint="false")
        elif menu.dial0.policy == "top" and menu.root != menu.name:
            self.edge(mid, menu_id(menu.root), label=" 0 ", style="dashed", constraint="false")
        if menu.on_invalid == menu.on_timeout:
            self.to(mid, menu.on_invalid, style="dotted",
                    label=f" {menu.max_invalid} invalid /\n{menu.max_timeouts} silences ")
        else:
            self.to(mid, menu.on_invalid, style="dotted", label=f" {menu.max_invalid} invalid ")
            self.to(mid, menu.on_timeout, style="dotted",
                    label=f" {menu.max_timeouts} silences ")
        if menu.schedule is not None and menu.after_hours_destination is not None:
            self.to(mid, menu.after_hours_destination, style="dashed", color="#b45309",
                    fontcolor="#b45309", label=" after hours ")

    def destinations(self) -> None:
        no_answer = self.cfg.tree.no_answer
        done: set[str] = set()
        while len(done) < len(self.dests):  # a user's no-answer may add one
            for node, dest in list(self.dests.items()):
                if node in done:
                    continue
                done.add(node)
                shape, fill, _ = KIND_STYLE.get(dest.kind, ("box", "#ffffff", dest.kind))
                self.lines.append(f"  {_q(node)} " + _attrs(
                    id=node, label=_dest_label(dest, self.cfg.users), shape=shape,
                    style="filled", fillcolor=fill, **{"class": f"dest {dest.kind}"}) + ";")
                if dest.kind == "user" and dest.target in no_answer:
                    self.to(node, no_answer[dest.target], style="dotted", label=" no answer ")


def _menus_under(cfg: Any, roots: Iterable[str]) -> list[MenuNode]:
    wanted = set(roots)
    return [m for m in cfg.tree.menus.values() if m.root in wanted]


def tree_dot(cfg: Any, scope: Scope, now: dt.datetime) -> str:
    """The DOT text of ``scope``'s tree; open-now states at ``now`` (an aware datetime).
    Raises :class:`ScopeError` for a scope the config does not have."""
    entries = _entries(cfg, scope)
    menus = cfg.tree.menus
    roots = ({m.name for m in menus.values() if m.parent is None} if scope.kind == "all"
             else {menus[e.menu].root for e in entries if e.menu in menus})
    g = _Graph(cfg)
    g.lines += ["digraph ivr {", "  rankdir=LR; nodesep=0.25; ranksep=0.55;",
                f"  graph {_attrs(fontname=FONT, fontsize='11', bgcolor='transparent')};",
                f"  node {_attrs(fontname=FONT, fontsize='10', margin='0.12,0.06')};",
                f"  edge {_attrs(fontname=FONT, fontsize='9', arrowsize='0.7')};"]
    for e in entries:
        g.lines.append(f"  {_q(e.id)} " + _attrs(id=e.id, label=e.label, shape="invhouse",
                                                  style="filled", fillcolor="#ede9fe",
                                                  **{"class": "entry"}) + ";")
        if e.menu is not None:
            g.edge(e.id, menu_id(e.menu), penwidth="1.4")
        elif e.dest is not None:
            g.to(e.id, e.dest)
    for menu in sorted(_menus_under(cfg, roots), key=lambda m: (m.root, m.name)):
        g.menu(menu, now)
    g.destinations()
    g.lines.append("}")
    return "\n".join(g.lines) + "\n"


def walk_ids(path: list[str], destination: dict[str, Any] | None) -> list[str]:
    """The SVG ids a simulated walk lights up: its menus, then where it ended."""
    ids = [menu_id(m.lstrip("@")) for m in path]
    if destination and destination.get("type") not in (None, "caller-hangup"):
        ids.append(dest_id(Destination(destination["type"], destination.get("target") or "")))
    return ids
