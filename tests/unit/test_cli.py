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
    assert "ok — 8 menus (4 top-level), 3 numbers, 2 apps" in r.stdout
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
