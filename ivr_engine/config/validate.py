"""Whole-document rules and compilation of the validated model into the runtime tree."""

from __future__ import annotations

from typing import Callable, Iterator
from zoneinfo import ZoneInfo

from ..ivr.destinations import Destination
from ..ivr.messages import Messages
from ..ivr.schedule import Schedule, parse_dates, parse_days
from ..ivr.tree import IvrTree, MenuNode
from ..routing.entry import RoutingTable
from ..wakeup.plan import UserSpec
from .apps import check_apps, compile_routing
from .callbacks import check_callbacks
from .sms import check_sms
from .labels import check_labels
from .texts import check_texts
from .model_nodes import check_nodes
from .model_registrar import check_registrar
from .users import check_users, compile_users
from .model import (
    ConfigModel,
    Menu,
    PhoneNumberAccessPoint,
    ScheduleModel,
    UserSegmentAccessPoint,
)
from .yamlsrc import Issue, Source

JUMP_FIELDS = ("on_invalid", "on_timeout", "on_exhausted")


def _menu_destinations(name: str, menu: Menu) -> Iterator[tuple[tuple, Destination]]:
    for key, dest in menu.options.items():
        yield ("menus", name, "options", key), dest
    for field in JUMP_FIELDS:
        dest = getattr(menu, field)
        if dest is not None:
            yield ("menus", name, field), dest
    if menu.after_hours is not None:
        yield ("menus", name, "after_hours", "destination"), menu.after_hours.destination


def _check_api_keys(model: ConfigModel, err: Callable[[tuple, str], None]) -> None:
    """The key is what tells the SDK's apps apart, and SDK keys ship inside apps: no two apps
    may share one, and none may open the admin API. Messages never print the key."""
    admin = model.engine.api.admin_token
    owners: dict[str, str] = {}
    for name, app in model.apps.items():
        if app.api_key is None:
            continue
        key = app.api_key.get_secret_value()
        if admin is not None and key == admin.get_secret_value():
            err(("apps", name, "api_key"), "is the same as engine.api.admin_token; an SDK key "
                "ships inside the app and must never open the admin API")
        elif key in owners:
            err(("apps", name, "api_key"), f"is the same as the api_key of app {owners[key]!r}; "
                "each app needs its own key")
        else:
            owners[key] = name


def user_references(model: ConfigModel) -> dict[str, list[tuple]]:
    """Where the document sends callers to a user: user name → the key paths."""
    places: list[tuple[tuple, Destination]] = [
        (("menu_defaults", "on_exhausted"), model.menu_defaults.on_exhausted),
        (("routing", "unknown_number"), model.routing.unknown_number)]
    for name, menu in model.menus.items():
        places.extend(_menu_destinations(name, menu))
    out: dict[str, list[tuple]] = {}
    for path, dest in places:
        if dest.kind == "user":
            out.setdefault(dest.target, []).append(path)
    return out


def unlisted_user(name: str) -> str:
    """A ``user:`` destination naming a user not under ``users:`` (a database user, or a
    mistake: the file alone cannot tell)."""
    return (f"user {name!r} is not under users: it must be a database user (users API, "
            "`ivr-engine users`)")


def check(model: ConfigModel, src: Source) -> list[Issue]:
    issues: list[Issue] = []

    def err(path: tuple, msg: str, severity: str = "error") -> None:
        issues.append(src.issue(path, msg, severity))

    check_nodes(model.engine, err)
    check_registrar(model.engine, err)

    default_lang = model.engine.default_language
    for name, per_lang in model.messages.items():
        if default_lang not in per_lang:
            err(("messages", name),
                f"no entry for the default language {default_lang!r} (engine.default_language); "
                "it is the fallback for every other language")

    def need_message(path: tuple, name: str | None) -> None:
        if name is not None and name not in model.messages:
            err(path, f"message {name!r} is not defined under messages")

    d = model.menu_defaults
    for field in ("invalid_message", "timeout_message", "callback_message", "voicemail_message"):
        need_message(("menu_defaults", field), getattr(d, field))

    def need_dest(path: tuple, dest: Destination) -> None:
        if dest.kind == "menu" and dest.target not in model.menus:
            err(path, f"menu {dest.target!r} is not defined under menus")
        elif dest.kind == "message-then-hangup":
            need_message(path, dest.target)

    need_dest(("menu_defaults", "on_exhausted"), d.on_exhausted)
    eng = model.engine
    if eng.watchdog.enabled and eng.database.call_deadline_seconds >= eng.watchdog.grace_seconds:
        err(("engine", "database", "call_deadline_seconds"),
            f"must be below engine.watchdog.grace_seconds ({eng.watchdog.grace_seconds:g}): a "
            "caller waiting on the database would meet Asterisk's watchdog before the fallback")
    issues.extend(check_users(model, src))
    for name, paths in user_references(model).items():
        if name not in model.users:
            for path in paths:
                err(path, unlisted_user(name), "warning")

    # parents come from options only; jumps (on_*, after_hours) do not make a tree edge
    parent: dict[str, str] = {}
    for name, menu in model.menus.items():
        need_message(("menus", name, "prompt"), menu.prompt)
        need_message(("menus", name, "invalid_message"), menu.invalid_message)
        need_message(("menus", name, "timeout_message"), menu.timeout_message)
        if menu.schedule is not None and menu.schedule not in model.schedules:
            err(("menus", name, "schedule"), f"schedule {menu.schedule!r} is not defined under schedules")
        if menu.schedule is not None and menu.after_hours is None:
            err(("menus", name, "schedule"),
                "a menu with a schedule needs after_hours (message and destination)")
        if menu.after_hours is not None:
            if menu.schedule is None:
                err(("menus", name, "after_hours"), "after_hours needs a schedule on the same menu")
            need_message(("menus", name, "after_hours", "message"), menu.after_hours.message)
        for path, dest in _menu_destinations(name, menu):
            need_dest(path, dest)
        for key, dest in menu.options.items():
            if dest.kind != "menu" or dest.target not in model.menus:
                continue
            if dest.target == name:
                err(("menus", name, "options", key),
                    "a menu cannot be its own sub-menu (use '#' to repeat)")
            elif dest.target in parent and parent[dest.target] != name:
                err(("menus", name, "options", key),
                    f"menu {dest.target!r} is already a sub-menu of {parent[dest.target]!r}; "
                    "a sub-menu has exactly one parent (copy it under another name)")
            else:
                parent.setdefault(dest.target, name)

    # cycles: a chain of parents that never reaches a top-level menu
    root: dict[str, str] = {}
    for name in model.menus:
        seen = [name]
        cur = name
        while cur in parent:
            cur = parent[cur]
            if cur in seen:
                cycle = seen[seen.index(cur):]
                if name == min(cycle):
                    err(("menus", name), "menus " + " -> ".join(cycle + [cur]) + " form a cycle "
                        "with no top-level menu")
                break
            seen.append(cur)
        else:
            root[name] = cur

    for name, menu in model.menus.items():
        jumps = [(p, dest) for p, dest in _menu_destinations(name, menu) if p[2] != "options"]
        if menu.on_exhausted is None and (menu.on_invalid is None or menu.on_timeout is None):
            jumps.append((("menu_defaults", "on_exhausted"), d.on_exhausted))
        for path, dest in jumps:
            if dest.kind != "menu" or dest.target not in root or name not in root:
                continue
            if root[dest.target] != root[name]:
                where = "" if path[0] == "menus" else f" (inherited by menu {name!r})"
                err(path, f"jumps to {dest.target!r}{where}, which belongs to the structure of "
                    f"{root[dest.target]!r}, not {root[name]!r}; jumps stay inside one structure")

    numbers: dict[str, int] = {}
    entry_menus: set[str] = set()
    for i, ap in enumerate(model.access_points):
        if ap.menu not in model.menus:
            err(("access_points", i, "menu"), f"menu {ap.menu!r} is not defined under menus")
        elif ap.menu in parent:
            err(("access_points", i, "menu"),
                f"menu {ap.menu!r} is a sub-menu of {parent[ap.menu]!r}; an access point enters "
                "a top-level menu")
        entry_menus.add(ap.menu)
        if isinstance(ap, PhoneNumberAccessPoint):
            for j, number in enumerate(ap.numbers):
                if number in numbers:
                    err(("access_points", i, "numbers", j),
                        f"number {number} is already used by access_points[{numbers[number]}]")
                else:
                    numbers[number] = i
        elif isinstance(ap, UserSegmentAccessPoint):
            if not ap.callers and ap.caller_list is None and not ap.users:
                err(("access_points", i), "a user-segment access point needs callers, list "
                    "or users")
            if ap.users and (ap.app is None or ap.app not in model.apps):
                err(("access_points", i, "app"), "users are an app's verified users: app must "
                    "name an app under apps")
            if ap.caller_list is not None and ap.caller_list not in model.caller_lists:
                err(("access_points", i, "list"),
                    f"list {ap.caller_list!r} is not defined under caller_lists")
    issues.extend(check_apps(model, src, parent, root))
    issues.extend(check_labels(model, src))
    issues.extend(check_texts(model, src))
    _check_api_keys(model, err)
    unk = model.routing.unknown_number
    need_dest(("routing", "unknown_number"), unk)
    if unk.kind == "menu":
        entry_menus.add(unk.target)
        if unk.target in parent:
            err(("routing", "unknown_number"), f"menu {unk.target!r} is a sub-menu; use a top-level menu")

    for name in model.menus:
        if name not in parent and name in root and name not in entry_menus:
            err(("menus", name), "top-level menu is not used by any access point (unreachable)",
                "warning")

    for sname, sched in model.schedules.items():
        closed = {day for item in sched.closed for day in parse_dates(item)}
        for key in sched.open:
            if parse_dates(key)[0] in closed:
                err(("schedules", sname, "open", key), "this date is also listed under closed")
    issues.extend(check_sms(model, src))
    issues.extend(check_callbacks(model, src))
    return issues


def _schedule(name: str, s: ScheduleModel, default_tz: str) -> Schedule:
    weekly: list[tuple] = [() for _ in range(7)]
    for key, ranges in s.weekly.items():
        for day in parse_days(key):
            weekly[day] = ranges
    closed = frozenset(day for item in s.closed for day in parse_dates(item))
    open_dates = {parse_dates(k)[0]: v for k, v in s.open.items()}
    return Schedule(name, ZoneInfo(s.timezone or default_tz), tuple(weekly), closed, open_dates)


def compile_tree(model: ConfigModel) -> tuple[IvrTree, RoutingTable, dict[str, UserSpec]]:
    """Build the runtime tree; only call on a model that passed ``check`` without errors."""
    eng, d = model.engine, model.menu_defaults
    messages = Messages(model.messages, eng.default_language, {
        name: (app.messages, app.languages[0] if app.languages else eng.default_language)
        for name, app in model.apps.items()})
    schedules = {n: _schedule(n, s, eng.timezone) for n, s in model.schedules.items()}
    parent: dict[str, str] = {}
    for name, menu in model.menus.items():
        for dest in menu.options.values():
            if dest.kind == "menu":
                parent[dest.target] = name

    def root_of(name: str) -> str:
        while name in parent:
            name = parent[name]
        return name

    nodes = {}
    for name, m in model.menus.items():
        exhausted = m.on_exhausted or d.on_exhausted
        nodes[name] = MenuNode(
            name=name,
            prompt=m.prompt,
            options=dict(m.options),
            timeout=m.timeout if m.timeout is not None else d.timeout,
            max_invalid=m.max_invalid or d.max_invalid,
            max_timeouts=m.max_timeouts or d.max_timeouts,
            dial0=m.dial0 or d.dial0,
            on_invalid=m.on_invalid or exhausted,
            on_timeout=m.on_timeout or exhausted,
            invalid_message=m.invalid_message or d.invalid_message,
            timeout_message=m.timeout_message or d.timeout_message,
            schedule=schedules[m.schedule] if m.schedule else None,
            after_hours_message=m.after_hours.message if m.after_hours else None,
            after_hours_destination=m.after_hours.destination if m.after_hours else None,
            parent=parent.get(name),
            root=root_of(name),
        )
    users = compile_users(model)
    tree = IvrTree(nodes, messages, eng.default_language, d.callback_message,
                   voicemail_message=d.voicemail_message,
                   no_answer={name: u.no_answer for name, u in users.items()})
    return tree, compile_routing(model, tree), {n: u.spec for n, u in users.items()}
