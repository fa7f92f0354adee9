"""A headless baresip registering to the sandbox as one of its SIP users (alice, bob, carol
over UDP; dave over TLS with SRTP: ``tls=True`` and the CA file that verifies Asterisk)."""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import subprocess
from pathlib import Path

TEMPLATES = Path(__file__).parent / "baresip"
_ports = itertools.count(0)


def _free(port: int) -> bool:
    """Nothing holds ``port`` on the loopback (UDP and TCP): a baresip another run left
    behind must not make this one fail to start."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


class Baresip:
    def __init__(self, user: str, password: str, workdir: Path, *, answer: str = "auto",
                 tls: bool = False, cafile: str | None = None, mediaenc: str | None = None):
        """``tls``: register over TLS (5061) with ``cafile`` as its CA (not verified by 1.0);
        ``mediaenc``: baresip's media encryption (``srtp-mand``: SDES SRTP or nothing)."""
        n = next(_ports)
        while not all(_free(p) for p in (5100 + 4 * (n % 200), 5101 + 4 * (n % 200),
                                         4500 + (n % 400))):
            n = next(_ports)
        self.user = user
        self.dir = workdir / f"baresip-{user}-{n}"
        self.dir.mkdir(parents=True)
        # ports spaced by 2: baresip also opens TLS on SIP port + 1
        self.sip_port = 5100 + 4 * (n % 200)
        self.ctrl_port = 4500 + (n % 400)
        sub = {"@SIP_USER@": user, "@SIP_PASSWORD@": password, "@SIP_PORT@": str(self.sip_port),
               "@CTRL_PORT@": str(self.ctrl_port)}
        for name in ("config", "accounts"):
            text = (TEMPLATES / f"{name}.template").read_text()
            for k, v in sub.items():
                text = text.replace(k, v)
            if name == "accounts" and answer != "auto":
                text = text.replace("answermode=auto", f"answermode={answer}")
            if name == "accounts" and tls:  # SIP over TLS (5061), SDES-SRTP as asked
                text = text.replace(";transport=udp>", ";transport=tls>")
                text = text.replace("audio_codecs=PCMU,PCMA", "audio_codecs=PCMU,PCMA" + (
                    f";mediaenc={mediaenc}" if mediaenc else ""))
            if name == "config" and tls:
                # the CA of Asterisk's certificate (baresip 1.0 does not verify the server
                # with it) and SDES-SRTP (srtp.so logs a spurious dlopen error, then registers
                # srtp, srtp-mand, srtp-mandf)
                assert cafile, "TLS: the CA file of Asterisk's certificate"
                text += f"\nsip_cafile\t\t{cafile}\nmodule\t\t\tsrtp.so\n"
            (self.dir / name).write_text(text)
        (self.dir / "accounts").chmod(0o600)
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None

    def start(self) -> None:
        self.log = open(self.dir / "baresip.log", "wb")
        self.started_at = asyncio.get_running_loop().time()
        self.proc = subprocess.Popen(["baresip", "-f", str(self.dir)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    async def command(self, command: str, params: str = "") -> None:
        """One ctrl_tcp command (netstring-framed JSON), e.g. ``dial`` a SIP URI."""
        import json

        reader, writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
        try:
            body = json.dumps({"command": command, "params": params}).encode()
            writer.write(b"%d:%s," % (len(body), body))
            await writer.drain()
            await asyncio.wait_for(reader.read(1), 5)
        finally:
            writer.close()

    def log_text(self) -> str:
        return (self.dir / "baresip.log").read_text(errors="replace")

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # unregisters, then exits
            for _ in range(50):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.proc = None
