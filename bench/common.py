"""What the benchmarks share: the sandbox, Asterisk timestamps, percentiles, logging."""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SANDBOX = REPO / "scripts" / "asterisk-sandbox"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def make_log(prefix: str):  # noqa: ANN201 - a print-to-stderr function
    def log(msg: str) -> None:
        print(f"[{prefix} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    return log


def parse_ts(ts: str) -> float | None:
    """Asterisk event timestamp (``2026-11-21T12:24:48.367+0000``) -> epoch seconds."""
    try:
        return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except (TypeError, ValueError):
        return None


def percentiles(values: list[float]) -> dict[str, Any]:
    """p50/p90/p99 (nearest rank), min and max, in ms with 0.1 ms precision."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "min": None, "n": 0}
    v = sorted(values)
    n = len(v)

    def rank(q: float) -> float:
        return round(v[max(0, math.ceil(q * n) - 1)], 1)

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": round(v[-1], 1),
            "min": round(v[0], 1), "n": n}


def sandbox(*args: str, timeout: float = 120) -> str:
    out = subprocess.run([str(SANDBOX), *args], capture_output=True, text=True,
                         timeout=timeout, check=False)
    if out.returncode != 0:
        raise SystemExit(f"scripts/asterisk-sandbox {' '.join(args)} failed "
                         f"({out.returncode}): {out.stderr.strip()[-2000:]}")
    return out.stdout


def sandbox_env(required: tuple[str, ...] = ("IVR_ARI_URL", "IVR_ARI_USERNAME",
                                             "IVR_ARI_PASSWORD")) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in sandbox("env").splitlines():
        parts = shlex.split(line)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            k, v = parts[1].split("=", 1)
            env[k] = v
    for k in required:
        if not env.get(k):
            raise SystemExit(f"scripts/asterisk-sandbox env did not give {k}")
    return env


def connected_apps() -> set[str]:
    """ARI applications with a websocket connected now (GET /applications also lists
    applications whose client left while subscriptions remain)."""
    out = sandbox("cli", "-rx", "ari show websocket sessions", timeout=30)
    return {app for line in out.splitlines()[2:] if line.strip()
            for app in line.split()[4:]}


def tail_file(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop_engine(proc: subprocess.Popen | None, log=None) -> int | None:  # noqa: ANN001
    """SIGTERM the engine (it sends callers still in a menu to the fallback), then SIGKILL
    after 15 s; returns its exit code."""
    if proc is None:
        return None
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        if log is not None:
            log("engine did not stop within 15 s of SIGTERM; killing it")
        proc.kill()
        return proc.wait()


def proc_cpu(pid: int | None) -> float | None:
    """utime+stime of a process (all its threads), in seconds; None when unreadable."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is field 3 (state); utime/stime are fields 14/15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def asterisk_pid() -> int | None:
    state = Path(os.environ.get("IVR_SANDBOX_STATE", "/var/cache/ivr-engine/state"))
    try:
        pid = int((state / "asterisk.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if proc_cpu(pid) is not None else None
