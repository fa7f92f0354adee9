"""Activation as the seed says (issue 19 item 4): an app is active when its `active` switch is
on and it has a mobile-app access point in the in-app structure as well as in the IVR one;
an inactive app's plans, menus and queues are refused with 409 and a `reason`, its fallback
number is an unknown number, `GET /v1/admin/apps` says why and whether its install/open
links are sent. Nodes of the in-app tree are deep-link targets: in plans, in `simulate`, in
the runtime, and in the call's session (the structure it entered, for transfers)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from ivr_engine.apps.plans import PlanError, plan_call
from ivr_engine.calls.manager import Calls
from ivr_engine.calls.registry import CallRegistry
from ivr_engine.calls.session import CallServices
from ivr_engine.config import load_config, parse_config
from ivr_engine.ivr.actions import HandOff, Play
from ivr_engine.ivr.deeplink import start_at_node
from ivr_engine.ivr.destinations import Destination
from ivr_engine.ivr.runtime import IvrRuntime
from ivr_engine.livedata.targets import TargetError, app_target, deep_link
from ivr_engine.routing.entry import route_app, route_pstn

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ADMIN_TOKEN,
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    api_fixture,
    assert_problem,
)
from .test_callsafe_session import Node, ScriptedAri, event, until

LEGACY_KEY = "legacy-key-00000000000000000000000000000"  # the fixture's default
ADMIN = [("Authorization", b"Bearer " + ADMIN_TOKEN.encode())]
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


def variant(*replacements: tuple[str, str]):
    text = FIXTURE.read_text()
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return parse_config(text + USERS, str(FIXTURE), ENV)


SWITCHED_OFF = ("    languages: [en]\n    api_key: ${IVR_STAFF_API_KEY",
                "    languages: [en]\n    active: false\n    api_key: ${IVR_STAFF_API_KEY")
NO_IN_APP = ("  - {type: mobile-app, app: staff, menu: staff, surface: in-app}", "")


def bearer(key: str) -> list[tuple[str, bytes]]:
    return [("Authorization", b"Bearer " + key.encode())]


# ---------------------------------------------------------------- routing (pure)


def test_an_inactive_apps_calls_and_number_are_not_the_apps():
    for change, reason in ((SWITCHED_OFF, "switched-off"),
                           (NO_IN_APP, "no-in-app-access-point")):
        cfg = variant(change)
        staff = cfg.routing.apps["staff"]
        assert (staff.active, staff.inactive_reason, staff.menu) == (False, reason, "staff")
        d = route_pstn(cfg.routing, "+17144505657", "+15551112222")
        assert (d.via, d.app, d.destination) == ("unknown", None, cfg.routing.unknown)
        assert route_app(cfg.routing, "staff").via == "unknown"
        with pytest.raises(PlanError) as exc:
            plan_call(staff, 0.9)
        assert (exc.value.status, exc.value.reason) == (409, reason)
        assert exc.value.detail.startswith("app 'staff' is inactive: ")
    active = variant()
    assert route_pstn(active.routing, "+17144505657", "").via == "app-fallback"


# ---------------------------------------------------------------- the API


async def test_inactive_apps_are_refused_with_409_and_a_reason(api):
    cases = [(LEGACY_KEY, "legacy", "no-in-app-access-point", api.parts.config())]
    for change, reason in ((SWITCHED_OFF, "switched-off"),
                           (NO_IN_APP, "no-in-app-access-point")):
        cases.append((KEYS["staff"], "staff", reason, variant(change)))
    for key, app, reason, cfg in cases:
        await api.rebuild(config=lambda cfg=cfg: cfg)
        api.refill()
        for method, path in (("POST", f"/v1/apps/{app}/calls"),
                             ("GET", f"/v1/apps/{app}/menu"),
                             ("GET", f"/v1/apps/{app}/menu?surface=in-app"),
                             ("GET", "/v1/queues/support/status"),
                             ("GET", "/v1/queues/support/events")):
            if method == "POST":
                r = await api.post(path, {"connectivity": 0.9}, key=key)
            else:
                r = await api.raw("GET", path, bearer(key) + [("Accept", b"text/event-stream")])
            doc = assert_problem(r, 409)
            assert (doc["title"], doc["reason"]) == ("App inactive", reason), (path, doc)
            assert doc["detail"].startswith(f"app {app!r} is inactive: "), doc
    # the other apps are untouched
    r = await api.post("/v1/apps/customer/calls", {"connectivity": 0.9}, key=KEYS["customer"])
    assert r.status == 201, r.body


async def test_no_fallback_number_is_a_409_with_its_own_reason(api):
    cfg = variant(('      number: "+17144505656"\n      threshold: 0.6\n', ""))
    await api.rebuild(config=lambda: cfg)
    r = await api.post("/v1/apps/customer/calls", {"connectivity": 0.9, "data_path": False},
                       key=KEYS["customer"])
    doc = assert_problem(r, 409)
    assert (doc["title"], doc["reason"]) == ("No fallback number", "no-fallback-number")


async def test_admin_apps_say_active_why_not_and_whether_links_are_sent(api):
    links = ("    block_outside_calls:\n", """\
    sms_links:
      enabled: true
      app_store_url: https://apps.apple.com/app/id1
      play_store_url: https://play.google.com/store/apps/details?id=com.acme.customer
      base_url: https://links.example.com
    block_outside_calls:
""")
    staff_links = ("    languages: [en]\n    api_key: ${IVR_STAFF_API_KEY", """\
    languages: [en]
    active: false
    sms_links:
      enabled: true
      play_store_url: https://play.google.com/store/apps/details?id=com.acme.staff
      base_url: https://links.example.com
    api_key: ${IVR_STAFF_API_KEY""")
    cfg = variant(links, staff_links)
    await api.rebuild(config=lambda: cfg)
    r = await api.raw("GET", "/v1/admin/apps", ADMIN)
    assert r.status == 200, r.body
    apps = {a["name"]: a for a in r.json()["apps"]}
    pick = lambda a: (a["status"], a["active"], a["reason"], a["menu"],  # noqa: E731
                      a["in_app_menu"], a["app_links"])
    assert pick(apps["customer"]) == ("credential-problems", True, None, "cust", "cust-app",
                                      {"sends": True, "reason": None})
    staff = apps["staff"]
    assert pick(staff) == ("switched-off", False, "switched-off", "staff", "staff",
                           {"sends": False, "reason": "app 'staff' is inactive (no mobile-app "
                            "access point)"})
    assert any("apps.staff.active: warning: app is inactive: its switch is off" in p
               for p in staff["problems"]), staff["problems"]
    assert pick(apps["legacy"]) == ("no-access-point", False, "no-in-app-access-point", None,
                                    None, {"sends": False,
                                           "reason": "app 'legacy' has sms_links off"})


# ---------------------------------------------------------------- in-app deep links


async def test_nodes_of_the_in_app_tree_are_deep_link_targets(api):
    for target in ("cust-app", "cust-app-help", "cust-app.1", "cust-app-help.1", "cust-sub"):
        r = await api.post("/v1/apps/customer/calls", {"connectivity": 0.1, "target": target},
                           key=KEYS["customer"])
        assert r.status == 201, (target, r.body)
        assert r.json()["target"] == target
    # another app's nodes (either surface), the global tree's, unknown ones: refused
    for target in ("staff", "staff.1", "top", "cust-app.9", "cust-app-help.2"):
        r = await api.post("/v1/apps/customer/calls", {"connectivity": 0.1, "target": target},
                           key=KEYS["customer"])
        doc = assert_problem(r, 422)
        assert doc["field"] == "target" and "is not a node of this app's trees" in doc["detail"]
    # every node the in-app menu lists is a target
    tree = (await api.raw("GET", "/v1/apps/customer/menu?surface=in-app",
                          bearer(KEYS["customer"]))).json()

    def ids(node):
        return [node["id"]] + [i for c in node["children"] for i in ids(c)]

    assert ids(tree["root"]) == ["cust-app", "cust-app.1", "cust-app-help", "cust-app-help.1"]


def test_app_target_and_deep_link_resolve_in_both_trees():
    cfg = load_config(FIXTURE, {})
    customer = cfg.routing.apps["customer"]
    t = app_target(cfg.tree, customer, "cust-app-help.1")
    assert (t.menu, str(t.destination)) == ("cust-app-help", "queue:app-help")
    assert app_target(cfg.tree, customer, "cust-app.2").node_id == "cust-app-help"
    assert app_target(cfg.tree, customer, "cust-sub").menu == "cust-sub"
    with pytest.raises(TargetError):
        app_target(cfg.tree, cfg.routing.apps["staff"], "cust-app")
    decision = route_app(cfg.routing, "customer", "fr")
    intent = SimpleNamespace(target="cust-app-help")
    assert deep_link(cfg.tree, decision, intent, customer).menu == "cust-app-help"
    with pytest.raises(TargetError):  # the app went away in a reload
        deep_link(cfg.tree, decision, intent, None)


def test_a_call_deep_linked_into_the_in_app_tree_stays_in_it():
    cfg = load_config(FIXTURE, {})
    rt = IvrRuntime(cfg.tree, "cust", "fr", "app:customer", "+1555", "customer")
    t = app_target(cfg.tree, cfg.routing.apps["customer"], "cust-app-help")
    out = start_at_node(rt, t.node_id, t.menu, t.destination, NOW)
    play = next(a for a in out if isinstance(a, Play))
    out = rt.playback_finished(play.token, NOW)
    out = rt.digit("*", NOW)  # back: to its in-app parent, never the IVR tree
    assert rt.path == ["@cust-app-help", "cust-app"]
    play = next(a for a in out if isinstance(a, Play))
    rt.playback_finished(play.token, NOW)
    assert rt.digit("1", NOW)[-1] == HandOff(Destination("queue", "sales"))


def test_simulate_starts_at_an_in_app_node(tmp_path):
    path = tmp_path / "apps.yaml"
    path.write_text(FIXTURE.read_text())
    r = subprocess.run([sys.executable, "-m", "ivr_engine.cli", "simulate", str(path), "--did",
                        "+17144505656", "--from-app", "--target", "cust-app-help.1", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    walk = json.loads(r.stdout)
    assert (walk["path"], walk["destination"]) == (
        ["@cust-app-help.1"], {"type": "queue", "target": "app-help"})
    r = subprocess.run([sys.executable, "-m", "ivr_engine.cli", "simulate", str(path), "--did",
                        "+17144505656", "--from-app", "--target", "staff"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "is not a node of this app's trees" in r.stderr


class Intents:
    """The app's plan, as the token's lookup finds it."""

    def __init__(self, target: str) -> None:
        self.target = target

    async def consume_token(self, app, token, now, channel):
        return SimpleNamespace(target=self.target, language="en", custom_data={}, user=None,
                               verified=False)


async def test_the_call_enters_the_in_app_tree_it_was_deep_linked_to():
    """The session starts the call at its in-app target and registers that tree as the
    structure it entered: transfers (and transfer-targets) use its queues."""
    config = load_config(FIXTURE, {})
    ari = ScriptedAri()
    node = Node(ari, config)
    registry = CallRegistry()
    store = SimpleNamespace(intents=Intents("cust-app-help"))
    calls = Calls(lambda: config, CallServices(store=store, registry=registry))
    node.calls = calls
    task = asyncio.get_running_loop().create_task(calls.run())
    try:
        await until(lambda: calls._tg is not None, "the calls' TaskGroup")
        ev = event("StasisStart", "app-call-1", args=["app", "customer", "482913"])
        assert calls.start(node, ev)  # type: ignore[arg-type]
        await until(lambda: ari.calls("play"), "the target's prompt")
        info = registry.get("app-call-1")
        assert (info.app, info.via, info.root_menu) == ("customer", "app", "cust-app")
        args, _ = ari.calls("play")[0]
        assert args == ("app-call-1", ("sound:digits/7",))  # m-app-help, not the top's m-cust
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
