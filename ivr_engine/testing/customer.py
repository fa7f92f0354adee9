"""The customer a callback rings: SIPp as a UAS on the carrier trunk's address (127.0.0.10,
``asterisk-conf/pjsip.conf``), on a port of its own, answering (or busy, or ringing until
Asterisk gives up) as ``sipp/customer.xml`` describes.

    async with SippCustomer(workdir) as phone:     # picks a free port
        dial = phone.dial_string()                 # engine.callbacks.dial for this phone
        await phone.start(calls=1, mode="answer")  # SIPp listens
        ...                                        # the engine calls back
        result = await phone.finished()            # SIPp handled its calls and exited

Each INVITE that reached the phone is read back from SIPp's message trace with the wall-clock
time SIPp received it (``CustomerRun.invites``): the number it dialled and when the phone
started ringing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from .sipp import TRUNKS, free_udp_ports

SCENARIO = Path(__file__).parent / "sipp" / "customer.xml"
MODES = ("answer", "busy", "ignore")

_200 = """
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
"""
_TAG = "[last_To:];tag=[pid]SIPpTag01[call_number]"
_BLOCKS = {
    "answer": f"""
  <pause milliseconds="@RING_MS@"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      {_TAG}
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:customer@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=customer 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE" timeout="@HOLD_MS@" ontimeout="hangup"/>
  <send><![CDATA[{_200}]]></send>
  <nop next="done"/>
  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[
      BYE [$remote_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:customer@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To:[$remote_from]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
""",
    "busy": f"""
  <send>
    <![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      {_TAG}
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
""",
    "ignore": f"""
  <recv request="CANCEL"/>
  <send><![CDATA[{_200}]]></send>
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      {_TAG}
      [last_Call-ID:]
      CSeq: [$invite_cseq] INVITE
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
""",
}

_ACTIONS = {
    "answer": """    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="remote_contact"/>
    </action>""",
    "busy": "",
    "ignore": """    <action>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>
    </action>""",
}

_STAMP = re.compile(r"^-{8,} (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d(?:\.\d+)?)\s*$")
_INVITE = re.compile(r"^INVITE sip:([^@;>\s]+)@")


@dataclass(frozen=True)
class Invite:
    number: str  # the Request-URI's user: the number Asterisk dialled
    at: float  # epoch seconds when SIPp received it


@dataclass
class CustomerRun:
    returncode: int
    output: str
    invites: list[Invite]

    @property
    def numbers(self) -> list[str]:
        return [i.number for i in self.invites]


def parse_trace(text: str) -> list[Invite]:
    """The INVITEs SIPp received (its ``-trace_msg`` file), in order, retransmissions once."""
    out: list[Invite] = []
    stamp: float | None = None
    received = False
    for line in text.splitlines():
        m = _STAMP.match(line)
        if m:
            when = dt.datetime.fromisoformat(f"{m.group(1)} {m.group(2)}")
            stamp, received = when.timestamp(), False  # SIPp writes local time
            continue
        if "message received" in line:
            received = True
            continue
        m = _INVITE.match(line.strip())
        if m and received and stamp is not None:
            out.append(Invite(m.group(1), stamp))
            received = False
    return out


class SippCustomer:
    """One customer phone (a SIPp UAS) on ``address``:``port``."""

    def __init__(self, workdir: Path, trunk: str = "carrier"):
        self.workdir = Path(workdir)
        self.address = TRUNKS[trunk]
        self.port = free_udp_ports(self.address)
        self._proc: asyncio.subprocess.Process | None = None
        self._trace: Path | None = None

    def dial_string(self, tech: str = "PJSIP/carrier") -> str:
        """``engine.callbacks.dial`` for this phone: any number reaches it."""
        return f"{tech}/sip:{{number}}@{self.address}:{self.port}"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def start(self, calls: int = 1, mode: str = "answer", *, ring_ms: int = 0,
                    hold_ms: int = 10_000, timeout: float = 120.0) -> None:
        """Start the phone for ``calls`` calls (it keeps its port); SIPp gives up after
        ``timeout`` seconds."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if self._proc is not None and self._proc.returncode is None:
            raise RuntimeError("the phone is already waiting for calls")
        name = uuid.uuid4().hex[:8]
        scenario = self.workdir / f"customer-{name}.xml"
        block = _BLOCKS[mode].replace("@RING_MS@", str(ring_ms)).replace(
            "@HOLD_MS@", str(hold_ms))
        text = SCENARIO.read_text().replace("@MODE@", block).replace("@ACTIONS@",
                                                                     _ACTIONS[mode])
        scenario.write_text(text)
        self._trace = self.workdir / f"customer-{name}.msg"
        cmd = ["sipp", "-sf", str(scenario), "-i", self.address, "-p", str(self.port),
               "-mi", self.address, "-mp", str(free_udp_ports(self.address, 4)),
               "-m", str(calls), "-nostdin", "-timeout", f"{int(timeout)}s",
               "-timeout_error", "-trace_msg", "-message_file", str(self._trace),
               "-trace_err", "-error_file", str(self.workdir / f"customer-{name}.err")]
        self._proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=self.workdir, env={**os.environ, "TERM": "dumb"})

    def invites(self) -> list[Invite]:
        """The INVITEs received so far (SIPp writes its trace as messages come)."""
        trace = self._trace
        return parse_trace(trace.read_text(errors="replace")) if trace and trace.exists() \
            else []

    async def finished(self) -> CustomerRun:
        """Wait for SIPp to exit (its calls handled, or its timeout)."""
        proc = self._proc
        if proc is None:
            raise RuntimeError("start() the phone first")
        try:
            out, _ = await proc.communicate()
        except asyncio.CancelledError:
            await self.stop()
            raise
        return CustomerRun(proc.returncode or 0, out.decode(errors="replace")[-3000:],
                           self.invites())
