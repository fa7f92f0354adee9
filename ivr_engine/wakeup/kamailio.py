"""Registrations from Kamailio (``engine.registrar.kind: kamailio``): the phone apps register
at Kamailio's app side, not on a node, so a call waiting on node a rings an app that
registered anywhere.

* **events**: one TCP connection per engine to Kamailio's ``evapi`` (``registrar.events``).
  Kamailio sends every connected engine ``{"event":"registered","aor","contact","expires"}``
  as a netstring (``<length>:<json>,``) the moment a REGISTER is saved; a waiting call gets
  :class:`~.registrations.ContactAvailable` at once. The contact URI is Kamailio's verbatim
  (RFC 8599 ``pn-*`` parameters stored as the user's device by the :class:`Binder`).
* **reachable / resync**: JSON-RPC over HTTP (``registrar.rpc``), ``ul.lookup location
  <aor>``. The connection is made again with a backoff (up to
  ``registrar.reconnect_max_seconds``) whenever it drops; after each (re)connect every waited
  AOR is looked up, and a registration at least as new as the wait (Kamailio's
  ``Last-Modified``, whole seconds) rings at once: a REGISTER whose event was lost with the
  connection is not missed. ``ready`` is clear while disconnected (``/readyz`` says so).
* **dial**: a node rings an app as ``registrar.dial`` (``PJSIP/{aor}@kamailio``): the node's
  ``kamailio`` endpoint sends the INVITE to Kamailio, whose ``lookup("location")`` finds the
  contact.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp

from .. import metrics
from .contacts import aor_of
from .registrations import Binder, Waiters

log = logging.getLogger("ivr_engine.wakeup")

#: the longest evapi message accepted (a registration event is a few hundred bytes)
MAX_MESSAGE = 65536
FIRST_BACKOFF_SECONDS = 0.2
_ids = itertools.count(1)


class NetstringError(ValueError):
    """The evapi stream is not netstrings (``<length>:<data>,``)."""


class NetstringDecoder:
    """Incremental netstring decoder (evapi's ``netstring_format``): feed it what the socket
    gave, get every complete message. Pure."""

    def __init__(self, max_length: int = MAX_MESSAGE):
        self.max_length = max_length
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while self._buf:
            colon = self._buf.find(b":", 0, 12)
            if colon < 0:
                if len(self._buf) >= 12 or not self._buf.isdigit():
                    raise NetstringError(f"no length prefix in {bytes(self._buf[:20])!r}")
                break  # the length is still arriving
            head = bytes(self._buf[:colon])
            if not head.isdigit() or (len(head) > 1 and head.startswith(b"0")):
                raise NetstringError(f"bad length {head!r}")
            length = int(head)
            if length > self.max_length:
                raise NetstringError(f"message of {length} bytes (at most {self.max_length})")
            end = colon + 1 + length
            if len(self._buf) <= end:
                break  # the body (or its comma) is still arriving
            if self._buf[end] != ord(","):
                raise NetstringError(f"message of {length} bytes not ended by ','")
            out.append(bytes(self._buf[colon + 1:end]))
            del self._buf[:end + 1]
        return out


@dataclass(frozen=True, slots=True)
class Registered:
    aor: str
    contact: str
    expires: int


def parse_event(payload: bytes) -> Registered | None:
    """A ``registered`` event with a live contact, or None (another event, a removal, or
    not what Kamailio's route sends: logged)."""
    try:
        ev = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        log.warning("Kamailio event is not JSON: %r", payload[:200])
        return None
    if not isinstance(ev, dict) or ev.get("event") != "registered":
        return None
    aor, contact, expires = ev.get("aor"), ev.get("contact"), ev.get("expires")
    if not isinstance(aor, str) or not aor or not isinstance(contact, str) or not contact \
            or not isinstance(expires, int) or isinstance(expires, bool):
        log.warning("Kamailio registered event without aor, contact or expires: %r",
                    payload[:200])
        return None
    if expires <= 0:
        return None  # a contact removed
    return Registered(aor_of(aor), contact, expires)


def live_contacts(result: Any) -> list[tuple[str, int]]:
    """``(address, last modified)`` of each unexpired contact in a ``ul.lookup`` result."""
    out = []
    for item in (result or {}).get("Contacts") or []:
        c = item.get("Contact") if isinstance(item, dict) else None
        if not isinstance(c, dict):
            continue
        address, expires = c.get("Address"), c.get("Expires")
        if isinstance(address, str) and (expires == "permanent" or (
                isinstance(expires, int) and expires > 0)):
            out.append((address, int(c.get("Last-Modified") or 0)))
    return out


class RpcError(Exception):
    pass


class KamailioRegistrations(Waiters):
    """One per engine, shared by its nodes (``registrations.Registrations``)."""

    def __init__(self, settings: Any, store: Any, config: Callable[[], Any]):
        super().__init__()
        self.settings = settings  # config.model_registrar.RegistrarSettings
        self.binder = Binder(store, config)
        self.ready = asyncio.Event()  # the evapi connection is up
        self.connects = 0
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "KamailioRegistrations":
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
            total=self.settings.rpc_timeout_seconds))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def unready(self) -> str:
        return f"registrar: Kamailio events ({self.settings.events}) not connected"

    def dial(self, aor: str) -> str:
        return self.settings.dial.replace("{aor}", aor)

    # ------------------------------------------------------------------ JSON-RPC

    async def lookup(self, aor: str) -> list[tuple[str, int]]:
        """The unexpired contacts of ``aor`` (empty when it has none). RpcError, OSError,
        aiohttp.ClientError, TimeoutError when Kamailio cannot say."""
        assert self._http is not None, "use async with"
        body = {"jsonrpc": "2.0", "method": "ul.lookup", "params": ["location", aor],
                "id": next(_ids)}
        async with self._http.post(self.settings.rpc, json=body) as r:
            if r.status != 200:
                raise RpcError(f"HTTP {r.status}")
            data = await r.json(content_type=None)
        if "error" in data:
            message = str((data["error"] or {}).get("message", ""))
            if "not found" in message.lower():
                return []
            raise RpcError(message)
        return live_contacts(data.get("result"))

    async def reachable(self, endpoint: str) -> bool:
        """Has the app a registration at Kamailio now? (Not known: False, so it is pushed.)"""
        try:
            return bool(await self.lookup(endpoint))
        except (RpcError, OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("cannot ask Kamailio whether %s is registered: %s", endpoint, exc)
            return False

    async def resync(self) -> int:
        """Every waited AOR looked up: a registration at least as new as its wait (whole
        seconds) is posted; returns how many waits were posted."""
        posted = 0
        waited = self.aors()
        for aor in waited:
            try:
                contacts = await self.lookup(aor)
            except (RpcError, OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("resync: cannot look %s up at Kamailio: %s", aor, exc)
                continue
            if not contacts:
                continue
            address, modified = max(contacts, key=lambda c: c[1])
            n = self.notify(aor, address, since=modified + 1)
            if n:
                log.info("resync: %s registered while the events were away: %d wait(s) "
                         "rung", aor, n)
            posted += n
        log.info("Kamailio events connected: %d waited AOR(s) looked up, %d wait(s) rung",
                 len(waited), posted)
        return posted

    # ------------------------------------------------------------------ evapi

    def handle(self, payload: bytes) -> None:
        ev = parse_event(payload)
        if ev is None:
            return
        self.notify(ev.aor, ev.contact)
        self.binder.offer(ev.aor, ev.contact)

    async def run(self) -> None:
        """The evapi connection (again after each loss) and the RFC 8599 binding writer."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.binder.run(), name="registrar-bindings")
            tg.create_task(self._events(), name="registrar-events")

    async def _events(self) -> None:
        host, port = self.settings.host_port
        backoff = FIRST_BACKOFF_SECONDS
        while True:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            except (OSError, TimeoutError) as exc:
                log.warning("Kamailio events at %s:%d: %s; again in %.1f s", host, port, exc,
                            backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.reconnect_max_seconds)
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.connects:
                metrics.RECONNECTS.labels("kamailio-evapi").inc()
            self.connects += 1
            backoff = FIRST_BACKOFF_SECONDS
            self.ready.set()
            log.info("connected to Kamailio events at %s:%d", host, port)
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.resync())
                    await self._read(reader)
            except* (OSError, NetstringError) as group:
                log.warning("Kamailio events at %s:%d: %s", host, port, group.exceptions[0])
            finally:
                self.ready.clear()
                writer.close()
            log.warning("Kamailio events at %s:%d lost; again in %.1f s", host, port, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.reconnect_max_seconds)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = NetstringDecoder()
        while True:
            data = await reader.read(MAX_MESSAGE)
            if not data:
                return  # Kamailio closed it
            for payload in decoder.feed(data):
                self.handle(payload)
