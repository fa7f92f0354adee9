"""Write the RTP a PSTN caller sends as a pcap file SIPp can replay (``play_pcap_audio``).

A carrier trunk sends one continuous RTP stream: 20 ms PCMU packets, and RFC 4733 telephone
events in place of audio while a key is held. Replaying SIPp's shipped ``dtmf_2833_<d>.pcap``
files one after another does not work: each restarts its sequence numbers and timestamps, so
Asterisk sees a stream going backwards and drops the later keys. This writer makes one stream
for a whole call — keys at given times, silence in between, sequence numbers and timestamps
always increasing — the way a phone or a media gateway would.

Each key is an RFC 4733 event (§2.5): one packet every 20 ms, all with the event's start
timestamp and the duration so far in timestamp units (8 per ms), the marker bit on the first
(§2.5.1.3), the end bit on the last, which is sent three times at the 20 ms update interval
(§2.5.1.4: new sequence numbers, same timestamp and duration). Like a phone, the stream has
one packet per 20 ms: the end's two retransmissions take the place of the first 40 ms of
silence after the key, so the shortest pause ITU-T Q.24 allows (40 ms) is just those two.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PCMU = 0
TELEPHONE_EVENT = 101  # the dynamic payload type the SIPp scenario offers in its SDP
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
PACKET_MS = 20
END_REPEATS = 2  # retransmissions of an event's last packet (RFC 4733 §2.5.1.4: 3 in all)
EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
               "A": 12, "B": 13, "C": 14, "D": 15}
_SILENCE = b"\xff" * SAMPLES_PER_PACKET  # PCMU silence

# placeholder addresses: SIPp rewrites source and destination to the call's media addresses
_SRC = (b"\x7f\x00\x00\x0a", 6000)
_DST = (b"\x7f\x00\x00\x01", 10000)


@dataclass(frozen=True, slots=True)
class Key:
    """Press ``digit`` at ``at_ms`` (from the start of the stream) for ``duration_ms``."""

    digit: str
    at_ms: int
    duration_ms: int = 120


def keys_at(digits: Iterable[str], start_ms: int, gap_ms: int,
            duration_ms: int = 120) -> list[Key]:
    """``digits`` pressed one after another: the first at ``start_ms``, then every ``gap_ms``."""
    return [Key(d, start_ms + i * gap_ms, duration_ms) for i, d in enumerate(digits)]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP around one RTP packet (valid checksums)."""
    src_ip, src_port = _SRC
    dst_ip, dst_port = _DST
    udp_len = 8 + len(payload)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", src_port, dst_port, udp_len, 0) + payload
    csum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0,
                     src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def _rtp(seq: int, ts: int, ssrc: int, pt: int, marker: bool, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def rtp_packets(keys: Iterable[Key], total_ms: int, *, ssrc: int = 0x1F2E3D4C,
                seq0: int = 1000, ts0: int = 16000) -> list[tuple[int, bytes]]:
    """``(send time in ms, RTP packet)`` for a stream of ``total_ms`` with ``keys`` in it."""
    keys = sorted(keys, key=lambda k: k.at_ms)
    for k in keys:
        if k.digit not in EVENT_CODES:
            raise ValueError(f"{k.digit!r} is not a DTMF key")
    for k in keys:
        if k.duration_ms < PACKET_MS:
            raise ValueError(f"key {k.digit!r} lasts {k.duration_ms} ms: less than a packet")
    for a, b in zip(keys, keys[1:]):
        if b.at_ms < a.at_ms + a.duration_ms + END_REPEATS * PACKET_MS:
            raise ValueError(f"key {b.digit!r} at {b.at_ms} ms overlaps the one before "
                             f"(its end is repeated until "
                             f"{a.at_ms + a.duration_ms + END_REPEATS * PACKET_MS} ms)")
    out: list[tuple[int, bytes]] = []
    seq, t, pending = seq0, 0, list(keys)
    marker = True  # first packet of the stream (talk spurt)
    while t < total_ms:
        key = pending[0] if pending else None
        if key is not None and t >= key.at_ms:
            pending.pop(0)
            start_ts = ts0 + t * 8
            code = EVENT_CODES[key.digit]
            n = key.duration_ms // PACKET_MS  # the duration, rounded down to 20 ms
            for i in range(n + END_REPEATS):  # the end goes out 1 + END_REPEATS times
                end = i >= n - 1
                duration = min(i + 1, n) * SAMPLES_PER_PACKET
                body = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)
                out.append((t, _rtp(seq, start_ts, ssrc, TELEPHONE_EVENT, i == 0, body)))
                seq += 1
                t += PACKET_MS
            marker = True  # audio after an event starts a new talk spurt (as Asterisk does)
            continue
        out.append((t, _rtp(seq, ts0 + t * 8, ssrc, PCMU, marker, _SILENCE)))
        marker = False
        seq += 1
        t += PACKET_MS
    return out


def write_pcap(path: Path | str, keys: Iterable[Key], total_ms: int, **kw: int) -> Path:
    """Write the stream as a pcap (Ethernet link type, microsecond timestamps)."""
    path = Path(path)
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ms, packet in rtp_packets(keys, total_ms, **kw):
            frame = _frame(packet)
            f.write(struct.pack("<IIII", ms // 1000, (ms % 1000) * 1000, len(frame),
                                len(frame)))
            f.write(frame)
    return path


def read_rtp(path: Path | str) -> list[tuple[int, dict]]:
    """Parse a pcap written by :func:`write_pcap` back into ``(ms, fields)`` (for tests)."""
    data = Path(path).read_bytes()
    off, out = 24, []
    while off < len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, off)
        off += 16
        frame = data[off:off + caplen]
        off += caplen
        rtp = frame[14 + 20 + 8:]
        b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", rtp)
        fields = {"seq": seq, "ts": ts, "pt": b1 & 0x7F, "marker": bool(b1 & 0x80),
                  "ssrc": ssrc}
        if fields["pt"] == TELEPHONE_EVENT:
            code, flags, duration = struct.unpack_from("!BBH", rtp, 12)
            fields.update(event=code, end=bool(flags & 0x80), duration=duration)
        out.append((sec * 1000 + usec // 1000, fields))
    return out
