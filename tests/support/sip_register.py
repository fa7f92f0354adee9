"""A minimal SIP REGISTER over UDP or TLS with digest authentication (RFC 3261 / RFC 2617).

baresip 1.0 (Debian bookworm) cannot put RFC 8599 push parameters in its Contact, so the
test of "RFC 8599 params picked up from a REGISTER" sends the REGISTER itself: a real SIP
request to the real Asterisk, with ``pn-provider`` / ``pn-prid`` / ``pn-param`` in the Contact.
Over TLS (``register_tls``) the server's certificate is verified against a CA file, as a
phone SDK does (baresip 1.0 does not verify it: libre's peer verification is opt-in and
baresip 1.0 has no setting for it).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import socket
import ssl


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SIP digest is MD5


class _Proto(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        self.queue.put_nowait(data)


async def register(user: str, password: str, contact_params: str, *, expires: int = 60,
                   server: tuple[str, int] = ("127.0.0.1", 5060), timeout: float = 5.0,
                   contact_at: str | None = None, local: str = "127.0.0.1") -> int:
    """REGISTER ``user`` with ``contact_params`` appended to its Contact URI (``expires=0``:
    remove all of the user's bindings); ``contact_at`` (``host:port``): where the Contact
    points, instead of this socket (another user agent, e.g. a SIPp phone); ``local``: the
    address it sends from; returns the final status code (200 when done)."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Proto, local_addr=(local, 0), family=socket.AF_INET)
    try:
        port = transport.get_extra_info("sockname")[1]
        call_id = secrets.token_hex(8)
        tag = secrets.token_hex(4)
        uri = f"sip:{server[0]}"
        # expires 0 removes every binding of the AOR (RFC 3261 10.2.2: "Contact: *")
        at = contact_at or f"{local}:{port}"
        params = f";{contact_params}" if contact_params else ""
        contact = "*" if expires == 0 else f"<sip:{user}@{at}{params}>"

        def request(cseq: int, auth: str = "") -> bytes:
            lines = [
                f"REGISTER {uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {local}:{port};rport;branch=z9hG4bK{secrets.token_hex(6)}",
                "Max-Forwards: 70",
                f"From: <sip:{user}@{server[0]}>;tag={tag}",
                f"To: <sip:{user}@{server[0]}>",
                f"Call-ID: {call_id}",
                f"CSeq: {cseq} REGISTER",
                f"Contact: {contact}",
                f"Expires: {expires}",
                "User-Agent: ivr-engine-tests",
            ]
            if auth:
                lines.append(auth)
            lines += ["Content-Length: 0", "", ""]
            return "\r\n".join(lines).encode()

        async def exchange(data: bytes) -> tuple[int, str]:
            transport.sendto(data, server)
            while True:
                reply = (await asyncio.wait_for(proto.queue.get(), timeout)).decode(errors="replace")
                status = int(reply.split(" ", 2)[1])
                if status >= 200:
                    return status, reply

        status, reply = await exchange(request(1))
        if status != 401:
            return status
        status, _ = await exchange(request(2, _authorization(reply, user, password, uri)))
        return status
    finally:
        transport.close()


def _authorization(reply: str, user: str, password: str, uri: str) -> str:
    """The Authorization header answering the 401's digest challenge."""
    challenge = re.search(r"^WWW-Authenticate:\s*Digest\s+(.*)$", reply,
                          re.MULTILINE | re.IGNORECASE)
    assert challenge, reply
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.group(1)))
    realm, nonce = fields["realm"], fields["nonce"]
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"REGISTER:{uri}")
    auth = (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", algorithm=MD5')
    if "auth" in fields.get("qop", "").split(","):
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        auth += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    auth += f', response="{response}"'
    if "opaque" in fields:
        auth += f', opaque="{fields["opaque"]}"'
    return auth


async def register_tls(user: str, password: str, contact_params: str, cafile: str, *,
                       expires: int = 60, server: tuple[str, int] = ("127.0.0.1", 5061),
                       timeout: float = 5.0) -> int:
    """REGISTER over TLS, Asterisk's certificate verified against ``cafile`` (its IP address
    in the certificate's subjectAltName); raises ``ssl.SSLCertVerificationError`` when the
    CA does not vouch for it. Returns the final status code."""
    ctx = ssl.create_default_context(cafile=cafile)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        server[0], server[1], ssl=ctx, server_hostname=server[0]), timeout)
    try:
        port = writer.get_extra_info("sockname")[1]
        call_id, tag, uri = secrets.token_hex(8), secrets.token_hex(4), f"sip:{server[0]}"
        contact = "*" if expires == 0 else \
            f"<sip:{user}@127.0.0.1:{port};transport=tls;{contact_params}>"

        def request(cseq: int, auth: str = "") -> bytes:
            lines = [
                f"REGISTER {uri};transport=tls SIP/2.0",
                f"Via: SIP/2.0/TLS 127.0.0.1:{port};rport;branch=z9hG4bK{secrets.token_hex(6)}",
                "Max-Forwards: 70", f"From: <sip:{user}@{server[0]}>;tag={tag}",
                f"To: <sip:{user}@{server[0]}>", f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER",
                f"Contact: {contact}", f"Expires: {expires}", "User-Agent: ivr-engine-tests"]
            lines += [auth] if auth else []
            return "\r\n".join(lines + ["Content-Length: 0", "", ""]).encode()

        async def exchange(data: bytes) -> tuple[int, str]:
            writer.write(data)
            await writer.drain()
            while True:
                head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
                        ).decode(errors="replace")
                length = re.search(r"^Content-Length:\s*(\d+)", head, re.MULTILINE | re.I)
                if length and int(length.group(1)):
                    await reader.readexactly(int(length.group(1)))
                status = int(head.split(" ", 2)[1])
                if status >= 200:
                    return status, head

        status, reply = await exchange(request(1))
        if status != 401:
            return status
        status, _ = await exchange(request(2, _authorization(reply, user, password,
                                                            f"{uri};transport=tls")))
        return status
    finally:
        writer.close()
