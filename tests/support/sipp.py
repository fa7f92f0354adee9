"""PSTN callers on the carrier trunk: SIPp places the calls, an ARI observer reports what
Asterisk really did with each.

SIPp (Debian ``sip-tester``) sends from 127.0.0.10, the address ``pjsip.conf`` identifies as
the ``carrier`` trunk, so calls enter ``from-pstn`` exactly as a carrier delivers them: a
Request-URI with the DID, RTP with RFC 4733 keys (``rtp_pcap.py`` writes the stream). The
observer is an ARI application of its own subscribed to ``endpoint:PJSIP/carrier``: Asterisk
sends it the channel events of every trunk call (the dialplan applications run, the variables
the engine sets, the prompts started, the keys Asterisk decoded) without it driving anything.

Each call gets its own caller number, which is how events are matched to calls.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Sequence

from ivr_engine.ari import (
    AriClient,
    ChannelDestroyed,
    ChannelDialplan,
    ChannelDtmfReceived,
    ChannelVarset,
    Event,
    PlaybackStarted,
)

from .rtp_pcap import Key, keys_at, write_pcap

SCENARIO = Path(__file__).parent / "sipp" / "pstn_caller.xml"
#: pjsip.conf trunks and the address each is identified by
TRUNKS = {"carrier": "127.0.0.10", "bench-carrier": "127.0.0.11"}
ASTERISK_SIP = "127.0.0.1:5060"
_DESTINATION_APPS = {"Queue": "queue", "VoiceMail": "voicemail", "Dial": "endpoint"}
_numbers = itertools.count(int(time.time()) % 100_000 * 100)


def _epoch(timestamp: str) -> float | None:
    """Asterisk's event timestamp (``2026-11-21T12:24:48.367+0000``) in epoch seconds."""
    try:
        return dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except (TypeError, ValueError):
        return None


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class TrunkCall:
    """What Asterisk did with one SIPp call (from the observer's events)."""

    caller: str
    channel: str = ""
    keys: list[str] = field(default_factory=list)  # DTMF Asterisk decoded on the channel
    prompts: list[str] = field(default_factory=list)
    path: list[str] = field(default_factory=list)  # the engine's IVR_PATH
    variables: dict[str, str] = field(default_factory=dict)
    dialplan: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False
    # (arrival time.monotonic(), Asterisk's event timestamp in epoch seconds, kind, detail)
    timeline: list[tuple[float, float | None, str, str]] = field(default_factory=list)

    def first(self, kind: str, what: str = "", after: float = 0.0) -> float | None:
        """When the observer first saw ``kind`` (prompt, app, var, key, ended) after ``after``
        (``what`` matches the start of its detail); monotonic seconds."""
        for t, _, k, w in self.timeline:
            if t >= after and k == kind and w.startswith(what):
                return t
        return None

    @property
    def destination(self) -> dict[str, Any] | None:
        """The hand-off Asterisk really ran (Queue, VoiceMail, Dial), else the end the
        engine declared (IVR_DESTINATION) once the channel is gone."""
        for app, data in self.dialplan:
            if app in _DESTINATION_APPS:
                target = data.split(",")[0]
                if app == "Dial" and "/" in target:
                    target = target.split("/", 1)[1]
                return {"type": _DESTINATION_APPS[app], "target": target}
        declared = self.variables.get("IVR_DESTINATION")
        if declared and self.ended:
            kind, _, target = declared.partition(":")
            return {"type": kind, "target": target or None}
        return None

    @property
    def apps(self) -> list[str]:
        return [app for app, _ in self.dialplan]


@dataclass
class SippRun:
    calls: list[TrunkCall]
    returncode: int
    output: str
    seconds: float

    @property
    def failed(self) -> int:
        return sum(1 for c in self.calls if not c.ended)


class TrunkObserver:
    """An ARI application watching the carrier trunk's channels."""

    def __init__(self, ari_url: str, username: str, password: str, trunk: str = "carrier"):
        self.trunk = trunk
        self.ari = AriClient(ari_url, username, password,
                             f"trunk-observer-{uuid.uuid4().hex[:8]}")
        self.calls: dict[str, TrunkCall] = {}  # caller number -> call
        self._by_channel: dict[str, TrunkCall] = {}
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "TrunkObserver":
        await self.ari.open()
        self._task = asyncio.create_task(self.ari.run(self._on_event))
        await self.ari.wait_connected(10)
        await self.ari.subscribe(f"endpoint:PJSIP/{self.trunk}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.ari.unsubscribe(f"endpoint:PJSIP/{self.trunk}")
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass
        await self.ari.close()

    def expect(self, caller: str) -> TrunkCall:
        call = self.calls[caller] = TrunkCall(caller)
        return call

    def _call_of(self, ev: Event) -> TrunkCall | None:
        cid = ev.channel_id
        if cid is None:
            return None
        call = self._by_channel.get(cid)
        if call is None:
            channel = getattr(ev, "channel", None)
            call = self.calls.get(getattr(channel, "caller_number", ""))
            if call is not None and not call.channel:
                call.channel = cid
                self._by_channel[cid] = call
        return call

    def _on_event(self, ev: Event) -> None:
        now, ts = time.monotonic(), _epoch(ev.timestamp)
        if isinstance(ev, PlaybackStarted):
            cid = ev.playback.channel_id
            call = self._by_channel.get(cid or "")
            if call is not None and ev.playback.media_uri:
                call.prompts.append(ev.playback.media_uri)
                call.timeline.append((now, ts, "prompt", ev.playback.media_uri))
            return
        call = self._call_of(ev)
        if call is None:
            return
        if isinstance(ev, ChannelDtmfReceived):
            call.keys.append(ev.digit)
            call.timeline.append((now, ts, "key", ev.digit))
        elif isinstance(ev, ChannelVarset):
            call.variables[ev.variable] = ev.value
            call.timeline.append((now, ts, "var", f"{ev.variable}={ev.value}"))
            if ev.variable == "IVR_PATH":
                call.path = ev.value.split("/") if ev.value else []
        elif isinstance(ev, ChannelDialplan):
            call.dialplan.append((ev.dialplan_app, ev.dialplan_app_data))
            call.timeline.append((now, ts, "app", f"{ev.dialplan_app}({ev.dialplan_app_data})"))
        elif isinstance(ev, ChannelDestroyed):
            call.ended = True
            call.timeline.append((now, ts, "ended", ""))


class SippCaller:
    """``async with SippCaller(sandbox, workdir) as sipp: run = await sipp.call(...)``."""

    def __init__(self, sandbox: Any, workdir: Path, trunk: str = "carrier"):
        self.sandbox = sandbox
        self.workdir = Path(workdir)
        self.address = TRUNKS[trunk]
        self.observer = TrunkObserver(sandbox.ari_url, sandbox.ari_username,
                                      sandbox.ari_password, trunk)

    async def __aenter__(self) -> "SippCaller":
        await self.observer.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.observer.__aexit__(*exc)

    async def call(self, did: str, keys: str | Sequence[Key] = "", **kw: Any) -> SippRun:
        """Place calls and wait for them to end (see :meth:`launch` for the arguments)."""
        calls, finished = self.launch(did, keys, **kw)
        return await finished

    def launch(self, did: str, keys: str | Sequence[Key] = "", *, calls: int = 1,
               concurrency: int = 1, rate: float = 50.0, start_ms: int = 1500,
               gap_ms: int = 700, hold_ms: int | None = None, tail_ms: int = 3000,
               caller: str | None = None, settle: float = 2.0, timeout: float = 120.0
               ) -> tuple[list[TrunkCall], Awaitable[SippRun]]:
        """Start ``calls`` calls to ``did`` (``concurrency`` at a time, ``rate`` new calls per
        second), each sending ``keys`` once answered — a string is pressed from ``start_ms``
        every ``gap_ms`` — and hanging up ``hold_ms`` after the answer unless Asterisk hangs
        up first (default: after the last key plus ``tail_ms``). Each call has its own
        caller number unless ``caller`` is given (then ``calls`` must be 1).

        Returns the calls (filled in by the observer as they progress) and an awaitable of
        the finished run."""
        if isinstance(keys, str):
            keys = keys_at([k for k in keys if not k.isspace()], start_ms, gap_ms)
        keys = list(keys)
        last = max((k.at_ms + k.duration_ms for k in keys), default=0)
        hold = hold_ms if hold_ms is not None else last + tail_ms
        name = uuid.uuid4().hex[:8]
        pcap = write_pcap(self.workdir / f"{name}.pcap", keys, max(last + 200, 500))
        scenario = self.workdir / f"{name}.xml"
        scenario.write_text(SCENARIO.read_text().replace("@PCAP@", str(pcap))
                            .replace("@HOLD_MS@", str(hold)))
        if caller is not None:
            assert calls == 1, "a fixed caller number identifies one call at a time"
            callers = [caller]
        else:
            callers = [f"+1555{next(_numbers) % 10_000_000:07d}" for _ in range(calls)]
        expected = [self.observer.expect(c) for c in callers]
        inf = self.workdir / f"{name}.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{c};{did};\n" for c in callers))
        cmd = ["sipp", "-sf", str(scenario), "-inf", str(inf),
               "-i", self.address, "-p", str(_free_udp_port(self.address)),
               "-mi", self.address, "-mp", str(_free_udp_port(self.address)),
               "-m", str(calls), "-l", str(concurrency), "-r", f"{rate:g}", "-rp", "1000",
               "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
               "-trace_err", "-error_file", str(self.workdir / f"{name}.err"),
               ASTERISK_SIP]
        return expected, self._run(cmd, expected, settle)

    async def _run(self, cmd: list[str], expected: list[TrunkCall], settle: float) -> SippRun:
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=self.workdir, env={**os.environ, "TERM": "dumb"})
        try:
            out, _ = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        seconds = time.monotonic() - t0
        # the last events (hang-up, destroyed) may trail SIPp's exit
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and not all(c.ended for c in expected):
            await asyncio.sleep(0.05)
        return SippRun(expected, proc.returncode or 0, out.decode(errors="replace")[-3000:],
                       seconds)
