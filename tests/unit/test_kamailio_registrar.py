"""Registrations from Kamailio (wakeup/kamailio.py): evapi's netstrings, its events, the
ul.lookup answers, the resync after lost events, and engine.registrar's validation."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from ivr_engine.config import load_config
from ivr_engine.config.model_registrar import RegistrarSettings
from ivr_engine.wakeup.kamailio import (
    KamailioRegistrations,
    NetstringDecoder,
    NetstringError,
    Registered,
    live_contacts,
    parse_event,
)
from ivr_engine.wakeup.registrations import ContactAvailable

CONTACT = "sip:alice@127.0.0.30:5070;pn-provider=fcm;pn-prid=tok12345678;pn-param=x"


def _ns(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


def test_netstrings_split_across_reads_and_glued_together():
    a, b = b'{"event":"registered"}', b"{}"
    stream = _ns(a) + _ns(b) + _ns(a)
    d = NetstringDecoder()
    got = []
    for i in range(0, len(stream), 5):  # 5 bytes at a time: every cut point
        got += d.feed(stream[i:i + 5])
    assert got == [a, b, a]
    assert NetstringDecoder().feed(stream) == [a, b, a]
    assert NetstringDecoder().feed(b"0:,") == [b""]
    assert NetstringDecoder().feed(b"12") == []  # the length still arriving


@pytest.mark.parametrize("bad", [b"x:ab,", b"3:abc;", b"01:a,", b"{\"event\":1}",
                                 b"99999999:", b"9999999999999"])
def test_what_is_not_a_netstring_is_refused(bad):
    with pytest.raises(NetstringError):
        NetstringDecoder(max_length=1000).feed(bad)


def test_registered_events():
    ev = json.dumps({"event": "registered", "aor": "alice", "contact": CONTACT,
                     "expires": 60}).encode()
    assert parse_event(ev) == Registered("alice", CONTACT, 60)  # the contact verbatim
    assert parse_event(ev.replace(b"60", b"0")) is None  # removed
    assert parse_event(b'{"event":"other","aor":"a"}') is None
    assert parse_event(b'{"event":"registered","aor":"a","contact":"sip:a@h"}') is None
    assert parse_event(b'{"event":"registered","aor":"a","contact":"sip:a@h",'
                       b'"expires":true}') is None
    assert parse_event(b"not json") is None


def test_live_contacts_of_a_ul_lookup():
    # Kamailio 5.6's answer (trimmed)
    result = {"AoR": "alice", "Contacts": [
        {"Contact": {"Address": CONTACT, "Expires": 60, "Last-Modified": 1796341931}},
        {"Contact": {"Address": "sip:alice@old", "Expires": -1, "Last-Modified": 1}},
        {"Contact": {"Address": "sip:alice@static", "Expires": "permanent"}}]}
    assert live_contacts(result) == [(CONTACT, 1796341931), ("sip:alice@static", 0)]
    assert live_contacts(None) == []


class _Rpc(KamailioRegistrations):
    """The JSON-RPC answered from a dict (the wire is tested live)."""

    def __init__(self, answers: dict[str, list[tuple[str, int]]]):
        super().__init__(RegistrarSettings(kind="kamailio", events="127.0.0.1:1",
                                           rpc="http://127.0.0.1:1/RPC"), None, lambda: None)
        self.answers = answers

    async def lookup(self, aor: str) -> list[tuple[str, int]]:
        return self.answers.get(aor, [])


async def test_an_event_reaches_only_the_waits_of_its_aor():
    reg = _Rpc({})
    got: list[object] = []
    other: list[object] = []
    reg.watch("alice", got.append)
    reg.watch("bob", other.append)
    reg.handle(json.dumps({"event": "registered", "aor": "alice", "contact": CONTACT,
                           "expires": 60}).encode())
    assert [(e.aor, e.uri) for e in got] == [("alice", CONTACT)]  # type: ignore[attr-defined]
    assert other == []
    assert reg.dial("alice") == "PJSIP/alice@kamailio"
    assert reg.forget(got.append) == 1 and reg.waiting() == 1


async def test_resync_rings_a_registration_newer_than_the_wait_only():
    now = time.time()
    reg = _Rpc({"alice": [("sip:alice@new", int(now) + 1)],       # after the wait began
                "bob": [("sip:bob@old", int(now) - 30)]})          # long before it
    alice: list[ContactAvailable] = []
    bob: list[ContactAvailable] = []
    carol: list[ContactAvailable] = []
    reg.watch("alice", alice.append)
    reg.watch("bob", bob.append)
    reg.watch("carol", carol.append)  # not registered at all
    assert await reg.resync() == 1
    assert [e.uri for e in alice] == ["sip:alice@new"]
    assert bob == [] and carol == []


async def test_reachable_is_false_when_kamailio_cannot_say():
    reg = KamailioRegistrations(RegistrarSettings(
        kind="kamailio", events="127.0.0.1:9", rpc="http://127.0.0.1:9/RPC",
        rpc_timeout_seconds=1), None, lambda: None)
    async with reg:
        assert await reg.reachable("alice") is False  # nothing listens: pushed, not rung


async def test_events_reconnect_after_the_connection_drops():
    """A real TCP server speaking evapi's netstrings: the event of the first connection
    reaches the wait; the server closes it; the client connects again by itself."""
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader, writer):
        connections.append(writer)
        if len(connections) == 1:
            writer.write(_ns(json.dumps({"event": "registered", "aor": "alice",
                                         "contact": CONTACT, "expires": 60}).encode()))
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reg = _Rpc({})
    reg.settings = RegistrarSettings(kind="kamailio", events=f"127.0.0.1:{port}",
                                     rpc="http://127.0.0.1:1/RPC", reconnect_max_seconds=0.5)
    got: list[object] = []
    reg.watch("alice", got.append)
    task = asyncio.get_running_loop().create_task(reg._events())
    try:
        deadline = time.monotonic() + 5
        while len(connections) < 2 or not reg.ready.is_set():
            assert time.monotonic() < deadline, (len(connections), reg.ready.is_set())
            await asyncio.sleep(0.02)
        assert len(got) == 1 and reg.connects == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
        await server.wait_closed()
    assert not reg.ready.is_set()


BASE = """
engine:
  ari: {url: "http://127.0.0.1:8088", password: p}
  database_url: %s
  registrar: %s
menus:
  top: {prompt: m, options: {"1": "hangup"}}
messages: {m: {en: digits/1}}
access_points: [{type: phone-number, numbers: ["100"], menu: top}]
"""


def _load(tmp_path, url: str, registrar: str):
    path = tmp_path / "ivr.yaml"
    path.write_text(BASE % (url, registrar))
    return load_config(path, {})


def test_kamailio_registrar_refuses_sqlite_at_its_line(tmp_path):
    with pytest.raises(Exception) as err:
        _load(tmp_path, "sqlite:///x.db", "{kind: kamailio, events: '127.0.0.20:8448', "
              "rpc: 'http://127.0.0.20:5081/RPC'}")
    text = str(err.value)
    assert "ivr.yaml:4" in text and "must share one database" in text, text


def test_kamailio_registrar_needs_events_and_rpc(tmp_path):
    with pytest.raises(Exception) as err:
        _load(tmp_path, "postgresql://x@/db", "{kind: kamailio}")
    assert "needs events" in str(err.value) and "needs rpc" in str(err.value)
    with pytest.raises(Exception) as err:
        _load(tmp_path, "postgresql://x@/db", "{kind: kamailio, events: '127.0.0.20', "
              "rpc: 'http://h/RPC', dial: 'PJSIP/{user}@k'}")
    assert "host:port" in str(err.value) and "{aor}" in str(err.value)


def test_default_registrar_is_the_node_and_kamailio_on_postgresql_loads(tmp_path):
    cfg = _load(tmp_path, "sqlite:///x.db", "{}")
    assert cfg.engine.registrar.kind == "asterisk"
    cfg = _load(tmp_path, "postgresql://x@/db", "{kind: kamailio, events: '127.0.0.20:8448', "
                "rpc: 'http://127.0.0.20:5081/RPC'}")
    assert cfg.engine.registrar.host_port == ("127.0.0.20", 8448)
