"""Push-then-wait, the pure parts: plans, RFC 8599 parsing, users config, the runtime."""

from __future__ import annotations

import datetime as dt

import pytest

from ivr_engine.config import ConfigError, parse_config
from ivr_engine.ivr.actions import HandOff, Play, RingUser, SetVariables
from ivr_engine.ivr.destinations import Destination
from ivr_engine.ivr.runtime import IvrRuntime
from ivr_engine.wakeup.contacts import aor_of, parse_push_params
from ivr_engine.wakeup.plan import UserSpec, WakeSettings, plan_wakeup

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)

BASE = """\
engine:
  ari: {password: x}
messages:
  hello: {en: hello-world}
  wait-msg: {en: one-moment-please}
wakeup:
  mobile_loops: 3
  uc_mobile_loops: 2
  interval_seconds: 5
apps:
  app1:
    android_id: com.example.one
    push: {fcm: {service_account_file: sa.json}}
users:
  alice:
    ringing_device: mobile
    mobile_endpoint: alice
    app: app1
    no_answer: queue:support
  bob:
    ringing_device: uc+mobile
    mobile_endpoint: bob-mobile
    uc_endpoint: bob-desk
    app: app1
    wakeup: {interval_seconds: 2, hold: ringback, message: wait-msg}
  carol:
    ringing_device: uc
    uc_endpoint: carol
menus:
  main:
    prompt: hello
    options: {"1": "user:alice", "2": "user:bob", "3": "user:carol"}
access_points:
  - {type: phone-number, numbers: ["+15550001111"], menu: main}
  - {type: mobile-app, app: app1, menu: main}
"""


def spec(device: str, **wake) -> UserSpec:
    return UserSpec("u", device, "m" if device != "uc" else None,
                    "d" if device != "mobile" else None, "app1", WakeSettings(**wake))


@pytest.mark.parametrize("device, reachable, expect", [
    ("mobile", False, (False, False, True, 15.0, "no-answer")),
    ("mobile", True, (False, True, False, 0.0, "no-answer")),    # registered: ring, no push
    ("uc", False, (True, False, False, 0.0, "no-answer")),
    ("uc+mobile", False, (True, False, True, 15.0, "uc-alone")),  # UC rings at once
    ("uc+mobile", True, (True, True, False, 0.0, "uc-alone")),
])
def test_plan(device, reachable, expect):
    p = plan_wakeup(spec(device), reachable)
    assert (p.ring_uc, p.ring_mobile, p.push, p.wait_seconds, p.after_wait) == expect
    assert p.ring_seconds == 30


def test_plan_budget_is_loops_times_interval_per_device():
    assert plan_wakeup(spec("mobile", mobile_loops=4, interval_seconds=2.5), False) \
        .wait_seconds == 10.0
    assert plan_wakeup(spec("uc+mobile", uc_mobile_loops=2, interval_seconds=3), False) \
        .wait_seconds == 6.0


@pytest.mark.parametrize("uri, expect", [
    ("<sip:alice@127.0.0.1:5070;pn-provider=apns;pn-prid=ab12cd34ef56ab12;"
     "pn-param=TEAM.com.example.app.voip>", ("apns", "ab12cd34ef56ab12", "ios", True)),
    ("sip:alice@127.0.0.1:5070;pn-provider=apns;pn-prid=ab12cd34ef56ab12;"
     "pn-param=TEAM.com.example.app", ("apns", "ab12cd34ef56ab12", "ios", False)),
    ("sip:alice@h;transport=udp;PN-Provider=fcm;pn-prid=dGVzdC10b2tlbg%3A1;pn-param=proj",
     ("fcm", "dGVzdC10b2tlbg:1", "android", False)),
])
def test_rfc8599_params(uri, expect):
    b = parse_push_params(uri)
    assert b is not None and (b.provider, b.prid, b.platform, b.voip) == expect


@pytest.mark.parametrize("uri", [
    "sip:alice@127.0.0.1:5070", "sip:a@h;pn-provider=apns", "sip:a@h;pn-prid=abcdefgh1234",
    "sip:a@h;pn-provider=webpush;pn-prid=abcdefgh1234", "sip:a@h;pn-provider=fcm;pn-prid=x y",
])
def test_rfc8599_absent_or_unusable(uri):
    assert parse_push_params(uri) is None


def test_aor_of():
    assert aor_of("alice") == "alice" and aor_of("sip:alice@127.0.0.1") == "alice"


def test_users_compile_with_overrides_and_default_no_answer():
    cfg = parse_config(BASE, "t.yaml", {})
    bob = cfg.users["bob"]
    assert bob.wake == WakeSettings(3, 2, 2.0, "ringback", "default", "wait-msg", 30)
    assert cfg.users["alice"].wake.interval_seconds == 5.0
    assert cfg.tree.no_answer["alice"] == Destination("queue", "support")
    assert cfg.tree.no_answer["carol"] == Destination("voicemail", "carol@default")


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "t.yaml", {})
    return [str(i) for i in exc.value.issues if i.severity == "error"]


def line(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


@pytest.mark.parametrize("old, new, path, words", [
    ("    mobile_endpoint: alice\n", "", "users.alice", "needs mobile_endpoint"),
    ("    app: app1\n    no_answer: queue:support\n", "    no_answer: queue:support\n",
     "users.alice", "needs app"),
    ("    uc_endpoint: carol\n", "", "users.carol", "needs uc_endpoint"),
    ("    mobile_endpoint: bob-mobile\n", "    mobile_endpoint: alice\n",
     "users.bob.mobile_endpoint", "already the mobile endpoint of user 'alice'"),
    ("    no_answer: queue:support\n", "    no_answer: menu:main\n", "users.alice.no_answer",
     "no_answer cannot be menu"),
    ("    no_answer: queue:support\n", "    no_answer: message-then-hangup:nope\n",
     "users.alice.no_answer", "message 'nope' is not defined"),
    ("message: wait-msg}", "message: nope}", "users.bob.wakeup.message",
     "message 'nope' is not defined"),
    ("    app: app1\n    no_answer", "    app: app9\n    no_answer", "users.alice.app",
     "app 'app9' is not defined under apps"),
])
def test_user_rules(old, new, path, words):
    text = BASE.replace(old, new, 1)
    assert text != BASE
    errs = errors(text)
    assert any(f": {path}: " in e and words in e for e in errs), errs


def test_a_user_not_under_users_is_a_warning_it_may_be_a_database_user():
    """Issue 19: users may live in the database, which the file alone cannot see: a user:
    destination naming a user not under users: is a warning (``ivr-engine check`` then looks
    in the database), no longer an error."""
    text = BASE.replace('"3": "user:carol"', '"3": "user:dave"', 1)
    cfg = parse_config(text, "t.yaml", {})
    where = line(text, '"3": "user:dave"')
    assert [str(w) for w in cfg.warnings if "dave" in w.message] == [
        f"t.yaml:{where}: menus.main.options.3: warning: user 'dave' is not under users: it "
        "must be a database user (users API, `ivr-engine users`)"]
    assert [i.path for i in cfg.user_refs["dave"]] == ["menus.main.options.3"]
    assert cfg.user_lines["alice"] == line(text, "  alice:")


def test_wakeup_settings_bounds():
    errs = errors(BASE.replace("interval_seconds: 5", "interval_seconds: 0"))
    assert any("wakeup.interval_seconds" in e for e in errs)
    errs = errors(BASE.replace("  mobile_loops: 3", "  mobile_loops: 0"))
    assert any("wakeup.mobile_loops" in e for e in errs)


# ---------------------------------------------------------------------------- runtime


def ringing_session():
    cfg = parse_config(BASE, "t.yaml", {})
    s = IvrRuntime(cfg.tree, "main", "en", "did:+15550001111", "+15550009999")
    p = next(a for a in s.start(NOW) if isinstance(a, Play))
    s.playback_finished(p.token, NOW)
    acts = s.digit("1", NOW)
    ring = acts[-1]
    assert isinstance(ring, RingUser) and ring.user == "alice"
    # IVR_PATH was published when the menu waited; only the destination is new
    assert SetVariables((("IVR_DESTINATION", "user:alice"),)) in acts
    return s, ring


def test_ringing_ignores_keys_and_stale_tokens():
    s, ring = ringing_session()
    assert s.digit("2", NOW) == [] and not s.finished
    assert s.ring_finished("r999", False, NOW) == []


def test_ring_answered_ends_the_ivr_part():
    s, ring = ringing_session()
    assert s.ring_finished(ring.token, True, NOW) == []
    assert s.finished and s.destination == Destination("user", "alice")


def test_ring_unanswered_goes_to_the_users_no_answer_destination():
    s, ring = ringing_session()
    acts = s.ring_finished(ring.token, False, NOW)
    assert acts[-1] == HandOff(Destination("queue", "support"))
    assert s.destination == Destination("queue", "support")


def test_transfer_while_ringing():
    s, ring = ringing_session()
    acts = s.transfer(Destination("endpoint", "desk-9"), NOW)
    assert acts[-1] == HandOff(Destination("endpoint", "desk-9"))
    assert s.ring_finished(ring.token, False, NOW) == []  # the old ring is forgotten


def test_simulate_stops_at_a_user_destination():
    from ivr_engine.ivr.simulate import simulate
    from ivr_engine.routing.entry import route_pstn

    cfg = parse_config(BASE, "t.yaml", {})
    r = simulate(cfg.tree, route_pstn(cfg.routing, "+15550001111"), caller="x", keys=["2"],
                 at=NOW)
    assert r["destination"] == {"type": "user", "target": "bob"}

