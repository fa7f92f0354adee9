"""Mobile apps at run time: entry routing, the call plan, transfers, messages and dial-0."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from ivr_engine.config import load_config, parse_config
from ivr_engine.ivr.actions import (
    Answer,
    CancelTimer,
    Collect,
    HandOff,
    Play,
    SetVariables,
    StopPlayback,
)
from ivr_engine.ivr.destinations import Destination
from ivr_engine.ivr.runtime import IvrRuntime
from ivr_engine.ivr.simulate import parse_dtmf, simulate
from ivr_engine.routing.entry import (
    Segment,
    after_token,
    outside_app,
    route_app,
    route_pstn,
)
from ivr_engine.apps.plans import (
    PlanError,
    clean_custom_data,
    dial_string,
    check_room,
    draw_token,
    plan_call,
)
from ivr_engine.routing.transfer import TransferRefused, check_transfer

FIXTURE = Path(__file__).parent.parent / "fixtures" / "apps.yaml"
TEXT = FIXTURE.read_text()
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)

CUSTOMER_NUMBER = "+17144505656"
STAFF_NUMBER = "+17144505657"
MAIN_LINE = "+15550001000"


@pytest.fixture(scope="module")
def cfg():
    return load_config(FIXTURE, {})


def variant(*replacements: tuple[str, str]):
    """The fixture with textual replacements (each must match exactly once)."""
    text = TEXT
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return parse_config(text, "apps.yaml", {})


def one(actions, kind):
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, actions
    return found[0]


def test_fixture_loads_with_only_file_and_inactive_warnings(cfg):
    paths = [w.path for w in cfg.warnings]
    assert paths == ["apps.customer.push.apns.key_file",
                     "apps.customer.push.fcm.service_account_file",
                     "apps.staff.push.fcm.service_account_file",
                     "apps.legacy",
                     "apps.legacy.push.fcm.service_account_file"]
    assert all(w.severity == "warning" for w in cfg.warnings)
    assert "inactive" in cfg.warnings[3].message
    assert cfg.routing.apps["customer"].menu == "cust"
    assert cfg.routing.apps["staff"].menu == "staff"
    assert not cfg.routing.apps["legacy"].active


# --------------------------------------------------------------------------- route_pstn


def test_user_segment_beats_phone_number(cfg):
    d = route_pstn(cfg.routing, MAIN_LINE, "+19995550000")
    assert (d.via, d.label, d.entry.kind, d.entry.menu) == (
        "segment", "segment:testers", "user-segment", "top")
    # the same caller is no tester: the phone-number access point applies
    d = route_pstn(cfg.routing, MAIN_LINE, "+18885550000")
    assert (d.via, d.label, d.entry.kind) == ("number", f"did:{MAIN_LINE}", "phone-number")


def test_user_segment_scoped_to_numbers_does_not_touch_the_app_number(cfg):
    d = route_pstn(cfg.routing, CUSTOMER_NUMBER, "+19995550000")
    assert (d.via, d.app) == ("app-fallback", "customer")


def test_phone_number_beats_app_fallback_number():
    c = variant(("access_points:\n", "access_points:\n"
                 f'  - {{type: phone-number, numbers: ["{CUSTOMER_NUMBER}"], menu: cust, '
                 "language: fr}\n"))
    d = route_pstn(c.routing, CUSTOMER_NUMBER, "+15551112222")
    assert (d.via, d.app, d.entry.menu, d.language) == ("number", None, "cust", "fr")


def test_app_fallback_number(cfg):
    for did in (CUSTOMER_NUMBER, CUSTOMER_NUMBER[1:], "+1 (714) 450-5656"):
        d = route_pstn(cfg.routing, did, "+15551112222")
        assert (d.via, d.app, d.entry, d.destination) == ("app-fallback", "customer", None, None)
        assert (d.label, d.language) == ("app:customer", "en")
    d = route_pstn(cfg.routing, STAFF_NUMBER, "")
    assert (d.via, d.app) == ("app-fallback", "staff")


def test_inactive_app_number_is_an_unknown_number():
    c = variant(("  legacy:                              # no mobile-app access point: inactive\n",
                 '  legacy:\n    fallback: {number: "+17144505658", threshold: 0.5}\n'),
                ("menus:\n", "routing:\n  unknown_number: message-then-hangup:bye\nmenus:\n"))
    assert c.routing.app_numbers["+17144505658"] == "legacy"
    d = route_pstn(c.routing, "+17144505658", "+15551112222")
    assert (d.via, d.app, d.entry) == ("unknown", None, None)
    assert d.destination == Destination("message-then-hangup", "bye")


def test_unknown_number_goes_to_routing_unknown_number():
    c = variant(("menus:\n", "routing:\n  unknown_number: message-then-hangup:bye\nmenus:\n"))
    d = route_pstn(c.routing, "+15559999999", "+19995550000")
    assert (d.via, d.label, d.entry) == ("unknown", "did:+15559999999", None)
    assert d.destination == Destination("message-then-hangup", "bye")
    assert route_pstn(c.routing, "", "").label == "did:unknown"


def test_plus_is_added_or_removed_to_match():
    c = variant(('    numbers: ["+15550001000"]\n    menu: top\n',
                 '    numbers: ["+15550001000", "15550002000"]\n    menu: top\n'))
    assert route_pstn(c.routing, "15550001000").entry.label == "did:+15550001000"
    assert route_pstn(c.routing, "+15550002000").entry.label == "did:15550002000"
    # the segment's callers and numbers match either way, too
    d = route_pstn(c.routing, "15550001000", "19995550000")
    assert d.via == "segment"


def test_segment_matching_rules():
    seg = Segment("s", "m", "en", frozenset({"+15551230000", "15551230000"}), ("+1999", "1999"),
                  frozenset({"+15550001000", "15550001000"}))
    assert seg.matches("15551230000") and seg.matches("+19990000000")
    assert not seg.matches("+15551230001") and not seg.matches("")
    assert seg.applies_to("+15550001000") and not seg.applies_to("+15550001001")
    assert Segment("s", "m", "en", frozenset(), ()).applies_to("+1234")


# --------------------------------------------------------------------------- after the token


@pytest.mark.parametrize("requested, language", [
    ("fr", "fr"), ("en", "en"), ("fr_CA", "fr"), ("de", "en"), (None, "en"), ("", "en"),
])
def test_after_token_matched_enters_app_menu_in_its_language(cfg, requested, language):
    d = route_pstn(cfg.routing, CUSTOMER_NUMBER, "+15551112222")
    r = after_token(cfg.routing, d, True, requested)
    assert (r.via, r.app, r.entry.menu, r.entry.kind, r.language) == (
        "app", "customer", "cust", "mobile-app", language)
    assert r.entry.language == language


def test_language_for_uses_the_app_default_first_in_languages():
    c = variant(("    languages: [en, fr]\n", "    languages: [fr, en]\n"))
    app = c.routing.apps["customer"]
    assert app.default_language == "fr"
    assert [app.language_for(x) for x in ("de", "en_GB", None, "fr_BE")] == ["fr", "en", "fr", "fr"]


def test_after_token_not_matched_on_blocking_app(cfg):
    d = route_pstn(cfg.routing, CUSTOMER_NUMBER, "+15551112222")
    r = after_token(cfg.routing, d, False, "fr")
    assert (r.via, r.app, r.entry) == ("blocked", "customer", None)
    assert r.destination == Destination("message-then-hangup", "outside-blocked")
    assert str(r.destination) == "message-then-hangup:outside-blocked"


def test_after_token_not_matched_on_non_blocking_app_enters_as_ordinary_caller():
    c = variant(("    languages: [en, fr]\n", "    languages: [fr, en]\n"),
                ("      enabled: true\n      message: outside-blocked\n",
                 "      enabled: false\n"))
    d = route_pstn(c.routing, CUSTOMER_NUMBER, "+15551112222")
    r = after_token(c.routing, d, False, "en")  # the requested language does not apply
    assert (r.via, r.app, r.entry.menu, r.language, r.destination) == (
        "app-outside", "customer", "cust", "fr", None)
    assert outside_app(c.routing, "customer") == r


def test_route_app_for_unknown_or_inactive_app(cfg):
    for name in ("legacy", "nope"):
        d = route_app(cfg.routing, name, "fr")
        assert (d.via, d.entry, d.destination) == ("unknown", None, cfg.routing.unknown)


# --------------------------------------------------------------------------- plan_call


@pytest.fixture
def customer(cfg):
    return cfg.routing.apps["customer"]  # threshold 0.6


def test_plan_inactive_app_is_409(cfg):
    with pytest.raises(PlanError) as exc:
        plan_call(cfg.routing.apps["legacy"], 0.9)
    assert exc.value.status == 409 and "legacy" in exc.value.detail


@pytest.mark.parametrize("score, mode", [(0.61, "voip"), (1.0, "voip"), (0.6, "pstn"),
                                         (0.59, "pstn"), (0.0, "pstn")])
def test_plan_score_against_threshold(customer, score, mode):
    plan = plan_call(customer, score)
    assert plan.mode == mode
    assert plan.number == (CUSTOMER_NUMBER if mode == "pstn" else None)


def test_plan_threshold_1_is_always_pstn(cfg):
    staff = cfg.routing.apps["staff"]
    assert staff.threshold == 1
    for score in (0.0, 0.99, 1.0):
        assert plan_call(staff, score) == plan_call(staff, 1.0)
        assert plan_call(staff, score).mode == "pstn"
        assert plan_call(staff, score).number == STAFF_NUMBER


def test_plan_threshold_0_is_voip_above_zero(customer):
    app = dataclasses.replace(customer, threshold=0.0)
    assert plan_call(app, 0.01).mode == "voip"
    assert plan_call(app, 0.0).mode == "pstn"


def test_plan_without_data_path_is_pstn(customer):
    plan = plan_call(customer, 1.0, data_path=False)
    assert (plan.mode, plan.number) == ("pstn", CUSTOMER_NUMBER)


def test_plan_without_fallback_number(customer):
    app = dataclasses.replace(customer, fallback_number=None, threshold=None)
    assert plan_call(app, 0.0).mode == "voip"
    assert plan_call(app, 0.0).number is None
    with pytest.raises(PlanError) as exc:
        plan_call(app, 0.0, data_path=False)
    assert exc.value.status == 409 and exc.value.title == "No fallback number"


@pytest.mark.parametrize("score", [-0.01, 1.01, float("nan"), 5])
def test_plan_score_outside_0_1_is_422(customer, score):
    with pytest.raises(PlanError) as exc:
        plan_call(customer, score)
    assert exc.value.status == 422


# --------------------------------------------------------------------------- tokens


def draws(*values):
    it = iter(values)
    calls = []

    def randbelow(n):
        calls.append(n)
        return next(it)

    return randbelow, calls


def test_draw_token_zero_pads():
    rb, calls = draws(42, 5)
    assert draw_token(6, rb) == "000042"
    assert calls == [10 ** 6]
    assert draw_token(4, rb) == "0005"


def test_no_new_token_when_half_the_space_is_taken():
    check_room(4, 1)  # 4 of 10 taken: still fine
    with pytest.raises(PlanError) as exc:
        check_room(5, 1)
    assert exc.value.status == 503


def test_dial_string():
    assert dial_string("+17144505656", "482913") == "+17144505656,,482913#"


# --------------------------------------------------------------------------- custom data


def test_clean_custom_data_converts_simple_values():
    assert clean_custom_data(None) == {}
    assert clean_custom_data({"a": True, "b": False, "c": 12, "d": 1.5, "e": "x",
                              "F_9": ""}) == {
        "a": "true", "b": "false", "c": "12", "d": "1.5", "e": "x", "F_9": ""}
    assert clean_custom_data({"k" * 32: "v"}) == {"k" * 32: "v"}


@pytest.mark.parametrize("data, words", [
    ({"9lives": "x"}, "custom_data key '9lives'"),
    ({"k" * 33: "x"}, f"custom_data key '{'k' * 33}'"),
    ({"a-b": "x"}, "custom_data key 'a-b'"),
    ({"order": {"id": 1}}, "custom_data.order: only strings, numbers and booleans"),
    ({"items": [1, 2]}, "custom_data.items: only strings, numbers and booleans"),
    ({"note": None}, "custom_data.note: only strings, numbers and booleans"),
    ({f"k{i}": "v" for i in range(21)}, "custom_data has 21 keys; at most 20"),
    ({"long": "x" * 257}, "custom_data.long: at most 256 printable characters"),
    ({"ctl": "a\nb"}, "custom_data.ctl: at most 256 printable characters"),
    ({"ctl": "a\x00b"}, "custom_data.ctl: at most 256 printable characters"),
    (["a"], "custom_data must be an object"),
])
def test_clean_custom_data_rejects_bad_fields(data, words):
    with pytest.raises(ValueError) as exc:
        clean_custom_data(data)
    assert words in str(exc.value)


def test_clean_custom_data_limits_are_inclusive():
    data = {f"k{i}": "x" * 256 for i in range(20)}
    assert clean_custom_data(data) == data


@pytest.mark.parametrize("value", ["a\x7fb", "a\x85b", "a\x9bb"])
def test_clean_custom_data_rejects_del_and_c1_controls(value):
    with pytest.raises(ValueError, match=r"custom_data\.ctl"):
        clean_custom_data({"ctl": value})


# --------------------------------------------------------------------------- transfers


def test_structure_queues_of_the_fixture(cfg):
    q = cfg.routing.queues_by_root
    assert q["cust"] == {"sales", "billing"}
    assert q["staff"] == {"support", "operator"}  # operator via dial0 queue


def test_transfer_to_an_endpoint_is_allowed_anywhere(cfg):
    q = cfg.routing.queues_by_root
    for root, app in (("cust", "customer"), ("staff", "staff"), ("top", None), ("ghost", None)):
        assert check_transfer(q, root, app, Destination("endpoint", "agent-7")) is None


@pytest.mark.parametrize("root, app, queue", [
    ("cust", "customer", "sales"), ("cust", "customer", "billing"),
    ("staff", "staff", "support"), ("staff", "staff", "operator"), ("top", None, "operator"),
])
def test_transfer_to_a_queue_of_the_origin_structure(cfg, root, app, queue):
    assert check_transfer(cfg.routing.queues_by_root, root, app,
                          Destination("queue", queue)) is None


def test_transfer_to_a_queue_of_another_tree_is_403(cfg):
    q = cfg.routing.queues_by_root
    with pytest.raises(TransferRefused) as exc:
        check_transfer(q, "cust", "customer", Destination("queue", "support"))
    assert exc.value.status == 403
    assert exc.value.detail == ("queue 'support' is outside app 'customer''s tree (menu 'cust'), "
                                "where the call entered; queues allowed: billing, sales")
    with pytest.raises(TransferRefused) as exc:
        check_transfer(q, "cust", "customer", Destination("queue", "operator"))
    assert exc.value.status == 403 and "app 'customer'" in exc.value.detail
    with pytest.raises(TransferRefused) as exc:
        check_transfer(q, "staff", "staff", Destination("queue", "sales"))
    assert exc.value.status == 403 and "app 'staff'" in exc.value.detail
    with pytest.raises(TransferRefused) as exc:
        check_transfer(q, "top", None, Destination("queue", "sales"))
    assert exc.value.status == 403 and "menu 'top''s tree" in exc.value.detail


@pytest.mark.parametrize("dest", [Destination("voicemail", "1000@default"),
                                  Destination("menu", "cust"), Destination("hangup"),
                                  Destination("callback", "sales")])
def test_transfer_to_other_kinds_is_422(cfg, dest):
    with pytest.raises(TransferRefused) as exc:
        check_transfer(cfg.routing.queues_by_root, "cust", "customer", dest)
    assert exc.value.status == 422 and dest.kind in exc.value.detail


# --------------------------------------------------------------------------- app messages


def first_play(tree, menu, language, app):
    s = IvrRuntime(tree, menu, language, f"app:{app}" if app else "did:x", "", app=app)
    acts = s.start(NOW)
    assert isinstance(acts[0], Answer)
    p = one(acts, Play)
    return p.media, p.language


@pytest.mark.parametrize("language, media, lang", [
    ("fr", "sound:digits/5", "fr"),       # the app's own French override
    ("fr_CA", "sound:digits/5", "fr"),    # base language of the app override
    ("en", "sound:digits/2", "en"),       # no app override in en: the engine's en
    ("de", "sound:digits/2", "en"),       # app default (en) not overridden → engine default
])
def test_app_override_then_engine(cfg, language, media, lang):
    assert first_play(cfg.tree, "cust", language, "customer") == ((media,), lang)


def test_the_override_belongs_to_its_app_only(cfg):
    assert first_play(cfg.tree, "cust", "fr", None) == (("sound:digits/3",), "fr")
    assert first_play(cfg.tree, "cust", "fr", "staff") == (("sound:digits/3",), "fr")


def test_language_the_app_lacks_falls_back_to_the_app_default_first():
    c = variant(("    languages: [en, fr]\n", "    languages: [fr, en]\n"))
    assert first_play(c.tree, "cust", "de", "customer") == (("sound:digits/5",), "fr")
    # without the app: the engine's default language
    assert first_play(c.tree, "cust", "de", None) == (("sound:digits/2",), "en")


def test_message_the_app_does_not_override_is_the_engine_one():
    c = variant(("  m-cust-sub: {en: digits/4}\n", "  m-cust-sub: {en: digits/4, fr: digits/7}\n"))
    assert first_play(c.tree, "cust-sub", "fr", "customer") == (("sound:digits/7",), "fr")
    assert first_play(c.tree, "cust-sub", "fr_CA", "customer") == (("sound:digits/7",), "fr")
    assert first_play(c.tree, "cust-sub", "de", "customer") == (("sound:digits/4",), "en")
    assert first_play(c.tree, "cust-sub", "en", "customer") == (("sound:digits/4",), "en")


def test_app_only_message_is_resolved_for_the_app():
    c = variant(("      m-cust: {fr: digits/5}           # the app's own French prompt overrides "
                 "the engine's\n",
                 "      m-cust: {fr: digits/5}\n      own: {en: digits/8, fr: tone:busy}\n"))
    m = c.tree.messages
    assert m.resolve("own", "fr", "customer").media == ("tone:busy",)
    assert m.resolve("own", "de", "customer").media == ("sound:digits/8",)
    assert m.has("own", "customer") and not m.has("own", "staff") and "own" not in m
    with pytest.raises(KeyError):
        m.resolve("own", "en", "staff")


# --------------------------------------------------------------------------- dial-0 in app trees


def walk_app(cfg, keys, app="customer", language="fr"):
    return simulate(cfg.tree, route_app(cfg.routing, app, language), caller="+15551112222",
                    keys=parse_dtmf(keys), at=NOW)


def test_dial0_top_in_app_sub_menu_returns_to_app_menu(cfg):
    r = walk_app(cfg, "2 0")
    assert (r["via"], r["app"], r["language"]) == ("app", "customer", "fr")
    assert r["path"] == ["cust", "cust-sub", "cust"]
    assert "top" not in r["path"]
    assert r["prompts"] == ["sound:digits/5", "sound:digits/4", "sound:digits/5"]
    assert r["destination"] == {"type": "caller-hangup", "target": None}


def test_dial0_parent_at_the_app_top_level_menu_stays(cfg):
    r = walk_app(cfg, "0")
    assert r["path"] == ["cust"]
    assert r["prompts"] == ["sound:digits/5", "sound:digits/5"]
    r = walk_app(cfg, "0 0 1")
    assert r["path"] == ["cust"] and r["destination"] == {"type": "queue", "target": "sales"}


def test_star_in_app_sub_menu_and_hand_off_keeps_app(cfg):
    r = walk_app(cfg, "2 * 2 1")
    assert r["path"] == ["cust", "cust-sub", "cust", "cust-sub"]
    assert r["destination"] == {"type": "queue", "target": "billing"}
    r = walk_app(cfg, "0", app="staff", language="en")
    assert r["path"] == ["staff"]
    assert r["destination"] == {"type": "queue", "target": "operator"}


# --------------------------------------------------------------------------- API transfer


def test_transfer_while_a_prompt_plays_stops_it_then_hands_off(cfg):
    s = IvrRuntime(cfg.tree, "cust", "fr", "app:customer", "+15551112222", app="customer")
    start = s.start(NOW)
    v = dict(next(a for a in start if isinstance(a, SetVariables)).variables)
    assert v["IVR_APP"] == "customer" and v["IVR_LANGUAGE"] == "fr"
    p = one(start, Play)
    acts = s.transfer(Destination("queue", "billing"), NOW)
    assert acts == [StopPlayback(p.token), SetVariables((("IVR_PATH", "cust"),)),
                    HandOff(Destination("queue", "billing"))]
    assert s.finished and s.destination == Destination("queue", "billing")
    # the stopped playback's late event is ignored; a second transfer does nothing
    assert s.playback_finished(p.token, NOW) == []
    assert s.transfer(Destination("endpoint", "agent-7"), NOW) == []


def test_transfer_while_waiting_for_a_key_cancels_the_timer(cfg):
    s = IvrRuntime(cfg.tree, "cust", "fr", "app:customer", "", app="customer")
    p = one(s.start(NOW), Play)
    c = one(s.playback_finished(p.token, NOW), Collect)
    acts = s.transfer(Destination("endpoint", "agent-7"), NOW)
    assert acts[0] == CancelTimer(c.token)
    assert not any(isinstance(a, StopPlayback) for a in acts)
    assert acts[-1] == HandOff(Destination("endpoint", "agent-7"))
    assert s.timer_fired(c.token, NOW) == []


def test_transfer_into_a_menu_plays_its_prompt(cfg):
    s = IvrRuntime(cfg.tree, "cust", "fr", "app:customer", "", app="customer")
    p = one(s.start(NOW), Play)
    acts = s.transfer(Destination("menu", "cust-sub"), NOW)
    assert acts[0] == StopPlayback(p.token)
    assert one(acts, Play).media == ("sound:digits/4",)
    assert s.path == ["cust", "cust-sub"] and not s.finished


# --------------------------------------------------------------------------- verified users

VIP = """  - type: user-segment
    name: vip
    app: customer
    users: [alice]
    menu: top
"""


def test_a_segment_of_verified_users_takes_their_calls_only_when_verified():
    cfg = parse_config(TEXT.replace("access_points:\n", "access_points:\n" + VIP, 1),
                       "apps.yaml", {})
    vip = route_app(cfg.routing, "customer", "fr", user="alice")
    assert (vip.via, vip.label, vip.entry.menu, vip.app, vip.language) == (
        "segment", "segment:vip", "top", "customer", "fr")
    # the same call without a verified user (an anonymous plan): the app's own tree
    assert route_app(cfg.routing, "customer", "fr").entry.menu == "cust"
    assert route_app(cfg.routing, "customer", user="bob").entry.menu == "cust"
    assert route_app(cfg.routing, "staff", user="alice").entry.menu == "staff"  # per app
    # a matched token or offline code carrying alice
    pstn = route_pstn(cfg.routing, CUSTOMER_NUMBER, "+15550009999")
    assert after_token(cfg.routing, pstn, True, None, "alice").label == "segment:vip"
    # a number never matches a segment of users: callers can spoof numbers
    assert route_pstn(cfg.routing, MAIN_LINE, "alice").via == "number"
