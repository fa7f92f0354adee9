"""What Asterisk did with one call, from the ARI events about its channel.

A :class:`CallRecord` is filled in from the events Asterisk sends about one channel — the
dialplan side of a Local-channel caller (``caller.py``) or a SIPp caller's trunk channel
(``sipp.py``) — and keeps them as a timeline of ``(monotonic time the event arrived,
Asterisk's event timestamp in epoch seconds, kind, detail)``:

===============  ================================  ======================================
kind             from                              detail
===============  ================================  ======================================
``prompt``       PlaybackStarted                   the media (one per media item)
``prompt-end``   PlaybackFinished                  the media
``key``          ChannelDtmfReceived               the digit Asterisk decoded
``var``          ChannelVarset                     ``NAME=value``
``app``          ChannelDialplan                   ``App(data)``
``dial``         Dial (this channel dialling)      the dial status
``state``        ChannelStateChange                the new state (``Up``: answered)
``hangup``       ChannelHangupRequest              ``""``
``ended``        ChannelDestroyed (or the caller)  the cause, if Asterisk gave one
``send``         the Local caller sent a key       the key (no Asterisk timestamp)
``post-dial``    the Local caller sent post-dial   the digits (no Asterisk timestamp)
===============  ================================  ======================================

:class:`AriListener` is the ARI application both callers listen with: one websocket whose
events are routed by channel to whoever follows that channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from ..ari import (
    AriClient,
    ChannelDestroyed,
    ChannelDialplan,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelStateChange,
    ChannelVarset,
    Dial,
    Event,
    PlaybackFinished,
    PlaybackStarted,
)

#: dialplan applications that take a call over after the engine -> destination type
HANDOFF_APPS = {"Queue": "queue", "VoiceMail": "voicemail", "Dial": "endpoint"}

#: (arrival time.monotonic(), Asterisk's timestamp in epoch seconds or None, kind, detail)
Entry = tuple[float, float | None, str, str]
Route = Callable[[float, Event], None]


def epoch(timestamp: str | None) -> float | None:
    """Asterisk's event timestamp (``2026-11-21T12:24:48.367+0000``) in epoch seconds."""
    try:
        return dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except (TypeError, ValueError):
        return None


def handoff_destination(app: str, data: str) -> dict[str, Any] | None:
    """``{"type", "target"}`` for a hand-off application (``Queue(sales,...)`` -> queue
    sales, ``Dial(PJSIP/alice,30)`` -> endpoint alice); None for any other application."""
    kind = HANDOFF_APPS.get(app)
    if kind is None:
        return None
    target = data.split(",")[0]
    if kind == "endpoint" and "/" in target:
        target = target.split("/", 1)[1]
    return {"type": kind, "target": target}


def declared_destination(value: str | None) -> dict[str, Any] | None:
    """The engine's ``IVR_DESTINATION`` (``message-then-hangup:bye``) as a destination."""
    if not value:
        return None
    kind, _, target = value.partition(":")
    return {"type": kind, "target": target or None}


def channel_of(ev: Event) -> str | None:
    """The channel an event is about: a Dial's calling channel (its ``channel_id`` is the
    peer's, the channel being dialled), else the event's own channel."""
    if isinstance(ev, Dial) and ev.caller is not None:
        return ev.caller.id
    return ev.channel_id


@dataclass
class CallRecord:
    """What Asterisk did with one call (see the module docstring for the timeline)."""

    caller: str = ""
    channel: str = ""  # the channel followed: Local ;2 (dialplan side) or the trunk channel
    keys: list[str] = field(default_factory=list)  # DTMF Asterisk decoded on the channel
    prompts: list[str] = field(default_factory=list)  # media started, in order
    path: list[str] = field(default_factory=list)  # the engine's last IVR_PATH
    variables: dict[str, str] = field(default_factory=dict)  # last value of each
    dialplan: list[tuple[str, str]] = field(default_factory=list)  # (app, data) run
    dial_status: list[str] = field(default_factory=list)  # of Dial()s this channel made
    ended: bool = False
    timeline: list[Entry] = field(default_factory=list)
    #: earlier channels of this caller that a node refused before answering (Kamailio then
    #: tried the next node): channel id -> what Asterisk did with it
    refused: dict[str, CallRecord] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return any(k == "state" and w == "Up" for _, _, k, w in self.timeline)

    def move_to(self, channel: str) -> None:
        """The channel followed so far was refused before it was answered and the caller
        reached another node on ``channel``: the old one is kept in ``refused`` and the
        record starts again."""
        old = CallRecord(self.caller, self.channel, self.keys, self.prompts, self.path,
                         self.variables, self.dialplan, self.dial_status, self.ended,
                         self.timeline)
        self.refused[self.channel] = old
        self.channel = channel
        self.keys, self.prompts, self.path, self.dialplan, self.dial_status = [], [], [], [], []
        self.variables, self.ended, self.timeline = {}, False, []

    def add(self, kind: str, detail: str = "", now: float | None = None,
            ts: float | None = None) -> None:
        self.timeline.append((time.monotonic() if now is None else now, ts, kind, detail))

    def observe(self, ev: Event, now: float | None = None) -> str | None:
        """Record one event about this call's channel; returns the kind recorded, or None
        for an event that says nothing about the call."""
        now = time.monotonic() if now is None else now
        ts = epoch(ev.timestamp)
        if isinstance(ev, PlaybackStarted):
            # Asterisk 22 sends one for every item of a multi-media playback
            if not ev.playback.media_uri:
                return None
            self.prompts.append(ev.playback.media_uri)
            kind, detail = "prompt", ev.playback.media_uri
        elif isinstance(ev, PlaybackFinished):
            kind, detail = "prompt-end", ev.playback.media_uri
        elif isinstance(ev, ChannelDtmfReceived):
            self.keys.append(ev.digit)
            kind, detail = "key", ev.digit
        elif isinstance(ev, ChannelVarset):
            self.variables[ev.variable] = ev.value
            if ev.variable == "IVR_PATH":
                self.path = ev.value.split("/") if ev.value else []
            kind, detail = "var", f"{ev.variable}={ev.value}"
        elif isinstance(ev, ChannelDialplan):
            self.dialplan.append((ev.dialplan_app, ev.dialplan_app_data))
            kind, detail = "app", f"{ev.dialplan_app}({ev.dialplan_app_data})"
        elif isinstance(ev, Dial):
            if ev.caller is None or ev.caller.id != self.channel or not ev.dialstatus:
                return None
            self.dial_status.append(ev.dialstatus)
            kind, detail = "dial", ev.dialstatus
        elif isinstance(ev, ChannelStateChange):
            kind, detail = "state", ev.channel.state
        elif isinstance(ev, ChannelHangupRequest):
            kind, detail = "hangup", ""
        elif isinstance(ev, ChannelDestroyed):
            if self.ended:
                return None
            self.ended = True
            kind, detail = "ended", ev.cause_txt
        else:
            return None
        self.timeline.append((now, ts, kind, detail))
        return kind

    def end(self, now: float | None = None, ts: float | None = None) -> None:
        """The call is over for whoever follows it (a Local caller that hung up or saw the
        hang-up; Asterisk's ChannelDestroyed does the same through :meth:`observe`)."""
        if not self.ended:
            self.ended = True
            self.add("ended", "", now, ts)

    def first(self, kind: str, what: str = "", after: float = 0.0) -> float | None:
        """When ``kind`` was first seen at or after ``after`` (``what`` matches the start of
        its detail); monotonic seconds, None if never."""
        for t, _, k, w in self.timeline:
            if t >= after and k == kind and w.startswith(what):
                return t
        return None

    @property
    def handoff(self) -> dict[str, Any] | None:
        """The first hand-off application Asterisk really ran (Queue, VoiceMail, Dial)."""
        for app, data in self.dialplan:
            d = handoff_destination(app, data)
            if d is not None:
                return d
        return None

    @property
    def declared(self) -> dict[str, Any] | None:
        """The end the engine declared (``IVR_DESTINATION``), whether or not it happened."""
        return declared_destination(self.variables.get("IVR_DESTINATION"))

    @property
    def destination(self) -> dict[str, Any] | None:
        """The hand-off Asterisk really ran, else the end the engine declared once the
        call has ended; None while neither is known."""
        return self.handoff or (self.declared if self.ended else None)

    @property
    def apps(self) -> list[str]:
        return [app for app, _ in self.dialplan]


class AriListener:
    """An ARI application of its own: one websocket, events routed by channel.

    ``routes[channel id]`` is called with ``(arrival time.monotonic(), event)`` for every
    event about that channel; anything else goes to ``on_unrouted`` (if set).
    ``async with`` opens the connection and waits until the websocket is up."""

    def __init__(self, ari_url: str, username: str, password: str, app: str, *,
                 request_timeout: float = 10.0, max_connections: int = 100):
        self.app = app
        self.ari = AriClient(ari_url, username, password, app,
                             request_timeout=request_timeout, max_connections=max_connections)
        self.routes: dict[str, Route] = {}
        self.on_unrouted: Route | None = None
        self.events_seen = 0
        self._task: asyncio.Task | None = None

    def _handle(self, ev: Event) -> None:
        self.events_seen += 1
        now = time.monotonic()
        cid = channel_of(ev)
        route = self.routes.get(cid) if cid is not None else None
        if route is not None:
            route(now, ev)
        else:
            self.unrouted(now, ev)

    def unrouted(self, now: float, ev: Event) -> None:
        if self.on_unrouted is not None:
            self.on_unrouted(now, ev)

    async def open(self) -> None:
        await self.ari.open()
        self._task = asyncio.create_task(self.ari.run(self._handle), name=f"ari-{self.app}")
        try:
            await self.ari.wait_connected(timeout=10)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - on the way out
                pass
            self._task = None
        await self.ari.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
