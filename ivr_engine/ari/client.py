"""A small typed asyncio client for the Asterisk REST Interface (ARI), over aiohttp.

One :class:`AriClient` owns one ``aiohttp.ClientSession`` (keep-alive pool, HTTP Basic auth
sent as a default header) used both for the REST calls and for the events websocket.

* REST methods return the decoded JSON (or None for empty bodies) and raise :class:`AriError`
  (:class:`AriNotFound` for 404) on any non-2xx answer; transport failures (connection refused,
  timeout, reset) raise :class:`AriError` with ``status == 0``.
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
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from .events import ApplicationReplaced, Event, parse_event

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


class AriError(Exception):
    """A non-2xx answer from ARI (or ``status == 0`` when the request never got an answer)."""

    def __init__(self, status: int, method: str, path: str, message: str = "") -> None:
        self.status = status
        self.method = method
        self.path = path
        self.message = message
        super().__init__(f"ARI {method} {path} -> {status or 'no response'}: {message}")


class AriNotFound(AriError):
    """ARI answered 404 (channel, playback, bridge, variable ... not found)."""


class AriAppReplaced(Exception):
    """Another websocket registered our application name; we must not reconnect."""


def _q(segment: str) -> str:
    """Quote one URL path segment (ids may contain anything)."""
    return quote(str(segment), safe="")


def _params(**kwargs: Any) -> list[tuple[str, str]]:
    """Query parameters without the Nones, booleans as ARI's true/false."""
    out: list[tuple[str, str]] = []
    for key, value in kwargs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append((key, str(value)))
    return out


def _basic_auth(username: str, password: str) -> str:
    raw = f"{username}:{password}"
    try:
        encoded = raw.encode("latin-1")
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8")
    return "Basic " + base64.b64encode(encoded).decode("ascii")


def _csv(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


class AriClient:
    """ARI REST + events client.  Use as ``async with AriClient(...) as ari:``.

    ``base_url`` is the Asterisk HTTP server, e.g. ``http://127.0.0.1:8088`` (``/ari`` is
    appended; a base_url already ending in ``/ari`` is accepted too).

    ``heartbeat`` is the websocket ping interval (a peer that stops answering is dropped and
    reconnected); ``max_connections`` bounds the HTTP keep-alive pool (websocket included).

    Attributes ``on_connected`` / ``on_disconnected`` may be set to plain zero-argument
    callables; they are called (synchronously, exceptions logged) whenever the events
    websocket comes up / goes down.
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
    ) -> None:
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
        self.on_connected: Callable[[], None] | None = None
        self.on_disconnected: Callable[[], None] | None = None

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

    async def _maybe_404(self, method: str, path: str, **kw: Any) -> tuple[bool, Any]:
        try:
            return True, await self.request(method, path, **kw)
        except AriNotFound:
            return False, None

    # ---------------------------------------------------------------- asterisk

    async def asterisk_info(self) -> dict:
        return await self.request("GET", "/asterisk/info")

    # ---------------------------------------------------------------- channels

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{_q(channel_id)}/answer")

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        *,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> dict:
        """Start a playback on a channel; returns the Playback JSON (``id``, ``state`` ...).

        Several media may be given in one request: they play back to back as *one* playback
        (one id, one ``DELETE /playbacks/{id}`` stops the rest of the list).  Events observed
        on Asterisk 22.10 for ``[m1, m2, m3]`` (all carrying the same playback id)::

            PlaybackStarted    media_uri=m1 next_media_uri=m2
            PlaybackContinuing media_uri=m1 next_media_uri=m2   (state "continuing")
            PlaybackStarted    media_uri=m2 next_media_uri=m3
            PlaybackContinuing media_uri=m2 next_media_uri=m3
            PlaybackStarted    media_uri=m3                     (no next_media_uri)
            PlaybackFinished   media_uri=m3                     (state "done")

        i.e. one PlaybackStarted *per item*, one PlaybackContinuing per transition and a
        single PlaybackFinished; wait for PlaybackFinished, not for a PlaybackStarted count.
        A playback stopped with :meth:`stop_playback` ends with one PlaybackFinished (state
        "done" too).  A lone ``media`` string goes in the query string.  A list goes in a
        JSON body (``{"media": [...]}``) because ARI keeps only the *last* of repeated
        ``media`` query parameters, and its comma-separated form would split URIs that
        contain commas.
        """
        params = _params(lang=lang, playbackId=playback_id)
        path = f"/channels/{_q(channel_id)}/play"
        if isinstance(media, str):
            params.append(("media", media))
            return await self.request("POST", path, params=params)
        return await self.request("POST", path, params=params, body={"media": list(media)})

    async def stop_playback(self, playback_id: str) -> bool:
        """Stop a playback; False when it does not exist (already finished)."""
        found, _ = await self._maybe_404("DELETE", f"/playbacks/{_q(playback_id)}")
        return found

    async def continue_in_dialplan(
        self,
        channel_id: str,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/continue",
            params=_params(context=context, extension=extension, priority=priority, label=label),
        )

    async def hangup(self, channel_id: str, reason: str = "normal") -> bool:
        """Hang up; False when the channel no longer exists."""
        found, _ = await self._maybe_404(
            "DELETE", f"/channels/{_q(channel_id)}", params=_params(reason=reason)
        )
        return found

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/variable",
            params=_params(variable=name, value=value),
        )

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """Value of a channel variable; None when ARI answers 404 (no channel / variable)."""
        found, data = await self._maybe_404(
            "GET", f"/channels/{_q(channel_id)}/variable", params=_params(variable=name)
        )
        if not found or not isinstance(data, dict):
            return None
        return data.get("value")

    async def send_dtmf(
        self,
        channel_id: str,
        dtmf: str,
        *,
        before: int = 0,
        between: int = 100,
        duration: int = 100,
        after: int = 0,
    ) -> None:
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/dtmf",
            params=_params(
                dtmf=dtmf, before=before, between=between, duration=duration, after=after
            ),
        )

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        caller_id: str | None = None,
        timeout: int = 30,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> dict:
        """POST /channels.  With ``app`` the channel enters that Stasis app once answered."""
        params = _params(
            endpoint=endpoint,
            app=app,
            appArgs=None if app_args is None else _csv(app_args),
            context=context,
            extension=extension,
            priority=priority,
            callerId=caller_id,
            timeout=timeout,
            channelId=channel_id,
            otherChannelId=other_channel_id,
        )
        body = {"variables": dict(variables)} if variables else None
        return await self.request("POST", "/channels", params=params, body=body)

    async def create_channel(
        self,
        endpoint: str,
        *,
        app: str,
        app_args: str | Sequence[str] | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        variables: Mapping[str, str] | None = None,
        formats: str | None = None,
    ) -> dict:
        """POST /channels/create: the channel is put in ``app`` right away, not dialled yet.

        ``formats`` (e.g. ``"ulaw"``) matters for Local channels: without it Asterisk creates
        them in signed linear at 192 kHz and spends most of its CPU resampling.
        """
        params = _params(
            endpoint=endpoint,
            app=app,
            appArgs=None if app_args is None else _csv(app_args),
            channelId=channel_id,
            otherChannelId=other_channel_id,
            originator=originator,
            formats=formats,
        )
        body = {"variables": dict(variables)} if variables else None
        return await self.request("POST", "/channels/create", params=params, body=body)

    async def dial(
        self, channel_id: str, *, caller: str | None = None, timeout: int | None = None
    ) -> None:
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/dial",
            params=_params(caller=caller, timeout=timeout),
        )

    async def get_channel(self, channel_id: str) -> dict | None:
        _, data = await self._maybe_404("GET", f"/channels/{_q(channel_id)}")
        return data

    async def list_channels(self) -> list[dict]:
        return await self.request("GET", "/channels") or []

    async def ring(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{_q(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{_q(channel_id)}/ring")

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self.request(
            "POST", f"/channels/{_q(channel_id)}/moh", params=_params(mohClass=moh_class)
        )

    async def stop_moh(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{_q(channel_id)}/moh")

    # ---------------------------------------------------------------- bridges

    async def create_bridge(
        self, bridge_type: str = "mixing", bridge_id: str | None = None, name: str | None = None
    ) -> dict:
        return await self.request(
            "POST", "/bridges", params=_params(type=bridge_type, bridgeId=bridge_id, name=name)
        )

    async def add_channel_to_bridge(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        await self.request(
            "POST",
            f"/bridges/{_q(bridge_id)}/addChannel",
            params=_params(channel=_csv(channel_ids)),
        )

    async def remove_channel_from_bridge(
        self, bridge_id: str, channel_ids: str | Sequence[str]
    ) -> None:
        await self.request(
            "POST",
            f"/bridges/{_q(bridge_id)}/removeChannel",
            params=_params(channel=_csv(channel_ids)),
        )

    async def list_bridges(self) -> list[dict]:
        return await self.request("GET", "/bridges") or []

    async def destroy_bridge(self, bridge_id: str) -> bool:
        found, _ = await self._maybe_404("DELETE", f"/bridges/{_q(bridge_id)}")
        return found

    # ---------------------------------------------------------------- applications

    async def get_application(self) -> dict:
        """This application's subscriptions (channel_ids, bridge_ids, endpoint_ids, ...)."""
        return await self.request("GET", f"/applications/{_q(self.app)}")

    async def subscribe(self, event_source: str) -> dict:
        """Subscribe this app to e.g. ``channel:ID``, ``bridge:ID``, ``endpoint:PJSIP/alice``."""
        return await self.request(
            "POST",
            f"/applications/{_q(self.app)}/subscription",
            params=_params(eventSource=event_source),
        )

    async def unsubscribe(self, event_source: str) -> dict:
        return await self.request(
            "DELETE",
            f"/applications/{_q(self.app)}/subscription",
            params=_params(eventSource=event_source),
        )

    # ---------------------------------------------------------------- endpoints

    async def set_event_filter(self, allowed: Sequence[str] | None = None,
                               disallowed: Sequence[str] | None = None) -> dict:
        """PUT /applications/{app}/eventFilter: only these event types reach this app.

        Asterisk then neither builds nor sends the others (ChannelVarset for every variable
        we set, PlaybackStarted, ChannelDialplan, ...), which saves CPU on both sides.
        """
        body: dict[str, list[dict[str, str]]] = {}
        if allowed is not None:
            body["allowed"] = [{"type": t} for t in allowed]
        if disallowed is not None:
            body["disallowed"] = [{"type": t} for t in disallowed]
        return await self.request("PUT", f"/applications/{_q(self.app)}/eventFilter",
                                  body=body)

    async def get_endpoint(self, tech: str, resource: str) -> dict | None:
        _, data = await self._maybe_404("GET", f"/endpoints/{_q(tech)}/{_q(resource)}")
        return data

    async def list_endpoints(self) -> list[dict]:
        return await self.request("GET", "/endpoints") or []

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
                    async with asyncio.timeout(self.request_timeout):
                        ws = await self.session.ws_connect(
                            url,
                            params=params,
                            heartbeat=self.heartbeat,
                            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                            autoping=True,
                        )
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
                    log.info("ARI websocket connected to %s (app=%s)", self.api_url, self.app)
                    self._set_connected(True)
                    try:
                        reason = await self._consume(ws, handler)
                    finally:
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
