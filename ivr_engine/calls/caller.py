"""A scripted PSTN caller for live test calls (``ivr-engine call``, tests, benchmarks).

It places a real call through Asterisk: a Local channel pair whose ``;1`` half stays in the
caller's own ARI application and whose ``;2`` half runs the dialplan (``from-pstn`` by
default) and so enters the engine like any PSTN call. The caller subscribes to the ``;2``
channel and reports what really happened there:

- prompts: the media of every ``PlaybackStarted`` on that channel (one per media item);
- path: the ``IVR_PATH`` variable the engine publishes on each menu entry;
- keys: sent (as DTMF through the Local pair) each time the engine publishes
  ``IVR_AWAITING``, i.e. when the menu waits for input after its prompt; when the keys run
  out at that point, the caller hangs up (``caller-hangup``); ``t`` sends nothing and lets
  the menu time out;
- destination: the dialplan application the channel really reached after leaving the engine
  (``Queue``, ``VoiceMail``, ``Dial``: from ``ChannelDialplan`` events), or the engine's
  declared ``IVR_DESTINATION`` confirmed by the channel's hang-up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Sequence

from ..ari import (
    AriClient,
    ChannelDestroyed,
    ChannelDialplan,
    ChannelHangupRequest,
    ChannelStateChange,
    ChannelVarset,
    Dial,
    Event,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
)

_APP_DESTINATIONS = {"Queue": "queue", "VoiceMail": "voicemail", "Dial": "endpoint"}


def _observed_destination(app: str, data: str) -> dict[str, Any]:
    kind = _APP_DESTINATIONS[app]
    target = data.split(",")[0]
    if kind == "endpoint" and "/" in target:
        target = target.split("/", 1)[1]
    return {"type": kind, "target": target}


class CallerPool:
    """One ARI connection shared by many concurrent scripted calls."""

    def __init__(self, ari_url: str, username: str, password: str, app: str | None = None):
        self.app = app or f"ivr-caller-{uuid.uuid4().hex[:8]}"
        self.ari = AriClient(ari_url, username, password, self.app)
        self._routes: dict[str, asyncio.Queue] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task | None = None

    def _handle(self, ev: Event) -> None:
        cid = ev.channel_id
        if isinstance(ev, Dial) and ev.caller is not None:
            cid = ev.caller.id  # a Dial event is about the peer; we follow the calling channel
        if cid is not None and cid in self._routes:
            self._routes[cid].put_nowait((time.perf_counter(), ev))

    async def __aenter__(self) -> "CallerPool":
        await self.ari.__aenter__()
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._runner = self._tg.create_task(self.ari.run(self._handle))
        await self.ari.wait_connected(timeout=10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._tg is not None and self._runner is not None
        self._runner.cancel()
        try:
            await self._tg.__aexit__(None, None, None)
        finally:
            await self.ari.__aexit__(None, None, None)

    async def call(self, *, did: str, caller: str, keys: Sequence[str], timeout: float = 120.0,
                   context: str = "from-pstn", hold: float = 0.0,
                   post_dial: str = "", variables: dict[str, str] | None = None
                   ) -> dict[str, Any]:
        """Place one call and return prompts, path, destination and timings.

        ``hold``: seconds to stay on the line once the destination is reached (e.g. to let an
        endpoint answer) before hanging up. ``post_dial``: DTMF sent as soon as the call is
        answered, like a phone dialling ``+17144505656,,482913#`` (the app's token).
        ``variables``: channel variables for the caller's channel (``__NAME`` ones are
        inherited by the dialplan side).
        """
        ari = self.ari
        a = f"caller-{uuid.uuid4().hex[:12]}"
        b = a + "-ivr"
        q: asyncio.Queue = asyncio.Queue()
        self._routes[a] = self._routes[b] = q
        pending = list(keys)
        result: dict[str, Any] = {
            "did": did, "caller": caller, "channel": b, "prompts": [], "path": [],
            "destination": None, "declared_destination": None, "fallback": False,
            "keys_used": 0, "key_latencies_ms": [], "dialplan": [],
            "dial_status": [],
        }
        key_sent_at: float | None = None
        t0 = time.perf_counter()
        try:
            await ari.create_channel(f"Local/{did}@{context}", app=self.app, channel_id=a,
                                     other_channel_id=b, formats="ulaw",
                                     variables={"CONNECTEDLINE(num)": caller,
                                                "CONNECTEDLINE(name)": caller,
                                                **(variables or {})})
            await ari.subscribe(f"channel:{b}")
            async with asyncio.timeout(timeout):
                # a created channel enters our app asynchronously; dial only once it is there
                while not isinstance((await q.get())[1], StasisStart):
                    pass
                await ari.dial(a, timeout=int(timeout))
                hold_until: float | None = None
                while True:
                    if hold_until is not None:
                        left = hold_until - time.perf_counter()
                        if left <= 0:
                            break
                        try:
                            ts, ev = await asyncio.wait_for(q.get(), left)
                        except TimeoutError:
                            break
                    else:
                        ts, ev = await q.get()
                    if isinstance(ev, PlaybackStarted) and ev.playback.channel_id == b:
                        # Asterisk 22 sends PlaybackStarted for every item of a multi-media
                        # playback (with a PlaybackContinuing between items)
                        if key_sent_at is not None:
                            result["key_latencies_ms"].append((ts - key_sent_at) * 1000)
                            key_sent_at = None
                        if ev.playback.media_uri:
                            result["prompts"].append(ev.playback.media_uri)
                    elif isinstance(ev, ChannelStateChange) and ev.channel_id == a and \
                            ev.channel.state == "Up" and post_dial:
                        await ari.send_dtmf(a, post_dial, between=80, duration=80)
                        post_dial = ""
                    elif isinstance(ev, ChannelVarset) and ev.channel_id == b:
                        if ev.variable == "IVR_PATH":
                            result["path"] = ev.value.split("/") if ev.value else []
                        elif ev.variable == "IVR_DESTINATION":
                            result["declared_destination"] = ev.value
                        elif ev.variable == "IVR_FALLBACK":
                            result["fallback"] = True
                        elif ev.variable == "IVR_AWAITING":
                            if not pending:
                                result["destination"] = {"type": "caller-hangup", "target": None}
                                break
                            key = pending.pop(0)
                            result["keys_used"] += 1
                            if key != "t":
                                key_sent_at = time.perf_counter()
                                await ari.send_dtmf(a, key, duration=100)
                    elif isinstance(ev, ChannelDialplan) and ev.channel_id == b:
                        result["dialplan"].append([ev.dialplan_app, ev.dialplan_app_data])
                        if ev.dialplan_app in _APP_DESTINATIONS and not result["destination"]:
                            result["destination"] = _observed_destination(ev.dialplan_app,
                                                                          ev.dialplan_app_data)
                            if not hold:
                                break
                            hold_until = time.perf_counter() + hold
                    elif isinstance(ev, Dial) and ev.caller is not None and ev.caller.id == b:
                        if ev.dialstatus:
                            result["dial_status"].append(ev.dialstatus)
                    elif isinstance(ev, (ChannelHangupRequest, ChannelDestroyed)) or (
                            isinstance(ev, StasisEnd) and ev.channel_id == a):
                        if result["destination"]:
                            break
                        declared = result["declared_destination"]
                        if declared:
                            kind, _, target = declared.partition(":")
                            result["destination"] = {"type": kind, "target": target or None}
                        else:
                            result["destination"] = {"type": "hangup", "target": None}
                        break
        finally:
            result["duration_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            self._routes.pop(a, None)
            self._routes.pop(b, None)
            await ari.hangup(a)
            try:
                await ari.unsubscribe(f"channel:{b}")
            except Exception:  # noqa: BLE001 - the channel may be gone already
                pass
        return result


async def place_call(ari_url: str, username: str, password: str, *, did: str, caller: str,
                     keys: Sequence[str], timeout: float = 120.0,
                     context: str = "from-pstn") -> dict[str, Any]:
    async with CallerPool(ari_url, username, password) as pool:
        return await pool.call(did=did, caller=caller, keys=keys, timeout=timeout,
                               context=context)
