"""Mobile apps and access points: validation rules and the compiled routing table."""

from __future__ import annotations

import os
from typing import Iterator

from ..ivr.tree import EntryPoint, IvrTree
from ..routing.entry import (
    INACTIVE_REASONS,
    AppEntry,
    RoutingTable,
    Segment,
    number_variants,
)
from .model import (
    ConfigModel,
    MobileAppAccessPoint,
    PhoneNumberAccessPoint,
    UserSegmentAccessPoint,
)
from .yamlsrc import Issue, Source


def _mobile_daps(model: ConfigModel) -> Iterator[tuple[int, MobileAppAccessPoint]]:
    for i, ap in enumerate(model.access_points):
        if isinstance(ap, MobileAppAccessPoint):
            yield i, ap


def app_menus(model: ConfigModel, surface: str = "ivr") -> dict[str, str]:
    """app → the top-level menu of its mobile-app access point on ``surface``."""
    out: dict[str, str] = {}
    for _, ap in _mobile_daps(model):
        if ap.surface == surface and ap.app in model.apps:
            out.setdefault(ap.app, ap.menu)
    return out


def _entry(model: ConfigModel, name: str, dap_menu: dict[str, str],
           in_app_menu: dict[str, str]) -> AppEntry:
    app, eng = model.apps[name], model.engine
    fb = app.fallback
    return AppEntry(
        app=name, menu=dap_menu.get(name),
        languages=tuple(app.languages) or (eng.default_language,),
        fallback_number=fb.number, threshold=fb.threshold, match=fb.match,
        token_ttl_seconds=fb.token_ttl_seconds, token_digits=fb.token_digits,
        token_wait_seconds=fb.token_wait_seconds,
        block_outside=app.block_outside_calls.enabled,
        block_message=app.block_outside_calls.message,
        hardened_digits=fb.token_digits + fb.guessing.hardened_extra_digits,
        code_digits=fb.offline.digits if fb.offline.enabled else None,
        in_app_menu=in_app_menu.get(name), switched_on=app.active)


def check_apps(model: ConfigModel, src: Source, parent: dict[str, str],
               root: dict[str, str]) -> list[Issue]:
    issues: list[Issue] = []

    def err(path: tuple, msg: str, severity: str = "error") -> None:
        issues.append(src.issue(path, msg, severity))

    cross = model.checks.cross_app
    eng_default = model.engine.default_language

    # ------------------------------------------------------------------ the app registry
    ids: dict[str, tuple[str, str]] = {}
    fallback_numbers: dict[str, str] = {}
    for name, app in model.apps.items():
        at = ("apps", name)
        if not app.ios_id and not app.android_id:
            err(at, "an app needs ios_id or android_id (or both)")
        for key in ("ios_id", "android_id"):
            ident = getattr(app, key)
            if not ident:
                continue
            other = ids.get(ident)
            if other is not None and other[0] != name:
                err(at + (key,), f"identifier {ident!r} is already used by app {other[0]!r} "
                    f"({other[1]}); an identifier may serve both platforms of one app only")
            else:
                ids.setdefault(ident, (name, key))

        apns, fcm = app.push.apns, app.push.fcm
        if app.ios_id:
            if apns is None:
                err(at + ("push",), "ios_id is set: push.apns is required (key_file + key_id + "
                    "team_id, or certificate_file)")
            elif apns.certificate_file and apns.key_file:
                err(at + ("push", "apns"), "give either a .p8 key_file or a certificate_file, "
                    "not both")
            elif not apns.certificate_file:
                missing = [k for k in ("key_file", "key_id", "team_id") if not getattr(apns, k)]
                for k in missing:
                    err(at + ("push", "apns"), f"{k} is required for token (.p8) "
                        "authentication (or give certificate_file)")
        if app.android_id and (fcm is None or not fcm.service_account_file):
            err(at + ("push",), "android_id is set: push.fcm.service_account_file is required")
        for cred, key in ((apns, "key_file"), (apns, "certificate_file"),
                          (fcm, "service_account_file")):
            path = getattr(cred, key, None) if cred is not None else None
            if path and not os.path.isfile(path):
                kind = "apns" if cred is apns else "fcm"
                err(at + ("push", kind, key), f"file {path!r} not found (push to this platform "
                    "will fail until it exists)", "warning")

        ua = app.user_assertion
        if ua is not None and ua.algorithm == "HS256" and ua.secret is None:
            err(at + ("user_assertion", "secret"), "not set: every login of this app is "
                "refused", "warning")
        for key in ("public_key_file", "jwks_file"):
            path = getattr(ua, key, None) if ua is not None else None
            if path and not os.path.isfile(path):
                err(at + ("user_assertion", key), f"file {path!r} not found (logins of this "
                    "app fail until it exists)", "warning")

        links = app.sms_links
        if links.enabled:
            for platform, key in (("ios_id", "app_store_url"), ("android_id", "play_store_url")):
                url = getattr(links, key)
                if getattr(app, platform) and not url:
                    err(at + ("sms_links",), f"sms_links is enabled and the app has {platform}: "
                        f"{key} is required")
                if url and not url.startswith("https://"):
                    err(at + ("sms_links", key), "store links must be https:// URLs")

        fb = app.fallback
        if fb.number is not None:
            if fb.threshold is None:
                err(at + ("fallback",), "threshold (0..1) is required when a fallback number "
                    "is set")
            if fb.number in fallback_numbers:
                err(at + ("fallback", "number"), f"{fb.number} is already the fallback number "
                    f"of app {fallback_numbers[fb.number]!r}")
            else:
                fallback_numbers[fb.number] = name
        elif fb.threshold is not None:
            err(at + ("fallback", "threshold"), "threshold has no effect without a fallback "
                "number", "warning")

        block = app.block_outside_calls
        if block.enabled:
            if not block.message:
                err(at + ("block_outside_calls",), "message is required when enabled")
            elif block.message not in model.messages and block.message not in app.messages:
                err(at + ("block_outside_calls", "message"),
                    f"message {block.message!r} is defined neither in this app's messages nor "
                    "under messages")
            if fb.number is None:
                err(at + ("block_outside_calls",), "blocking applies to calls on the fallback "
                    "number, and this app has none", "warning")

        seen_langs: set[str] = set()
        for j, lang in enumerate(app.languages):
            if lang in seen_langs:
                err(at + ("languages", j), f"language {lang!r} is listed twice")
            seen_langs.add(lang)
        app_default = app.languages[0] if app.languages else eng_default
        for mname, per_lang in app.messages.items():
            if mname not in model.messages and app_default not in per_lang:
                err(at + ("messages", mname),
                    f"not an override of an engine message, so it needs the app's default "
                    f"language {app_default!r}")

    # ------------------------------------------------------------------ mobile-app DAPs
    seen: dict[tuple[str, str], int] = {}
    menu_owner: dict[str, tuple[str, int]] = {}
    for i, ap in _mobile_daps(model):
        if ap.app not in model.apps:
            err(("access_points", i, "app"), f"app {ap.app!r} is not defined under apps")
            continue
        key = (ap.app, ap.surface)
        if key in seen:
            where = "IVR structure" if ap.surface == "ivr" else "in-app structure"
            err(("access_points", i, "app"), f"app {ap.app!r} already has a mobile-app access "
                f"point in the {where} (access_points[{seen[key]}]); an app appears there once")
            continue
        seen[key] = i
        # either surface: a deep link of one app must never start in another app's tree
        owner = menu_owner.get(ap.menu)
        if owner is not None and owner[0] != ap.app:
            err(("access_points", i, "menu"), f"menu {ap.menu!r} is already the access "
                f"point of app {owner[0]!r} (access_points[{owner[1]}]); two apps cannot "
                "share a tree")
        else:
            menu_owner.setdefault(ap.menu, (ap.app, i))

    dap_menu = app_menus(model)
    in_app_menu = app_menus(model, "in-app")
    for name in model.apps:
        reason = _entry(model, name, dap_menu, in_app_menu).inactive_reason
        if reason is not None:
            at = ("apps", name, "active") if reason == "switched-off" else ("apps", name)
            widget = " and its web widget answers 404" if model.apps[name].widget.enabled else ""
            err(at, f"app is inactive: {INACTIVE_REASONS[reason]}, so its SDK requests (call "
                "plans, menus, queue status) are refused, its fallback number is routed as "
                f"an unknown number{widget}", "warning")

    # ------------------------------------------------------------------ cross-app carry
    tree_of = {menu: app for app, menu in [*in_app_menu.items(), *dap_menu.items()]}

    def describe(menu: str) -> str:
        r = root.get(menu, menu)
        owner = tree_of.get(r)
        return f"app {owner!r}'s tree" if owner else f"the tree of menu {r!r}"

    for app_name, menu in dap_menu.items():
        number = model.apps[app_name].fallback.number
        if number is None:
            continue
        variants = set(number_variants(number))
        for i, ap in enumerate(model.access_points):
            if isinstance(ap, PhoneNumberAccessPoint):
                for j, n in enumerate(ap.numbers):
                    if n not in variants:
                        continue
                    if root.get(ap.menu, ap.menu) != menu:
                        err(("access_points", i, "numbers", j),
                            f"{n} is app {app_name!r}'s fallback number; phone-number access "
                            f"points are matched before mobile-app ones, so app {app_name!r}'s "
                            f"callers would land in {describe(ap.menu)}", cross)
                    else:
                        err(("access_points", i, "numbers", j),
                            f"{n} is app {app_name!r}'s fallback number; this phone-number "
                            "access point is matched first, so the app's tokens are never read "
                            "(no app language, messages, custom data or outside-call "
                            "blocking); remove it", "warning")
            elif isinstance(ap, UserSegmentAccessPoint) and (ap.callers or ap.caller_list):
                # (a segment of verified users only names its app's users on purpose)
                applies = not ap.numbers or variants & {v for n in ap.numbers
                                                        for v in number_variants(n)}
                if applies and root.get(ap.menu, ap.menu) != menu:
                    scope = "every number" if not ap.numbers else f"{number}"
                    err(("access_points", i),
                        f"user-segment access points are matched first and this one applies to "
                        f"{scope}: app {app_name!r}'s callers on its fallback number {number} "
                        f"who match it would land in {describe(ap.menu)}", cross)

    # everything reachable from the app's menus (either structure) must stay in its tree
    for app_name, menu in [*dap_menu.items(), *in_app_menu.items()]:
        todo, reached = [menu], {menu}
        while todo:
            cur_name = todo.pop()
            cur = model.menus.get(cur_name)
            if cur is None:
                continue
            dests = list(cur.options.values()) + [d for d in (
                cur.on_invalid, cur.on_timeout, cur.on_exhausted,
                cur.after_hours.destination if cur.after_hours else None) if d]
            for dest in dests:
                if dest.kind == "menu" and dest.target not in reached:
                    reached.add(dest.target)
                    todo.append(dest.target)
                    if root.get(dest.target, dest.target) != menu:
                        err(("menus", cur_name), f"can carry app {app_name!r}'s callers into "
                            f"{describe(dest.target)}", cross)
    return issues


def _structure_queues(tree: IvrTree) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for node in tree.menus.values():
        qs = out.setdefault(node.root, set())
        dests = list(node.options.values()) + [node.on_invalid, node.on_timeout]
        if node.after_hours_destination is not None:
            dests.append(node.after_hours_destination)
        for d in dests:
            if d.kind in ("queue", "callback"):
                qs.add(d.target)
        if node.dial0.policy == "queue":
            qs.add(node.dial0.queue)
    return {k: frozenset(v) for k, v in out.items()}


def compile_routing(model: ConfigModel, tree: IvrTree) -> RoutingTable:
    eng = model.engine
    segments = []
    numbers: dict[str, EntryPoint] = {}
    for i, ap in enumerate(model.access_points):
        if isinstance(ap, PhoneNumberAccessPoint):
            lang = ap.language or eng.default_language
            for n in ap.numbers:
                numbers[n] = EntryPoint("phone-number", f"did:{n}", ap.menu, lang)
        elif isinstance(ap, UserSegmentAccessPoint):
            patterns = list(ap.callers) + list(model.caller_lists.get(ap.caller_list or "", []))
            exact = {v for p in patterns if not p.endswith("*") for v in number_variants(p)}
            prefixes = tuple(v for p in patterns if p.endswith("*")
                             for v in number_variants(p[:-1]))
            segments.append(Segment(
                f"segment:{ap.name or i}", ap.menu, ap.language or eng.default_language,
                frozenset(exact), prefixes,
                frozenset(v for n in ap.numbers for v in number_variants(n)),
                app=ap.app, users=frozenset(ap.users)))
    dap_menu, in_app_menu = app_menus(model), app_menus(model, "in-app")
    apps: dict[str, AppEntry] = {}
    app_numbers: dict[str, str] = {}
    for name, app in model.apps.items():
        fb = app.fallback
        apps[name] = _entry(model, name, dap_menu, in_app_menu)
        if fb.number:
            app_numbers[fb.number] = name
    return RoutingTable(tuple(segments), numbers, apps, app_numbers,
                        model.routing.unknown_number, eng.default_language,
                        _structure_queues(tree))
