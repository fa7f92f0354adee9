"""The `ivr-engine` command's offline parts: check, simulate, schema (run in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example.yaml"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "IVR_ARI_PASSWORD": "x", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ivr_engine.cli", *args], capture_output=True,
                          text=True, env=e, cwd=ROOT, timeout=60)


def test_check_ok_and_errors(tmp_path):
    r = cli("check", str(EXAMPLE))
    assert r.returncode == 0, r.stderr
    assert "ok — 9 menus (5 top-level), 3 numbers, 2 apps" in r.stdout
    bad = tmp_path / "bad.yaml"
    text = EXAMPLE.read_text().replace("    prompt: billing-menu\n",
                                       "    prompt: billing-menu\n    timout: 3\n", 1)
    bad.write_text(text)
    line = text.splitlines().index("    timout: 3") + 1
    r = cli("check", str(bad))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    lines = [x for x in lines if ": warning: " not in x]
    assert lines[0] == f"{bad}:{line}: menus.billing.timout: unknown key (check the spelling; " \
                       "`ivr-engine schema` lists every key)"
    assert lines[-1] == f"{bad}: 1 error"


def test_check_missing_file_and_missing_secret(tmp_path):
    r = cli("check", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "cannot read: No such file or directory" in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "IVR_ARI_PASSWORD"}
    r = subprocess.run([sys.executable, "-m", "ivr_engine.cli", "check", str(EXAMPLE)],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 2
    assert "engine.ari.password: environment variable IVR_ARI_PASSWORD is not set" in r.stderr


def test_simulate_json_shape():
    r = cli("simulate", str(EXAMPLE), "--did", "+15551230000", "--dtmf", "1 2 1",
            "--at", "2026-11-23T10:00", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["path"] == ["main", "sales", "billing"]
    assert out["destination"] == {"type": "queue", "target": "billing"}
    assert out["prompts"] == ["sound:basic-pbx-ivr-main", "sound:hello-world",
                              "sound:to-call-this-number", "sound:please-try-again"]
    assert out["at"] == "2026-11-23T10:00:00+01:00"  # naive --at is in engine.timezone


def test_simulate_after_hours_and_bad_input():
    r = cli("simulate", str(EXAMPLE), "--did", "+15551230000", "--dtmf", "1",
            "--at", "2026-12-25T10:00:00+01:00", "--json")
    assert json.loads(r.stdout)["destination"] == {"type": "voicemail", "target": "1000@default"}
    r = cli("simulate", str(EXAMPLE), "--did", "+15551230000", "--dtmf", "1x")
    assert r.returncode == 2 and "--dtmf: invalid keys 'x'" in r.stderr
    r = cli("simulate", str(EXAMPLE), "--did", "+15551230000", "--at", "yesterday")
    assert r.returncode == 2 and "is not an ISO-8601 time" in r.stderr


def test_schema_lists_keys():
    r = cli("schema")
    schema = json.loads(r.stdout)
    assert "menus" in schema["properties"] and "access_points" in schema["properties"]


def test_call_json_shape_from_the_call_record():
    """`call --json` prints LocalCall.as_dict(), built from the CallRecord of the call's
    dialplan side: simulate's keys (prompts, path, destination) plus the live call's own.
    Offline: the record is fed ARI events as Asterisk sends them."""
    from ivr_engine.ari import parse_event
    from ivr_engine.testing.caller import (HANG_UP, LocalCall, PressOnAwaiting, PressOnLevel,
                                           prompt_levels)

    call = LocalCall(None, "+15551230000", context="from-pstn", policy=None,  # type: ignore
                     caller="+15550001111", timeout=5, hold=0, post_dial="", variables=None,
                     formats="ulaw", silence=False, channel_id="c1", dtmf_ms=100)
    b = call.record.channel
    chan = {"id": b, "name": "Local/x", "state": "Up"}
    ts = "2026-11-23T10:00:00.{:03d}+0000"

    def ev(i: int, kind: str, **data) -> object:
        return parse_event({"type": kind, "application": "t", "timestamp": ts.format(i),
                            **data})

    def play(i: int, media: str) -> object:
        return ev(i, "PlaybackStarted", playback={"id": f"p{i}", "media_uri": media,
                                                  "target_uri": f"channel:{b}"})

    awaiting = ev(2, "ChannelVarset", channel=chan, variable="IVR_AWAITING", value="main:1")
    events = [play(1, "sound:basic-pbx-ivr-main"), awaiting,
              ev(4, "ChannelDtmfReceived", channel=chan, digit="1", duration_ms=100),
              play(5, "sound:hello-world"),
              ev(6, "ChannelVarset", channel=chan, variable="IVR_PATH", value="main/sales"),
              ev(7, "ChannelDialplan", channel=chan, dialplan_app="Queue",
                 dialplan_app_data="billing,,,,")]
    for i, e in enumerate(events):
        if i == 2:
            call.record.add("send", "1", now=1.5)
        call.record.observe(e, now=float(i))
    call.outcome = "handoff"
    out = call.as_dict()
    assert list(out) == ["did", "caller", "channel", "prompts", "path", "destination",
                         "declared_destination", "fallback", "keys_used", "key_latencies_ms",
                         "dialplan", "dial_status", "duration_ms"]
    assert out["prompts"] == ["sound:basic-pbx-ivr-main", "sound:hello-world"]
    assert out["path"] == ["main", "sales"]
    assert out["destination"] == {"type": "queue", "target": "billing"}
    assert out["dialplan"] == [["Queue", "billing,,,,"]] and out["fallback"] is False
    assert out["key_latencies_ms"] == [1500.0] and out["channel"] == "c1-ivr"
    assert [k for _, _, k, _ in call.record.timeline] == ["prompt", "var", "send", "key",
                                                          "prompt", "var", "app"]
    assert call.record.first("key") == 2.0 and call.record.keys == ["1"]
    json.dumps(out)
    # a call the engine ends: its declared destination, confirmed by the hang-up
    call.record.dialplan.clear()
    call.record.variables["IVR_DESTINATION"] = "message-then-hangup:bye"
    call.outcome = "hangup"
    assert call.as_dict()["destination"] == {"type": "message-then-hangup", "target": "bye"}
    # the key policies: on IVR_AWAITING (hang up when none is left), on a level's prompt
    on_wait = PressOnAwaiting(["2"])
    assert [on_wait(e, call.record) for e in (events[0], awaiting, awaiting)] == \
        [None, "2", HANG_UP]
    barge = PressOnLevel("12", prompt_levels({"sound:basic-pbx-ivr-main": 1,
                                              "sound:hello-world": 2}))
    assert [barge(e, call.record) for e in events] == ["1", None, None, "2", None, None]
    assert barge.level == 2
