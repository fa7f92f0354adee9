"""Uploads against the real engine process: its memory (RSS) before, during and after a
100 MiB CSV upload and a 100 MiB app log upload, and what else the engine still does while a
client sends (SendSMS through the in-engine single lane, ``GET /v1/health``), for this tree
and a baseline tree (``--baseline main``: its files from git) in the same run. JSON on stdout.

The CSV (``--mib`` MiB, long UCS-2 messages: ~2 KiB a line, cheap to check on both trees) is
sent in three phases: the first ``--head-mib`` fast (past the first 1 000 rows, where the old
upload took the write lock), then ``--trickle-seconds`` at ``--trickle-rate`` bytes/s, then
the rest as fast as the engine reads. Each upload runs in its own engine (SQLite, dialers
inside the engine, the bulk dialer disabled so that nothing is sent after the import): an
engine that dies during one does not spoil the other. A SendSMS (``wait_seconds: 5``) and a
health request leave every second; each is reported per phase: how many, how many failed
(5xx, or no answer within 10 s), latency percentiles.

Needs the sandbox Asterisk (the engine connects to it): run under the sandbox lock.
    python bench/upload_memory.py [--mib 100] [--baseline main] [--trickle-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, make_log, percentiles, sandbox, sandbox_env  # noqa: E402

log = make_log("upload-memory")
MIB = 1024 * 1024
TOKEN = "bench-admin"
APP_KEY = "bench-field-key"
PIECE = 64 * 1024


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    got = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                got[line.split(":")[0]] = int(line.split()[1])
    return got.get("VmRSS", 0), got.get("VmHWM", 0)


def config_text(provider_url: str, mib: int, tree: Path) -> str:
    base = (REPO / "tests" / "fixtures" / "lifecycle.yaml").read_text()
    base = base.replace("admin_token: ${IVR_ADMIN_TOKEN:-admin-secret}",
                        f"admin_token: {TOKEN}")
    base = base.replace("api_key: ${IVR_FIELD_API_KEY:-field-key}", f"api_key: {APP_KEY}")
    base = base.replace("  logs: {max_bytes: 1024}", f"  logs: {{max_bytes: {mib * MIB}}}")
    limits = ""  # a tree without upload limits (the baseline) has no such settings
    if "class SmsUploads" in (tree / "ivr_engine/config/model_sms.py").read_text():
        limits = f"  uploads: {{max_bytes: {(mib + 1) * MIB}, max_rows: 1000000}}\n"
    return base + f"""
sms:
  default_region: UY
  in_engine: true
{limits}  providers:
    - {{name: infobip, type: infobip, url: "{provider_url}", password: infobip-secret-key}}
  dialers:
    bulk: {{enabled: false}}
  campaigns:
    promo: {{dialer: bulk}}
"""


class Engine:
    """``ivr-engine run`` of a source tree, on its own SQLite file (upgraded by that tree)."""

    def __init__(self, tree: Path, workdir: Path, config: str, ari_env: dict[str, str]):
        self.tree, self.workdir = tree, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "engine.yaml").write_text(config)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **ari_env, "PYTHONPATH": str(tree),
                    "IVR_DATABASE_URL": f"sqlite:///{workdir / 'ivr.db'}",
                    "IVR_API_LISTEN": f"127.0.0.1:{port}"}
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ivr_engine.cli", *args]

    async def start(self) -> None:
        subprocess.run(self.cli("db", "upgrade", "-c", str(self.workdir / "engine.yaml")),
                       env=self.env, cwd=self.tree, check=True, capture_output=True)
        self.log = open(self.workdir / "engine.log", "wb")
        self.proc = subprocess.Popen(self.cli("run", "-c", str(self.workdir / "engine.yaml")),
                                     env=self.env, cwd=self.tree, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while b"engine ready" not in (self.workdir / "engine.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"engine did not start:\n{self.text()[-3000:]}")
            await asyncio.sleep(0.1)

    def text(self) -> str:
        return (self.workdir / "engine.log").read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class Sampler:
    """The engine's RSS every 100 ms, tagged with the phase the upload is in."""

    def __init__(self, pid: int):
        self.pid, self.phase, self.samples = pid, "before", []

    async def run(self) -> None:
        while True:
            try:
                rss, hwm = rss_kib(self.pid)
            except OSError:
                return
            self.samples.append((self.phase, rss, hwm))
            await asyncio.sleep(0.1)

    def report(self) -> dict[str, Any]:
        def mib(kib: float) -> float:
            return round(kib / 1024, 1)
        phases: dict[str, list[int]] = {}
        for phase, rss, _ in self.samples:
            phases.setdefault(phase, []).append(rss)
        out = {f"{p}_max": mib(max(v)) for p, v in phases.items()}
        out["before"] = mib(phases.get("before", [0])[-1])
        out["after"] = mib(phases.get("after", [0])[-1])
        out["peak_hwm"] = mib(max(h for _, _, h in self.samples))
        return out


class Probes:
    """A SendSMS and a health request every second, each timed and tagged with the phase."""

    def __init__(self, http: aiohttp.ClientSession, url: str, sampler: Sampler):
        self.http, self.url, self.sampler = http, url, sampler
        self.results: list[tuple[str, str, bool, float]] = []
        self.n = 0

    async def one(self, what: str) -> None:
        phase, t0 = self.sampler.phase, time.monotonic()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with asyncio.timeout(10):
                if what == "sendsms":
                    self.n += 1
                    async with self.http.post(f"{self.url}/v1/sms", headers=auth, json={
                            "destination": f"0996{self.n % 100000:05d}", "message": "probe",
                            "wait_seconds": 5}) as r:
                        ok = r.status == 200 and (await r.json())["status"] == "sent"
                else:
                    async with self.http.get(f"{self.url}/v1/health") as r:
                        ok = r.status == 200
        except (TimeoutError, aiohttp.ClientError):
            ok = False
        self.results.append((what, phase, ok, (time.monotonic() - t0) * 1000))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            while True:
                tg.create_task(self.one("sendsms"))
                tg.create_task(self.one("health"))
                await asyncio.sleep(1.0)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for what, phase, ok, ms in self.results:
            d = out.setdefault(what, {}).setdefault(phase, {"n": 0, "failed": 0, "ms": []})
            d["n"] += 1
            d["failed"] += not ok
            d["ms"].append(ms)
        for per_phase in out.values():
            for d in per_phase.values():
                ms = d.pop("ms")
                d["latency_ms"] = {k: v for k, v in percentiles(ms).items() if k != "n"}
        return out


def csv_line(i: int) -> bytes:
    text = ("Привет, это длинное сообщение кампании номер %d. " % i) * 20
    return f"promo;0996{i % 100000:05d};{text[:1000]};9999\n".encode()


async def csv_body(total: int, sampler: Sampler, head: int, trickle_s: float,
                   rate: float) -> AsyncIterator[bytes]:
    sent, i, buf = 0, 0, bytearray()
    sampler.phase = "head"
    t_trickle = None
    while sent < total:
        while len(buf) < PIECE:
            buf += csv_line(i)
            i += 1
        n = min(len(buf), total - sent)
        if sampler.phase == "head" and sent >= head:
            sampler.phase, t_trickle = "trickle", time.monotonic()
        if sampler.phase == "trickle":
            n = min(n, 1024)
            if time.monotonic() - t_trickle >= trickle_s:
                sampler.phase = "rest"
            else:
                await asyncio.sleep(n / rate)
        # whole lines only at the very end: cut the last piece at a newline
        piece = bytes(buf[:n])
        if sent + n >= total:
            piece = piece[:piece.rfind(b"\n") + 1]
            n = total - sent
        del buf[:n]
        sent += n
        yield piece


async def log_body(total: int) -> AsyncIterator[bytes]:
    block = secrets.token_bytes(PIECE)
    sent = 0
    while sent < total:
        n = min(PIECE, total - sent)
        yield block[:n]
        sent += n


async def log_request(http: aiohttp.ClientSession, url: str) -> str:
    """A session (which records the device), then an admin's log request for it."""
    async with http.post(f"{url}/v1/apps/field/sessions", headers={
            "Authorization": f"Bearer {APP_KEY}"}, json={
            "user": "alice", "device_id": "p1", "platform": "mobile", "app_type": "Mobile",
            "app_version": "1.0", "os": "android", "os_version": "14"}) as r:
        assert r.status == 201, await r.text()
    async with http.post(f"{url}/v1/admin/apps/field/log-requests", headers={
            "Authorization": f"Bearer {TOKEN}"}, json={"user": "alice"}) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["requests"][0]["id"]


async def one_upload(kind: str, tree: Path, work: Path, args: Any, provider_url: str,
                     ari_env: dict[str, str]) -> dict[str, Any]:
    eng = Engine(tree, work / kind, config_text(provider_url, args.mib, tree), ari_env)
    await eng.start()
    out: dict[str, Any] = {}
    try:
        assert eng.proc is not None
        sampler = Sampler(eng.proc.pid)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
        async with aiohttp.ClientSession(timeout=timeout) as http, asyncio.TaskGroup() as tg:
            rid = await log_request(http, eng.url) if kind == "log" else None
            probes = Probes(http, eng.url, sampler)
            watch = [tg.create_task(sampler.run()), tg.create_task(probes.run())]
            await asyncio.sleep(3)  # before
            t0 = time.monotonic()
            total = args.mib * MIB
            try:
                if kind == "csv":
                    body = csv_body(total, sampler, int(args.head_mib * MIB),
                                    args.trickle_seconds, args.trickle_rate)
                    async with http.post(f"{eng.url}/v1/sms/uploads", data=body, headers={
                            "Authorization": f"Bearer {TOKEN}",
                            "Content-Type": "text/csv"}) as r:
                        out["status"], out["answer"] = r.status, (await r.text())[:300]
                else:
                    sampler.phase = "upload"
                    async with http.put(f"{eng.url}/v1/log-requests/{rid}/upload",
                                        data=log_body(total), headers={
                                            "Authorization": f"Bearer {APP_KEY}",
                                            "Content-Type": "application/gzip"}) as r:
                        out["status"], out["answer"] = r.status, (await r.text())[:300]
            except aiohttp.ClientError as e:
                out["status"], out["answer"] = None, f"{type(e).__name__}: {e}"
            out["upload_seconds"] = round(time.monotonic() - t0, 1)
            sampler.phase = "after"
            await asyncio.sleep(5)
            if kind == "log" and eng.alive():  # the download, timed (read and dropped)
                t0, n = time.monotonic(), 0
                async with http.get(f"{eng.url}/v1/admin/log-requests/{rid}/log",
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                    async for data in r.content.iter_chunked(PIECE):
                        n += len(data)
                sampler.phase = "download"
                out["download"] = {"status": r.status, "bytes": n,
                                   "seconds": round(time.monotonic() - t0, 1)}
                await asyncio.sleep(1)
            for task in watch:
                task.cancel()
        out["rss_mib"] = sampler.report()
        out["probes"] = probes.report()
        out["engine_alive"] = eng.alive()
        text = eng.text()
        out["database_locked_in_log"] = text.count("database is locked")
        out["engine_log_upload_lines"] = [line.split("ivr_engine.sms", 1)[-1].strip()
                                          for line in text.splitlines()
                                          if "upload:" in line and "ivr_engine.sms" in line]
    finally:
        code = eng.stop()
        out["exit_code"] = code
    return out


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=100)
    p.add_argument("--baseline", default="main", help="a git revision, or 'none'")
    p.add_argument("--git", default=str(REPO), help="the repository of --baseline")
    p.add_argument("--head-mib", type=float, default=2.5)
    p.add_argument("--trickle-seconds", type=float, default=30.0)
    p.add_argument("--trickle-rate", type=float, default=10 * 1024)
    p.add_argument("--kinds", default="csv,log")
    args = p.parse_args()
    sandbox("up")
    ari_env = sandbox_env()
    work = Path(tempfile.mkdtemp(prefix="ivr-upload-bench-"))
    prov = subprocess.Popen([sys.executable, "-m", "tests.support.sms_providers", "--port", "0"],
                            cwd=REPO, stdout=subprocess.PIPE)
    try:
        provider_url = json.loads(prov.stdout.readline())["url"]
        trees = {"this": REPO}
        if args.baseline != "none":
            base = work / "baseline-tree"
            base.mkdir()
            archive = subprocess.run(["git", "-C", args.git, "archive", args.baseline],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
            rev = subprocess.run(["git", "-C", args.git, "rev-parse", "--short",
                                  args.baseline], capture_output=True, text=True).stdout
            trees = {f"baseline {args.baseline} {rev.strip()}": base, "this": REPO}
        result: dict[str, Any] = {"mib": args.mib, "head_mib": args.head_mib,
                                  "trickle_seconds": args.trickle_seconds,
                                  "trickle_bytes_per_second": args.trickle_rate, "trees": {}}
        for name, tree in trees.items():
            for kind in args.kinds.split(","):
                log(f"{name}: {kind} upload of {args.mib} MiB")
                got = await one_upload(kind, tree, work / name.split()[0], args,
                                       provider_url, ari_env)
                log(f"{name}: {kind}: {got['status']} in {got['upload_seconds']} s, "
                    f"RSS {got['rss_mib']}")
                result["trees"].setdefault(name, {})[kind] = got
        print(json.dumps(result, indent=2))
    finally:
        prov.terminate()
        prov.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
