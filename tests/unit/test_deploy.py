"""The systemd unit in deploy/ stays valid (systemd-analyze verify) and keeps its promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "ivr-engine.service"


def test_unit_restarts_always_and_reloads_with_sighup():
    text = UNIT.read_text()
    assert "\nRestart=always\n" in text
    assert "\nExecReload=/bin/kill -HUP $MAINPID\n" in text
    assert "\nRestartPreventExitStatus=2\n" in text  # a bad config is not retried forever


def test_unit_gives_the_engine_room_for_descriptors():
    """The HTTP side's budget is the descriptor limit minus a reserve: systemd's default soft
    limit (1 024) leaves 768 connections; the unit raises it."""
    lines = [line for line in UNIT.read_text().splitlines() if line.startswith("LimitNOFILE=")]
    assert len(lines) == 1 and int(lines[0].split("=")[1]) >= 65536, lines


def test_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd) is needed to check the unit"
    exe = str(Path(sys.executable).with_name("ivr-engine"))
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/ivr-engine/bin/ivr-engine", exe))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                       timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert r.returncode == 0 and not problems, problems
