"""A small typed asyncio client for the Asterisk REST Interface (ARI), over aiohttp.

One :class:`AriClient` owns one ``aiohttp.ClientSession`` (keep-alive pool, HTTP Basic auth
sent as a default header) used both for the REST calls and for the events websocket.

* REST methods (inherited from :class:`~.rest.AriRest`) return the decoded JSON (or None for
  empty bodies) and raise :class:`AriError` (:class:`AriNotFound` for 404) on any non-2xx
  answer; transport failures (connection refused, timeout, reset) raise :class:`AriError`
  with ``status == 0``. :meth:`AriClient.request` carries them over the events websocket
  while it is up and Asterisk supports it (``wsrest.py``), else over HTTP (``transport``).
* :meth:`AriClient.run` keeps the events websocket connected forever (exponential back-off with
  jitter), hands each parsed event to a synchronous handler, and raises
  :class:`AriAppReplaced` when another connection takes over the application name.

The password never appears in URLs (no ``api_key``), logs, reprs or exception texts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from .errors import AriAppReplaced, AriError, AriNotFound
from .events import ApplicationReplaced, Event, parse_event
from .rest import AriRest, _params
from .wsrest import WsRequests, supports_rest_over_websocket

__all__ = ["AriClient", "AriError", "AriNotFound", "AriAppReplaced"]

log = logging.getLogger("ivr_engine.ari")

#: A connection that stayed up longer than this resets the reconnect back-off.
STABLE_CONNECTION_SECONDS = 10.0
#: Idle keep-alive for pooled HTTP connections; below Asterisk's default
#: ``session_keep_alive`` (15 s) so we never reuse a socket the server is about to close.
KEEPALIVE_SECONDS = 10.0


_CLOSED_TYPES = frozenset(
    (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
)


def _basic_auth(username: str, password: str) -> str:
    raw = f"{username}:{password}"
    try:
        encoded = raw.encode("latin-1")
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8")
    return "Basic " + base64.b64encode(encoded).decode("ascii")


class AriClient(AriRest):
    """ARI REST + events client.  Use as ``async with AriClient(...) as ari:``.

    ``base_url`` is the Asterisk HTTP server, e.g. ``http://127.0.0.1:8088`` (``/ari`` is
    appended; a base_url already ending in ``/ari`` is accepted too).

    ``heartbeat`` is the websocket ping interval (a peer that stops answering is dropped and
    reconnected); ``max_connections`` bounds the HTTP keep-alive pool (websocket included).

    ``transport``: ``auto`` carries REST requests over the events websocket when the
    Asterisk version has it (22.4+, 21.9+, 20.14+) and over HTTP otherwise (and whenever the
    websocket is down); ``http`` or ``websocket`` force one.

    Attributes ``on_connected`` / ``on_disconnected`` may be set to plain zero-argument
    callables; they are called (synchronously, exceptions logged) whenever the events
    websocket comes up / goes down. ``before_connect`` may be set to a coroutine function
    awaited before each websocket connect (over HTTP): raising :class:`AriError` (e.g. the
    node is not the Asterisk it should be) skips that connect and backs off as a failed one,
    so the application is never registered on a wrong Asterisk.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str,
        *,
        subscribe_all: bool = False,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        request_timeout: float = 10.0,
        heartbeat: float | None = 20.0,
        max_connections: int = 100,
        transport: str = "auto",
    ) -> None:
        if transport not in ("auto", "http", "websocket"):
            raise ValueError(f"transport must be auto, http or websocket, not {transport!r}")
        base = base_url.rstrip("/")
        if base.endswith("/ari"):
            base = base[: -len("/ari")]
        self.base_url = base
        self.api_url = base + "/ari"
        self.username = username
        self.app = app
        self.subscribe_all = subscribe_all
        self.reconnect_min = reconnect_min
        self.reconnect_max = max(reconnect_max, reconnect_min)
        self.request_timeout = request_timeout
        self.heartbeat = heartbeat
        self.max_connections = max_connections
        # Only the encoded header is kept; never the clear-text password.
        self._auth_header = _basic_auth(username, password)
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._connected = asyncio.Event()
        self._running = False
        self.transport = transport
        self._ws_rest: WsRequests | None = None  # while REST goes over the websocket
        self._asterisk_version: str | None = None
        self.on_connected: Callable[[], None] | None = None
        self.on_disconnected: Callable[[], None] | None = None
        self.before_connect: Callable[[], Awaitable[None]] | None = None

    def __repr__(self) -> str:
        return (
            f"<AriClient {self.api_url} user={self.username!r} app={self.app!r} "
            f"connected={self.connected}>"
        )

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> AriClient:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        # Keep max_connections below Asterisk's http.conf ``sessionlimit`` (default 100,
        # websockets included) or Asterisk drops the surplus connections.
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=self.max_connections,
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"Authorization": self._auth_header},
            # REST calls pass their own total timeout; the websocket must not have one.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.request_timeout),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            raise RuntimeError("AriClient is not open; use 'async with AriClient(...)'")
        return self._session

    # ---------------------------------------------------------------- REST core

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
    ) -> Any:
        """One ARI call: ``path`` is relative to ``/ari`` and already quoted.

        Returns the decoded JSON body, None when empty; raises AriError / AriNotFound.
        """
        ws_rest = self._ws_rest
        if ws_rest is not None:
            return await ws_rest.request(method, path, params, body)
        session = self.session
        try:
            async with session.request(
                method,
                self.api_url + path,
                params=params,
                json=body,
                timeout=self._timeout,
            ) as resp:
                data = await resp.read()
                status = resp.status
                reason = resp.reason or ""
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise AriError(0, method, path, f"{type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            if not data:
                return None
            try:
                return json.loads(data)
            except ValueError:
                return data.decode("utf-8", "replace")
        message = reason
        if data:
            try:
                decoded = json.loads(data)
            except ValueError:
                message = data.decode("utf-8", "replace").strip()[:200] or reason
            else:
                if isinstance(decoded, dict):
                    message = str(decoded.get("message") or decoded.get("error") or reason)
        cls = AriNotFound if status == 404 else AriError
        raise cls(status, method, path, message)

    # ---------------------------------------------------------------- events websocket

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the events websocket is up; TimeoutError after ``timeout`` seconds."""
        if self._connected.is_set():
            return
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    def _set_connected(self, up: bool) -> None:
        if up == self._connected.is_set():
            return
        if up:
            self._connected.set()
        else:
            self._connected.clear()
        callback = self.on_connected if up else self.on_disconnected
        if callback is not None:
            try:
                callback()
            except Exception:  # noqa: BLE001 - a broken callback must not kill the loop
                log.exception("ARI %s callback failed", "on_connected" if up else "on_disconnected")

    async def run(self, handler: Callable[[Event], None]) -> None:
        """Receive events forever, calling ``handler(event)`` for each (synchronously).

        Reconnects on any disconnect or connection failure with exponential back-off
        (``reconnect_min`` doubling up to ``reconnect_max``, ±20 % jitter, reset after a
        connection that stayed up more than 10 s).  Raises :class:`AriAppReplaced` (without
        reconnecting) when Asterisk says another connection took our application name.
        Cancel the task to stop; the websocket is closed cleanly.  Cancel it before leaving
        the ``async with`` block (closing the session under a running ``run()`` makes it
        raise RuntimeError).
        """
        if self._running:
            raise RuntimeError("AriClient.run() is already running")
        self._running = True
        loop = asyncio.get_running_loop()
        params = _params(app=self.app, subscribeAll=self.subscribe_all)
        url = self.api_url + "/events"
        delay = self.reconnect_min
        try:
            while True:
                ws: aiohttp.ClientWebSocketResponse | None = None
                try:
                    if self.before_connect is not None:
                        await self.before_connect()
                    async with asyncio.timeout(self.request_timeout):
                        ws = await self.session.ws_connect(
                            url,
                            params=params,
                            heartbeat=self.heartbeat,
                            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                            autoping=True,
                        )
                except AriError as exc:  # before_connect refused (it logged why)
                    log.debug("ARI websocket %s (app=%s) not connected: %s", self.api_url,
                              self.app, exc)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    # str() of aiohttp's connector/handshake errors names host, port,
                    # status and the URL (which carries no credentials), never headers.
                    log.warning(
                        "ARI websocket %s (app=%s) connect failed: %s: %s",
                        self.api_url,
                        self.app,
                        type(exc).__name__,
                        exc,
                    )
                else:
                    up_since = loop.time()
                    if await self._rest_over(ws):
                        self._ws_rest = WsRequests(ws, self.request_timeout)
                    log.info("ARI websocket connected to %s (app=%s, REST over %s)",
                             self.api_url, self.app,
                             "the websocket" if self._ws_rest else "HTTP")
                    self._set_connected(True)
                    try:
                        reason = await self._consume(ws, handler)
                    finally:
                        ws_rest, self._ws_rest = self._ws_rest, None
                        if ws_rest is not None:
                            ws_rest.fail_all("the ARI websocket closed")
                        self._asterisk_version = None  # it may come back upgraded
                        await self._close_ws(ws)
                        self._set_connected(False)
                    up_for = loop.time() - up_since
                    log.warning(
                        "ARI websocket %s (app=%s) disconnected after %.1fs: %s",
                        self.api_url,
                        self.app,
                        up_for,
                        reason,
                    )
                    if up_for > STABLE_CONNECTION_SECONDS:
                        delay = self.reconnect_min
                sleep_for = delay * random.uniform(0.8, 1.2)
                log.info("ARI websocket (app=%s) reconnecting in %.2fs", self.app, sleep_for)
                await asyncio.sleep(sleep_for)
                delay = min(delay * 2, self.reconnect_max)
        finally:
            self._running = False
            self._set_connected(False)

    async def _rest_over(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Whether REST requests go over this websocket (``transport``, Asterisk's version)."""
        if self.transport != "auto":
            return self.transport == "websocket"
        if self._asterisk_version is None:
            try:
                info = await self.asterisk_info()  # over HTTP: the websocket is not in use yet
                self._asterisk_version = str((info.get("system") or {}).get("version", ""))
            except AriError as exc:
                log.warning("ARI: cannot read the Asterisk version (%s); REST over HTTP", exc)
                return False
        return supports_rest_over_websocket(self._asterisk_version)

    async def _consume(
        self, ws: aiohttp.ClientWebSocketResponse, handler: Callable[[Event], None]
    ) -> str:
        """Pump messages until the socket closes; returns a human-readable reason."""
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    log.warning(
                        "ARI websocket: undecodable message dropped (%d bytes)", len(msg.data)
                    )
                    continue
                if data.get("type") == "RESTResponse" and self._ws_rest is not None:
                    self._ws_rest.answered(data)
                    continue
                event = parse_event(data)
                if isinstance(event, ApplicationReplaced):
                    log.warning(
                        "ARI application %r was taken over by another connection; not reconnecting",
                        self.app,
                    )
                    raise AriAppReplaced(self.app)
                try:
                    handler(event)
                except Exception:  # noqa: BLE001 - one bad event must not drop the socket
                    log.exception("ARI event handler failed on %s", event.type)
            elif msg.type in _CLOSED_TYPES:
                return f"closed by server (code {ws.close_code})"
            elif msg.type is aiohttp.WSMsgType.ERROR:
                return f"error: {type(ws.exception()).__name__}"
            # BINARY / PING / PONG: ignore

    @staticmethod
    async def _close_ws(ws: aiohttp.ClientWebSocketResponse) -> None:
        if ws.closed:
            return
        try:
            await ws.close()
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.debug("ARI websocket close failed", exc_info=True)
