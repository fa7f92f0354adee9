"""The pure IVR state machine, event by event."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ivr_engine.config import load_config, parse_config
from ivr_engine.ivr.actions import (
    Answer,
    CancelTimer,
    Collect,
    HandOff,
    Hangup,
    Play,
    RecordCallback,
    SetVariables,
    StopPlayback,
)
from ivr_engine.ivr.destinations import Destination
from ivr_engine.ivr.runtime import IvrRuntime
from ivr_engine.ivr.simulate import parse_dtmf, simulate
from ivr_engine.routing.entry import route_pstn

FIXTURE = Path(__file__).parent.parent / "fixtures" / "ivr.yaml"
UTC = dt.timezone.utc
MONDAY_NOON = dt.datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 12:00 in New York


@pytest.fixture(scope="module")
def cfg():
    return load_config(FIXTURE, {})


def session(cfg, menu="top", language="en") -> IvrRuntime:
    return IvrRuntime(cfg.tree, menu, language, "did:100", "+15551112222")


def plays(actions):
    return [a for a in actions if isinstance(a, Play)]


def one(actions, kind):
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, actions
    return found[0]


def walk(cfg, did, keys, at=MONDAY_NOON):
    d = route_pstn(cfg.routing, did, "+15551112222")
    return simulate(cfg.tree, d, caller="+1555", keys=parse_dtmf(keys), at=at)


def test_start_answers_plays_prompt_with_barge_in_then_publishes_wait(cfg):
    s = session(cfg)
    acts = s.start(MONDAY_NOON)
    assert isinstance(acts[0], Answer)
    p = one(acts, Play)
    assert p.media == ("sound:digits/1",) and p.interruptible and p.language == "en"
    acts = s.playback_finished(p.token, MONDAY_NOON)
    # path and "waiting" are published only when the caller really waits
    assert acts[0] == SetVariables((("IVR_PATH", "top"), ("IVR_AWAITING", "top:1")))
    c = one(acts, Collect)
    assert (c.menu, c.seconds, c.seq) == ("top", 1.0, 1)


def test_key_during_prompt_stops_playback_then_navigates(cfg):
    s = session(cfg)
    p = one(s.start(MONDAY_NOON), Play)
    acts = s.digit("1", MONDAY_NOON)
    assert acts[0] == StopPlayback(p.token)
    assert one(acts, Play).media == ("sound:digits/2",)
    assert s.path == ["top", "a"]
    # the stopped playback's late PlaybackFinished is ignored
    assert s.playback_finished(p.token, MONDAY_NOON) == []


def test_key_while_collecting_cancels_timer_and_stale_timer_is_ignored(cfg):
    s = session(cfg)
    p = one(s.start(MONDAY_NOON), Play)
    c = one(s.playback_finished(p.token, MONDAY_NOON), Collect)
    acts = s.digit("2", MONDAY_NOON)
    assert acts[0] == CancelTimer(c.token)
    assert one(acts, HandOff).destination == Destination("queue", "support")
    assert s.finished and s.timer_fired(c.token, MONDAY_NOON) == []
    assert s.digit("1", MONDAY_NOON) == []


def test_call_variables_are_set_once_and_handoff_is_a_single_action(cfg):
    s = session(cfg)
    start = s.start(MONDAY_NOON)
    v = dict(next(a for a in start if isinstance(a, SetVariables)).variables)
    assert v == {"IVR_ENTRY": "did:100", "IVR_LANGUAGE": "en"}
    p = one(start, Play)
    s.playback_finished(p.token, MONDAY_NOON)
    acts = s.digit("3", MONDAY_NOON)
    # IVR_PATH=top was published when the menu waited: not sent again
    assert acts[1:] == [HandOff(Destination("voicemail", "1000@default"))]
    assert s.destination == Destination("voicemail", "1000@default") and s.finished


def test_non_interruptible_message_ignores_keys_then_hangs_up(cfg):
    s = session(cfg)
    p = one(s.start(MONDAY_NOON), Play)
    s.playback_finished(p.token, MONDAY_NOON)
    bye = one(s.digit("9", MONDAY_NOON), Play)
    assert bye.media == ("sound:digits/9",) and not bye.interruptible
    assert s.digit("1", MONDAY_NOON) == []
    assert s.playback_finished(bye.token, MONDAY_NOON) == [Hangup()]
    assert s.destination == Destination("message-then-hangup", "bye")


@pytest.mark.parametrize("keys, path, prompts_tail, dest", [
    ("1 *", ["top", "a", "top"], ["sound:digits/1"], "caller-hangup"),          # * → parent
    ("*", ["top"], ["sound:digits/1", "sound:digits/1"], "caller-hangup"),      # * at top repeats
    ("1 #", ["top", "a"], ["sound:digits/2", "sound:digits/2"], "caller-hangup"),  # # repeats
    ("0", ["top"], [], "queue:operator"),                                       # dial0 queue
    ("1 0", ["top", "a", "top"], [], "caller-hangup"),                          # dial0 parent
    ("1 1 0", ["top", "a", "b", "top"], [], "caller-hangup"),                   # dial0 top
    ("1 2 0", ["top", "a", "stay"], ["sound:digits/4", "sound:digits/4"], "caller-hangup"),
    ("1 3 0", ["top", "a", "disabled"], ["sound:beep", "sound:digits/5"], "caller-hangup"),
])
def test_star_hash_and_dial0_policies(cfg, keys, path, prompts_tail, dest):
    r = walk(cfg, "100", keys)
    assert r["path"] == path
    if prompts_tail:
        assert r["prompts"][-len(prompts_tail):] == prompts_tail
    got = r["destination"]
    assert (got["type"] + (":" + got["target"] if got["target"] else "")) == dest


def test_dial0_parent_at_top_level_stays(cfg):
    # 'direct' has dial0 disabled by default; build a top-level menu with dial0 parent
    text = FIXTURE.read_text().replace("  direct:\n    prompt: m-direct\n",
                                       "  direct:\n    prompt: m-direct\n    dial0: parent\n")
    c = parse_config(text, "t.yaml", {})
    r = walk(c, "+33100000200", "0")
    assert r["path"] == ["direct"] and r["prompts"] == ["sound:digits/8"] * 2


def test_invalid_and_timeout_counters_are_separate(cfg):
    # one invalid + one timeout: neither counter (max 2) is exhausted
    r = walk(cfg, "100", "8 t")
    assert r["destination"]["type"] == "caller-hangup"
    assert r["prompts"] == ["sound:digits/1", "sound:beep", "sound:digits/1",
                            "sound:digits/0", "sound:digits/1"]
    # second timeout exhausts max_timeouts → on_timeout (inherited on_exhausted)
    r = walk(cfg, "100", "8 t t")
    assert r["destination"] == {"type": "message-then-hangup", "target": "bye"}
    # second invalid exhausts max_invalid
    r = walk(cfg, "100", "8 t 8")
    assert r["destination"] == {"type": "message-then-hangup", "target": "bye"}
    assert r["prompts"][-1] == "sound:digits/9"


def test_counters_reset_on_entering_another_menu(cfg):
    r = walk(cfg, "100", "8 1 8 *")  # invalid at top, go to a, invalid at a, back to top
    assert r["path"] == ["top", "a", "top"]
    assert r["destination"]["type"] == "caller-hangup"


def test_menu_specific_on_invalid(cfg):
    r = walk(cfg, "+33100000200", "5 5")
    assert r["destination"] == {"type": "queue", "target": "operator"}
    assert r["language"] == "fr"
    # m-direct has only English: falls back to the default language
    assert r["prompts"][0] == "sound:digits/8"


def test_after_hours_message_then_destination(cfg):
    r = walk(cfg, "100", "5")
    assert r["path"] == ["top", "closed"]
    assert r["prompts"][-1] == "sound:digits/6"
    assert r["destination"] == {"type": "voicemail", "target": "2000@default"}


@pytest.mark.parametrize("at, open_", [
    (dt.datetime(2026, 11, 23, 14, 0, tzinfo=UTC), True),    # Mon 09:00 New York
    (dt.datetime(2026, 11, 23, 13, 59, tzinfo=UTC), False),  # Mon 08:59 New York
    (dt.datetime(2026, 11, 23, 22, 0, tzinfo=UTC), False),   # Mon 17:00 NY: end is exclusive
    (dt.datetime(2026, 11, 28, 16, 0, tzinfo=UTC), False),   # Saturday
    (dt.datetime(2026, 12, 25, 16, 0, tzinfo=UTC), False),   # Friday, but closed date
    (dt.datetime(2026, 12, 26, 16, 0, tzinfo=UTC), True),    # Saturday, exceptional opening
    (dt.datetime(2026, 12, 26, 17, 0, tzinfo=UTC), False),   # ... until 12:00
    (dt.datetime(2026, 7, 6, 13, 30, tzinfo=UTC), True),     # summer time: 09:30 EDT
])
def test_schedule_in_its_own_timezone(cfg, at, open_):
    r = walk(cfg, "100", "7 1", at=at)
    assert r["destination"] == ({"type": "queue", "target": "sales"} if open_
                                else {"type": "queue", "target": "operator"})


def test_callback_records_then_thanks_then_hangs_up(cfg):
    s = session(cfg)
    p = one(s.start(MONDAY_NOON), Play)
    s.playback_finished(p.token, MONDAY_NOON)
    acts = s.digit("4", MONDAY_NOON)
    rec = one(acts, RecordCallback)
    assert (rec.queue, rec.caller, rec.path) == ("support", "+15551112222", ("top",))
    thanks = one(acts, Play)
    assert thanks.media == ("sound:beep", "sound:digits/9")
    assert s.playback_finished(thanks.token, MONDAY_NOON) == [Hangup()]


def test_unknown_number_and_plus_normalisation(cfg):
    assert walk(cfg, "+15550009999", "")["destination"] == {
        "type": "message-then-hangup", "target": "bye"}
    assert walk(cfg, "15550001000", "")["entry"] == "did:+15550001000"
    assert walk(cfg, "+100", "")["entry"] == "did:100"


def test_after_hours_loop_is_cut(cfg):
    text = FIXTURE.read_text().replace("access_points:\n", """access_points:
  - {type: phone-number, numbers: ["+15550007777"], menu: loop1}
""")
    text = text.replace("access_points:", """  loop1:
    prompt: m-a
    options: {"1": menu:loop2}
    schedule: never-open
    after_hours: {destination: "menu:loop2"}
  loop2:
    prompt: m-a
    schedule: never-open
    after_hours: {destination: "menu:loop1"}
access_points:""")
    c = parse_config(text, "t.yaml", {})
    r = walk(c, "+15550007777", "")
    assert r["destination"] == {"type": "hangup", "target": None}
    assert len(r["path"]) == 16


def test_parse_dtmf():
    assert parse_dtmf("1 2, *#t") == ["1", "2", "*", "#", "t"]
    with pytest.raises(ValueError, match="invalid keys 'x'"):
        parse_dtmf("1x")


def test_voicemail_message_per_app_and_language_before_the_box():
    text = FIXTURE.read_text().replace(
        "  callback_message: thanks\n", "  callback_message: thanks\n  voicemail_message: vm\n"
    ).replace("  bye: {en: digits/9}\n", "  bye: {en: digits/9}\n  vm: {en: vm-intro, fr: vm-intro-fr}\n")
    text += """
apps:
  app1:
    android_id: com.example.one
    push: {fcm: {service_account_file: sa.json}}
    languages: [fr, en]
    messages:
      vm: {fr: custom/app1-vm-fr}
"""
    text = text.replace("access_points:\n", "access_points:\n"
                        "  - {type: mobile-app, app: app1, menu: direct}\n", 1)
    cfg = parse_config(text, "t.yaml", {})
    for app, lang, expected in ((None, "en", "sound:vm-intro"), (None, "fr", "sound:vm-intro-fr"),
                                ("app1", "fr", "sound:custom/app1-vm-fr"),
                                # the app's default language (fr) comes before the engine's
                                ("app1", "en", "sound:custom/app1-vm-fr")):
        s = IvrRuntime(cfg.tree, "top", lang, "did:100", "", app)
        p = one(s.start(MONDAY_NOON), Play)
        s.playback_finished(p.token, MONDAY_NOON)
        vm = one(s.digit("3", MONDAY_NOON), Play)
        assert vm.media == (expected,) and not vm.interruptible, (app, lang)
        assert s.playback_finished(vm.token, MONDAY_NOON)[-1] == HandOff(
            Destination("voicemail", "1000@default"))


def test_path_is_published_before_the_box_after_the_voicemail_announcement():
    text = FIXTURE.read_text().replace(
        "  callback_message: thanks\n", "  callback_message: thanks\n  voicemail_message: vm\n"
    ).replace("  bye: {en: digits/9}\n", "  bye: {en: digits/9}\n  vm: {en: vm-intro}\n")
    cfg = parse_config(text, "t.yaml", {})
    s = IvrRuntime(cfg.tree, "top", "en", "did:100", "")
    one(s.start(MONDAY_NOON), Play)
    vm = one(s.digit("3", MONDAY_NOON), Play)  # barge-in: the path was never published
    assert s.playback_finished(vm.token, MONDAY_NOON) == [
        SetVariables((("IVR_PATH", "top"),)), HandOff(Destination("voicemail", "1000@default"))]
