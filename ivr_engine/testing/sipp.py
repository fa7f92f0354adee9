"""PSTN callers on the carrier trunk: SIPp places the calls, an ARI observer records what
Asterisk really did with each (a :class:`~ivr_engine.testing.record.CallRecord` per call).

SIPp (Debian ``sip-tester``) sends from 127.0.0.10, the address ``pjsip.conf`` identifies as
the ``carrier`` trunk, so calls enter ``from-pstn`` exactly as a carrier delivers them: a
Request-URI with the DID, RTP with RFC 4733 keys (``rtp_pcap.py`` writes the stream). The
observer is an ARI application of its own subscribed to ``endpoint:PJSIP/carrier``: Asterisk
sends it the channel events of every trunk call (the dialplan applications run, the variables
the engine sets, the prompts started, the keys Asterisk decoded) without it driving anything.

Each call gets its own caller number, which is how events are matched to calls.

Through Kamailio (``scripts/cluster``), SIPp sends to the proxy (``target``) and one observer
per node follows the calls: a call's record is filled in by the node it landed on (its
channel id starts with that node's system name, ``node-a-...``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from ..ari import Event
from .record import AriListener, CallRecord, epoch
from .rtp_pcap import Key, keys_at, write_pcap

SCENARIO = Path(__file__).parent / "sipp" / "pstn_caller.xml"
#: pjsip.conf trunks and the address each is identified by
TRUNKS = {"carrier": "127.0.0.10", "bench-carrier": "127.0.0.11"}
ASTERISK_SIP = "127.0.0.1:5060"
_numbers = itertools.count(int(time.time()) % 100_000 * 100)


#: SIPp's ports come from below the kernel's ephemeral range (32768-60999 on Linux) and
#: above Asterisk's RTP range (10000-20000): a port the kernel hands to some other socket
#: between our check and SIPp's bind is what failed "Unable to bind main socket" (exit 254).
_PORT_LOW, _PORT_HIGH = 21_000, 32_760
_SLOTS = (_PORT_HIGH - _PORT_LOW) // 4
_slot = itertools.count(os.getpid() * 97)  # processes start in different places


def free_udp_ports(host: str, count: int = 1) -> int:
    """The first of ``count`` consecutive UDP ports on ``host`` free right now (SIPp's media
    takes four: audio RTP/RTCP and video RTP/RTCP from ``-mp``)."""
    for _ in range(_SLOTS):
        base = _PORT_LOW + next(_slot) % _SLOTS * 4
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"no {count} free UDP ports on {host} in {_PORT_LOW}-{_PORT_HIGH}")


def bind_failed(returncode: int, error_file: Path) -> bool:
    """SIPp gave up because a port it was told to use was taken (worth one more try)."""
    return returncode != 0 and error_file.exists() and \
        "Unable to bind" in error_file.read_text(errors="replace")


@dataclass
class SippRun:
    calls: list[CallRecord]
    returncode: int
    output: str
    seconds: float
    #: INVITE -> 200 OK of each answered call, in the order answered (``launch(rtt=True)``)
    response_ms: list[float] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for c in self.calls if not c.ended)


class TrunkObserver(AriListener):
    """An ARI application watching a trunk's channels: one :class:`CallRecord` per
    expected caller number, matched on the first event of its channel."""

    def __init__(self, ari_url: str, username: str, password: str, trunk: str = "carrier"):
        super().__init__(ari_url, username, password, f"trunk-observer-{uuid.uuid4().hex[:8]}")
        self.trunk = trunk
        self.calls: dict[str, CallRecord] = {}  # caller number -> call

    async def __aenter__(self) -> Self:
        await self.open()
        await self.ari.subscribe(f"endpoint:PJSIP/{self.trunk}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.ari.unsubscribe(f"endpoint:PJSIP/{self.trunk}")
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
        await self.close()

    def expect(self, caller: str, call: CallRecord | None = None) -> CallRecord:
        call = self.calls[caller] = call if call is not None else CallRecord(caller)
        return call

    def unrouted(self, now: float, ev: Event) -> None:
        """A channel not followed yet: the call whose caller number it carries, if any.

        A second channel of one caller on another node is Kamailio trying that node after
        one refused the INVITE before answering (dialplan ``ivr-engine-next-node``): the
        later of the two is the call, the earlier one goes to ``call.refused`` (the nodes'
        events come over separate websockets, in either order). On the same node, only the
        first channel is followed."""
        channel = getattr(ev, "channel", None)
        call = self.calls.get(getattr(channel, "caller_number", None) or "")
        if call is None or channel is None or ev.channel_id != channel.id \
                or call.channel in self.routes:
            return
        if call.channel:
            began = call.timeline[0][1] if call.timeline else None
            at = epoch(ev.timestamp)
            if call.answered or (began is not None and at is not None and at < began):
                call.refused[channel.id] = CallRecord(call.caller, channel.id)
            else:
                call.move_to(channel.id)
        else:
            call.channel = channel.id

        def route(t: float, e: Event, cid: str = channel.id) -> None:
            target = call if call.channel == cid else call.refused.get(cid)
            if target is not None:
                target.observe(e, t)
        self.routes[channel.id] = route
        route(now, ev)


class SippCaller:
    """``async with SippCaller(sandbox, workdir) as sipp: run = await sipp.call(...)``.

    ``target``: where SIPp sends (the sandbox Asterisk, or Kamailio in front of the nodes);
    ``nodes``: the Asterisks whose trunk channels are observed (default: ``sandbox``)."""

    def __init__(self, sandbox: Any, workdir: Path, trunk: str = "carrier", *,
                 target: str = ASTERISK_SIP, nodes: Sequence[Any] = ()):
        self.sandbox = sandbox
        self.workdir = Path(workdir)
        self.address = TRUNKS[trunk]
        self.target = target
        self.observers = [TrunkObserver(n.ari_url, n.ari_username, n.ari_password, trunk)
                          for n in (nodes or [sandbox])]
        self.observer = self.observers[0]

    async def __aenter__(self) -> Self:
        entered = []
        try:
            for observer in self.observers:
                await observer.__aenter__()
                entered.append(observer)
        except BaseException:
            for observer in reversed(entered):
                await observer.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for observer in reversed(self.observers):
            await observer.__aexit__(*exc)

    async def call(self, did: str, keys: str | Sequence[Key] = "", **kw: Any) -> SippRun:
        """Place calls and wait for them to end (see :meth:`launch` for the arguments)."""
        _, finished = self.launch(did, keys, **kw)
        return await finished

    def launch(self, did: str, keys: str | Sequence[Key] = "", *, calls: int = 1,
               concurrency: int = 1, rate: float = 50.0, start_ms: int = 1500,
               gap_ms: int = 700, hold_ms: int | None = None, tail_ms: int = 3000,
               caller: str | None = None, settle: float = 2.0, timeout: float = 120.0,
               rtt: bool = False) -> tuple[list[CallRecord], Awaitable[SippRun]]:
        """Start ``calls`` calls to ``did`` (``concurrency`` at a time, ``rate`` new calls per
        second), each sending ``keys`` once answered — a string is pressed from ``start_ms``
        every ``gap_ms`` — and hanging up ``hold_ms`` after the answer unless Asterisk hangs
        up first (default: after the last key plus ``tail_ms``). Each call has its own
        caller number unless ``caller`` is given (then ``calls`` must be 1).

        ``rtt``: SIPp records each call's INVITE -> 200 OK time (``SippRun.response_ms``).

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
        for other in self.observers[1:]:
            for call in expected:
                other.expect(call.caller, call)
        inf = self.workdir / f"{name}.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{c};{did};\n" for c in callers))
        cmd = ["sipp", "-sf", str(scenario), "-inf", str(inf),
               "-i", self.address, "-p", "@SIP_PORT@", "-mi", self.address, "-mp", "@RTP_PORT@",
               "-m", str(calls), "-l", str(concurrency), "-r", f"{rate:g}", "-rp", "1000",
               "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
               "-trace_err", "-error_file", str(self.workdir / f"{name}.err"),
               *(["-trace_rtt", "-rtt_freq", "1"] if rtt else []),
               self.target]
        return expected, self._run(cmd, expected, settle, name)

    async def _run(self, cmd: list[str], expected: list[CallRecord], settle: float,
                   name: str) -> SippRun:
        t0 = time.monotonic()
        for attempt in range(3):
            ports = {"@SIP_PORT@": str(free_udp_ports(self.address)),
                     "@RTP_PORT@": str(free_udp_ports(self.address, 4))}
            proc = await asyncio.create_subprocess_exec(
                *[ports.get(arg, arg) for arg in cmd], stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, cwd=self.workdir,
                env={**os.environ, "TERM": "dumb"})
            try:
                out, _ = await proc.communicate()
            except asyncio.CancelledError:
                proc.kill()
                await proc.wait()
                raise
            error_file = self.workdir / f"{name}.err"
            if attempt == 2 or not bind_failed(proc.returncode or 0, error_file):
                break
            error_file.unlink()
        seconds = time.monotonic() - t0
        # the last events (hang-up, destroyed) may trail SIPp's exit
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and not all(c.ended for c in expected):
            await asyncio.sleep(0.05)
        response_ms = [float(line.split(";")[1])  # Date_ms;response_time_ms;rtd_no
                       for path in self.workdir.glob(f"{name}_*_rtt.csv")
                       for line in path.read_text().splitlines()[1:] if line.count(";") == 2]
        return SippRun(expected, proc.returncode or 0, out.decode(errors="replace")[-3000:],
                       seconds, response_ms)
