"""Taking back the calls already in the engine's application (the shell side of ivr/resume.py).

When the engine (re)connects to ARI — after a restart, a crash, or a lost websocket — callers
may be sitting in its Stasis application with nobody driving them. Asterisk lists them:
a channel running ``Stasis(<app>,...)`` has ``dialplan.app_name == "Stasis"`` and its
arguments in ``dialplan.app_data``. Each is taken back: a caller bridged with a user's phone
stays bridged (the engine watches the pair again), a user's leg left ringing without its
caller is hung up, and every other caller resumes from the variables on its channel
(:mod:`ivr_engine.ivr.resume`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ..ari import AriClient, AriError
from ..ivr.resume import CHANNEL_VARIABLES, ChannelState, channel_state, stale_playbacks

log = logging.getLogger("ivr_engine.calls")


@dataclass(frozen=True, slots=True)
class Orphan:
    """A channel in our application that no session drives."""

    channel: dict  # the ARI channel JSON
    args: tuple[str, ...]  # its Stasis arguments (without the application name)
    bridged_with: str | None = None  # a user's leg it is talking to (ringer bridge)

    @property
    def id(self) -> str:
        return str(self.channel.get("id", ""))

    @property
    def is_leg(self) -> bool:
        return bool(self.args) and self.args[0] == "leg"


def stasis_args(channel: dict, app: str) -> tuple[str, ...] | None:
    """The Stasis arguments of a channel in ``app``, or None when it is elsewhere."""
    dialplan = channel.get("dialplan") or {}
    if dialplan.get("app_name") != "Stasis":
        return None
    name, *args = str(dialplan.get("app_data") or "").split(",")
    return tuple(args) if name == app else None


async def find_orphans(ari: AriClient, known: object,
                       channels: list[dict] | None = None) -> list[Orphan]:
    """Channels in ``ari.app`` that are not in ``known`` (a container of channel ids), among
    ``channels`` (Asterisk's list; asked for when not given)."""
    if channels is None:
        channels = await ari.list_channels()
    found = [(c, a) for c in channels
             if (a := stasis_args(c, ari.app)) is not None and c.get("id") not in known]
    if not found:
        return []
    partner: dict[str, str] = {}
    for bridge in await ari.list_bridges():
        members = list(bridge.get("channels") or [])
        if str(bridge.get("id", "")).endswith("-bridge") and len(members) == 2:
            partner[members[0]], partner[members[1]] = members[1], members[0]
    return [Orphan(c, a, partner.get(str(c.get("id")))) for c, a in found]


async def read_state(ari: AriClient, channel_id: str) -> ChannelState:
    """The engine's variables on the channel, read concurrently."""
    values = await asyncio.gather(*(ari.get_variable(channel_id, v) for v in CHANNEL_VARIABLES))
    return channel_state(dict(zip(CHANNEL_VARIABLES, values)))


async def stop_stale(ari: AriClient, channel_id: str, state: ChannelState) -> int:
    """Stop what the previous engine may still be playing (else our first prompt would queue
    behind it). Returns how many were found."""
    ids = stale_playbacks(channel_id, state)
    results = await asyncio.gather(*(ari.stop_playback(i) for i in ids), return_exceptions=True)
    for i, r in zip(ids, results):
        if isinstance(r, AriError):
            log.warning("stopping stale playback %s failed: %s", i, r)
    return sum(1 for r in results if r is True)
