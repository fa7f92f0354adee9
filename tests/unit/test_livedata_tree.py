"""The app's tree as the app shows it (issue 10): labels per language with fallback, only the
app's own nodes, open-now across a schedule boundary, deep-link targets, the label rules of
``check``, and a deep-linked call in the runtime and ``simulate``."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ivr_engine.config import ConfigError, parse_config
from ivr_engine.ivr.actions import HandOff, Play, SetVariables
from ivr_engine.ivr.deeplink import start_at_node
from ivr_engine.ivr.runtime import IvrRuntime
from ivr_engine.livedata.targets import TargetError, resolve_target
from ivr_engine.livedata.tree import app_top, export_tree, queues_of

UTC = dt.timezone.utc
# Paris is UTC+1 in December: 'shop' closes at 18:00 Paris = 17:00 UTC
BEFORE_CLOSE = dt.datetime(2026, 12, 1, 16, 59, tzinfo=UTC)  # a Tuesday
AFTER_CLOSE = dt.datetime(2026, 12, 1, 17, 0, tzinfo=UTC)

CONFIG = """\
engine:
  ari: {password: secret}
  default_language: en
schedules:
  shop: {timezone: Europe/Paris, weekly: {mon-sat: "09:00-18:00"}}
messages:
  hello: {en: hello-world}
  closed: {en: vm-goodbye}
menus:
  main:
    prompt: hello
    label: {en: Main line}
    options: {"1": queue:operator, "2": menu:global-sub}
  global-sub:
    prompt: hello
    options: {"1": queue:secret-global}
  a-top:
    prompt: hello
    label: {en: Help, fr: Aide}
    description: {en: Everything we do, fr: Tout ce que nous faisons}
    options: {"1": menu:a-shop, "2": voicemail:1000@default, "3": message-then-hangup:closed}
    option_labels:
      "2": {label: {en: Leave a message, fr: Laisser un message}}
    dial0: queue:a-operator
  a-shop:
    prompt: hello
    label: {en: Shop, fr: Boutique}
    schedule: shop
    after_hours: {message: closed, destination: "callback:a-orders"}
    options: {"1": queue:a-orders, "2": menu:a-returns}
    option_labels:
      "1": {label: {en: Orders}}
  a-returns:
    prompt: hello
    label: {en: Returns, fr: Retours}
    options: {"1": queue:a-returns, "2": user:alice}
  b-top:
    prompt: hello
    label: {en: Staff desk, fr: Accueil du personnel}
    options: {"1": queue:b-desk}
  b-app:
    prompt: hello
    label: {en: Staff app}
    options: {"1": queue:b-app-queue}
users:
  alice: {mobile_endpoint: alice, app: a}
apps:
  a:
    android_id: com.acme.a
    push: {fcm: {service_account_file: @HERE@}}
    languages: [fr, en]
  b:
    android_id: com.acme.b
    push: {fcm: {service_account_file: @HERE@}}
    languages: [en, fr]
access_points:
  - {type: phone-number, numbers: ["+15551230000"], menu: main}
  - {type: mobile-app, app: a, menu: a-top}
  - {type: mobile-app, app: a, menu: a-top, surface: in-app}
  - {type: mobile-app, app: b, menu: b-top}
  - {type: mobile-app, app: b, menu: b-app, surface: in-app}
""".replace("@HERE@", str(Path(__file__).resolve()))


@pytest.fixture(scope="module")
def cfg():
    return parse_config(CONFIG, "t.yaml")


def ids(node: dict) -> list[str]:
    return [node["id"]] + [i for c in node["children"] for i in ids(c)]


def export(cfg, app, lang, now=BEFORE_CLOSE, surface="ivr", wait_of=lambda q: None):
    return export_tree(cfg.model, cfg.tree, app, app_top(cfg.model, app, surface), lang, now,
                       wait_of)


def test_two_apps_two_languages_never_leak(cfg):
    for lang in ("en", "fr"):
        a = export(cfg, "a", lang)
        b = export(cfg, "b", lang)
        assert ids(a["root"]) == ["a-top", "a-shop", "a-shop.1", "a-returns", "a-returns.1",
                                  "a-returns.2", "a-top.2", "a-top.3", "a-top.0"]
        assert ids(b["root"]) == ["b-top", "b-top.1"]
        assert not any(i.startswith(("b-", "main", "global")) for i in ids(a["root"]))
        assert not any(i.startswith(("a-", "main", "global")) for i in ids(b["root"]))
        text = json.dumps([a, b])
        assert "secret-global" not in text and '"queue": "operator"' not in text
    fr = export(cfg, "a", "fr")["root"]
    assert (fr["label"], fr["description"], fr["kind"], fr["digit"]) == (
        "Aide", "Tout ce que nous faisons", "menu", None)
    shop = fr["children"][0]
    assert (shop["id"], shop["label"], shop["digit"]) == ("a-shop", "Boutique", "1")
    # an option label missing in French falls back to the app's default (fr), then en
    assert shop["children"][0] == {
        "id": "a-shop.1", "kind": "queue", "digit": "1", "label": "Orders",
        "description": None, "open": True, "closed_by": None, "queue": "a-orders",
        "wait": None, "children": []}
    kinds = {c["id"]: c["kind"] for c in fr["children"]}
    assert kinds == {"a-shop": "menu", "a-top.2": "voicemail", "a-top.3": "message",
                     "a-top.0": "queue"}
    assert fr["children"][-1]["digit"] == "0"  # dial-0 queue last
    assert fr["children"][1]["label"] == "Laisser un message"
    en = export(cfg, "a", "en")["root"]
    assert en["label"] == "Help" and en["children"][1]["label"] == "Leave a message"
    # pt_BR: base language pt unknown -> the app's default language (fr)
    assert export(cfg, "a", "pt_BR")["root"]["label"] == "Aide"
    assert export(cfg, "a", None)["language"] == "fr"
    # unlabelled leaves are null, never another app's text
    returns = shop["children"][1]
    assert [c["label"] for c in returns["children"]] == [None, None]
    assert returns["children"][1]["kind"] == "user"


def test_in_app_surface_is_its_own_tree(cfg):
    b = export(cfg, "b", "fr", surface="in-app")
    assert ids(b["root"]) == ["b-app", "b-app.1"] and b["root"]["label"] == "Staff app"
    assert app_top(cfg.model, "a", "in-app") == "a-top"  # the same tree on both surfaces
    assert app_top(cfg.model, "nope", "in-app") is None


def test_open_now_across_a_schedule_boundary(cfg):
    def opened(now):
        root = export(cfg, "a", "en", now)["root"]
        shop = root["children"][0]
        return root["open"], shop["open"], shop["children"][0]["open"], \
            shop["children"][1]["open"], shop["children"][1]["children"][0]["open"]

    assert opened(BEFORE_CLOSE) == (True, True, True, True, True)
    # 18:00 in Paris: the shop and everything under it close; the top stays open
    assert opened(AFTER_CLOSE) == (True, False, False, False, False)
    sunday = dt.datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert opened(sunday)[1] is False


def test_queue_waits_only_for_queue_nodes(cfg):
    asked = []

    def wait_of(queue):
        asked.append(queue)
        return {"seconds": 12.0, "method": "talk-time", "confidence": "low", "samples": 3,
                "reason": "r"}

    root = export(cfg, "a", "en", wait_of=wait_of)["root"]
    assert sorted(asked) == ["a-operator", "a-orders", "a-returns"]
    assert root["children"][0]["children"][0]["wait"]["seconds"] == 12.0
    assert root["children"][1]["wait"] is None  # voicemail


def test_queues_of_an_app(cfg):
    assert queues_of(cfg.tree, "a-top") == {"a-operator", "a-orders", "a-returns"}
    assert queues_of(cfg.tree, "b-top") == {"b-desk"}
    assert queues_of(cfg.tree, None) == frozenset()


# ---------------------------------------------------------------- deep-link targets

def test_targets_resolve_only_in_the_apps_tree(cfg):
    t = resolve_target(cfg.tree, "a-top", "a-returns")
    assert (t.menu, t.destination) == ("a-returns", None)
    t = resolve_target(cfg.tree, "a-top", "a-shop.1")
    assert (t.menu, str(t.destination)) == ("a-shop", "queue:a-orders")
    assert str(resolve_target(cfg.tree, "a-top", "a-top.0").destination) == "queue:a-operator"
    assert resolve_target(cfg.tree, "a-top", "a-top.1").node_id == "a-shop"  # a sub-menu
    for bad in ("b-top", "b-top.1", "main", "global-sub", "main.1", "a-top.9", "nope", "",
                "a-top.", ".1"):
        with pytest.raises(TargetError, match="is not a node of this app's tree"):
            resolve_target(cfg.tree, "a-top", bad)
    with pytest.raises(TargetError):
        resolve_target(cfg.tree, None, "a-top")


def runtime(cfg):
    return IvrRuntime(cfg.tree, "a-top", "fr", "app:a", "+1555", "a")


def path_var(actions):
    return [v for a in actions if isinstance(a, SetVariables) for k, v in a.variables
            if k == "IVR_PATH"]


def test_deep_link_to_a_menu_skips_the_top(cfg):
    rt = runtime(cfg)
    actions = start_at_node(rt, "a-returns", "a-returns", None, BEFORE_CLOSE)
    assert rt.path == ["@a-returns"]
    plays = [a for a in actions if isinstance(a, Play)]
    assert len(plays) == 1 and rt.prompts == ["sound:hello-world"]
    out = rt.playback_finished(plays[0].token, BEFORE_CLOSE)
    assert path_var(out) == ["@a-returns"]  # IVR_PATH shows the jump
    out = rt.digit("*", BEFORE_CLOSE)  # back to the parent: still the app's tree
    assert rt.path == ["@a-returns", "a-shop"]
    out = rt.playback_finished([a for a in out if isinstance(a, Play)][0].token, BEFORE_CLOSE)
    assert path_var(out) == ["@a-returns/a-shop"]


def test_deep_link_to_a_leaf_hands_off_at_once(cfg):
    rt = runtime(cfg)
    actions = start_at_node(rt, "a-shop.1", "a-shop", resolve_target(
        cfg.tree, "a-top", "a-shop.1").destination, BEFORE_CLOSE)
    assert [a for a in actions if isinstance(a, Play)] == []
    assert isinstance(actions[-1], HandOff) and str(actions[-1].destination) == "queue:a-orders"
    assert path_var(actions) == ["@a-shop.1"]


def test_deep_link_keeps_the_schedules_on_the_way(cfg):
    # after 18:00 the shop is closed: a link into it (or below it) gets the after-hours
    for node in ("a-shop.1", "a-returns", "a-returns.1"):
        rt = runtime(cfg)
        t = resolve_target(cfg.tree, "a-top", node)
        actions = start_at_node(rt, node, t.menu, t.destination, AFTER_CLOSE)
        assert rt.path == [f"@{node}", "a-shop"], node
        play = [a for a in actions if isinstance(a, Play)][0]
        assert not play.interruptible and rt.prompts == ["sound:vm-goodbye"]
        rt.playback_finished(play.token, AFTER_CLOSE)
        assert str(rt.destination) == "callback:a-orders"


def test_simulate_target_on_the_command_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.replace("    languages: [fr, en]\n", "    languages: [fr, en]\n"
                                  "    fallback: {number: '+17144505656', threshold: 0.5}\n"))

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "ivr_engine.cli", "simulate", str(cfg),
                               "--did", "+17144505656", "--at", "2026-12-01T12:00:00+00:00",
                               "--json", *extra], capture_output=True, text=True)

    r = run("--from-app", "--target", "a-shop.1")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["path"] == ["@a-shop.1"]
    assert out["destination"] == {"type": "queue", "target": "a-orders"}
    r = run("--from-app", "--target", "b-top")
    assert r.returncode == 2 and "is not a node of this app's tree" in r.stderr
    r = run("--target", "a-shop")
    assert r.returncode == 2 and "--target needs an app call" in r.stderr


# ---------------------------------------------------------------- label rules

def issues(text):
    try:
        cfg = parse_config(text, "t.yaml")
    except ConfigError as exc:
        return [str(i) for i in exc.issues]
    return [str(w) for w in cfg.warnings if "label" in w.path]


def test_a_label_needs_the_default_language():
    text = CONFIG.replace("label: {en: Returns, fr: Retours}", "label: {fr: Retours}")
    text = text.replace('"1": {label: {en: Orders}}', '"1": {description: {fr: Commandes}}')
    line = CONFIG.splitlines().index("  a-returns:") + 3
    shop = CONFIG.splitlines().index('      "1": {label: {en: Orders}}') + 1
    assert issues(text) == [
        f"t.yaml:{shop}: menus.a-shop.option_labels.1.description: no text for the default "
        "language 'en' (engine.default_language); it is the fallback for every other language",
        f"t.yaml:{line}: menus.a-returns.label: no text for the default language 'en' "
        "(engine.default_language); it is the fallback for every other language"]


def test_option_labels_name_existing_options():
    text = CONFIG.replace('"1": {label: {en: Orders}}', '"7": {label: {en: Orders}}')
    assert any("menus.a-shop.option_labels.7: menu 'a-shop' has no option '7'" in i
               for i in issues(text))


def test_check_warns_about_missing_labels_of_visual_trees_only():
    def warnings(text):
        return [str(w) for w in parse_config(text, "t.yaml").warnings if "label" in str(w)]

    assert warnings(CONFIG) == []  # nothing is declared visual
    text = CONFIG.replace("{type: mobile-app, app: a, menu: a-top}",
                          "{type: mobile-app, app: a, menu: a-top, visual: true}")
    lines = CONFIG.splitlines()

    def at(needle, after=""):
        start = lines.index(after) if after else 0
        return next(i for i, t in enumerate(lines, 1) if i > start and needle in t)

    assert warnings(text) == [
        f"t.yaml:{at('message-then-hangup:closed')}: menus.a-top.options.3: warning: app 'a' "
        "shows option 3 (message-then-hangup:closed) but it has no label in fr, en "
        "(option_labels.3)",
        f"t.yaml:{at('queue:a-orders, ')}: menus.a-shop.options.1: warning: app 'a' shows "
        "option 1 (queue:a-orders) but it has no label in fr (option_labels.1)",
        f"t.yaml:{at('queue:a-returns')}: menus.a-returns.options.1: warning: app 'a' shows "
        "option 1 (queue:a-returns) but it has no label in fr, en (option_labels.1)",
        f"t.yaml:{at('queue:a-returns')}: menus.a-returns.options.2: warning: app 'a' shows "
        "option 2 (user:alice) but it has no label in fr, en (option_labels.2)"]
    # a menu without a label in one of the app's languages
    text = text.replace("label: {en: Shop, fr: Boutique}", "label: {en: Shop}")
    assert f"t.yaml:{at('  a-shop:')}: menus.a-shop: warning: app 'a' shows this menu but it " \
        "has no label in fr" in warnings(text)
    # app b's tree is not visual: its unlabelled option is not reported
    assert not any("b-top" in w for w in warnings(text))
