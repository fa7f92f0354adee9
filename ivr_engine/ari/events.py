"""Typed ARI events, parsed by hand from Asterisk's JSON (no pydantic: this is the hot path).

Every event is a frozen, slotted dataclass deriving from :class:`Event`.  ``parse_event`` maps
the ``type`` discriminator to a small parser; anything it does not know (or cannot parse)
becomes an :class:`UnknownEvent` that still carries the raw dict, so it never raises.

Every event has a ``channel_id`` property: the id of the channel the event is about, or None.
For playback events that is the channel the playback targets (``target_uri`` ``channel:ID``),
for ``Dial`` it is the *peer* (the channel being dialled).

The resource models events carry (:class:`Channel`, :class:`Playback`) live in ``models.py``
and are re-exported here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from .models import Channel, Playback, _int, _str, parse_channel, parse_playback

__all__ = [
    "Channel",
    "Playback",
    "Event",
    "StasisStart",
    "StasisEnd",
    "ChannelDtmfReceived",
    "ChannelHangupRequest",
    "ChannelDestroyed",
    "ChannelStateChange",
    "ChannelVarset",
    "ChannelDialplan",
    "ChannelEnteredBridge",
    "ChannelLeftBridge",
    "PlaybackStarted",
    "PlaybackContinuing",
    "PlaybackFinished",
    "ApplicationReplaced",
    "ContactStatusChange",
    "EndpointStateChange",
    "Dial",
    "UnknownEvent",
    "parse_event",
    "parse_channel",
    "parse_playback",
]

log = logging.getLogger("ivr_engine.ari")


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    application: str
    timestamp: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def channel_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class _ChannelEvent(Event):
    channel: Channel

    @property
    def channel_id(self) -> str | None:
        return self.channel.id


@dataclass(frozen=True, slots=True)
class StasisStart(_ChannelEvent):
    args: tuple[str, ...] = ()
    replace_channel: Channel | None = None


@dataclass(frozen=True, slots=True)
class StasisEnd(_ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class ChannelDtmfReceived(_ChannelEvent):
    digit: str = ""
    duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class ChannelHangupRequest(_ChannelEvent):
    cause: int | None = None
    soft: bool = False


@dataclass(frozen=True, slots=True)
class ChannelDestroyed(_ChannelEvent):
    cause: int | None = None
    cause_txt: str = ""


@dataclass(frozen=True, slots=True)
class ChannelStateChange(_ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class ChannelVarset(Event):
    """A channel variable was set; ``channel`` is None for global variables."""

    channel: Channel | None
    variable: str = ""
    value: str = ""

    @property
    def channel_id(self) -> str | None:
        return self.channel.id if self.channel is not None else None


@dataclass(frozen=True, slots=True)
class ChannelDialplan(_ChannelEvent):
    dialplan_app: str = ""
    dialplan_app_data: str = ""


@dataclass(frozen=True, slots=True)
class ChannelEnteredBridge(_ChannelEvent):
    bridge_id: str = ""


@dataclass(frozen=True, slots=True)
class ChannelLeftBridge(_ChannelEvent):
    bridge_id: str = ""


@dataclass(frozen=True, slots=True)
class _PlaybackEvent(Event):
    playback: Playback

    @property
    def channel_id(self) -> str | None:
        return self.playback.channel_id


@dataclass(frozen=True, slots=True)
class PlaybackStarted(_PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True)
class PlaybackContinuing(_PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True)
class PlaybackFinished(_PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True)
class ApplicationReplaced(Event):
    pass


@dataclass(frozen=True, slots=True)
class ContactStatusChange(Event):
    """PJSIP contact status; ``roundtrip_usec`` is ARI's string as an int (None if absent)."""

    endpoint_tech: str = ""
    endpoint_resource: str = ""
    aor: str = ""
    uri: str = ""
    contact_status: str = ""
    roundtrip_usec: int | None = None


@dataclass(frozen=True, slots=True)
class EndpointStateChange(Event):
    endpoint_tech: str = ""
    endpoint_resource: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True)
class Dial(Event):
    """Dial progress; ``channel_id`` is the peer's (the channel being dialled)."""

    caller: Channel | None = None
    peer: Channel | None = None
    dialstatus: str = ""
    forward: str = ""

    @property
    def channel_id(self) -> str | None:
        return self.peer.id if self.peer is not None else None


@dataclass(frozen=True, slots=True)
class UnknownEvent(Event):
    """Any event type this module does not model (or could not parse); see ``raw``."""


# --------------------------------------------------------------------------------------------
# Parsing


def _base(d: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    return _str(d.get("type")), _str(d.get("application")), _str(d.get("timestamp")), d


def _chan(d: dict[str, Any]) -> Channel:
    # Channel events without a channel object are malformed; KeyError -> UnknownEvent.
    return Channel.from_json(d["channel"])


def _p_stasis_start(d: dict[str, Any]) -> Event:
    args = d.get("args") or ()
    return StasisStart(
        *_base(d),
        channel=_chan(d),
        args=tuple(_str(a) for a in args),
        replace_channel=parse_channel(d.get("replace_channel")),
    )


def _p_simple(cls: type[_ChannelEvent]) -> Callable[[dict[str, Any]], Event]:
    def parse(d: dict[str, Any]) -> Event:
        return cls(*_base(d), channel=_chan(d))

    return parse


def _p_dtmf(d: dict[str, Any]) -> Event:
    return ChannelDtmfReceived(
        *_base(d),
        channel=_chan(d),
        digit=_str(d.get("digit")),
        duration_ms=_int(d.get("duration_ms"), 0) or 0,
    )


def _p_hangup_request(d: dict[str, Any]) -> Event:
    return ChannelHangupRequest(
        *_base(d), channel=_chan(d), cause=_int(d.get("cause")), soft=bool(d.get("soft", False))
    )


def _p_destroyed(d: dict[str, Any]) -> Event:
    return ChannelDestroyed(
        *_base(d),
        channel=_chan(d),
        cause=_int(d.get("cause")),
        cause_txt=_str(d.get("cause_txt")),
    )


def _p_varset(d: dict[str, Any]) -> Event:
    return ChannelVarset(
        *_base(d),
        channel=parse_channel(d.get("channel")),
        variable=_str(d.get("variable")),
        value=_str(d.get("value")),
    )


def _p_dialplan(d: dict[str, Any]) -> Event:
    return ChannelDialplan(
        *_base(d),
        channel=_chan(d),
        dialplan_app=_str(d.get("dialplan_app")),
        dialplan_app_data=_str(d.get("dialplan_app_data")),
    )


def _p_bridge(cls: type[ChannelEnteredBridge] | type[ChannelLeftBridge]):
    def parse(d: dict[str, Any]) -> Event:
        bridge = d.get("bridge") or {}
        return cls(*_base(d), channel=_chan(d), bridge_id=_str(bridge.get("id")))

    return parse


def _p_playback(cls: type[_PlaybackEvent]) -> Callable[[dict[str, Any]], Event]:
    def parse(d: dict[str, Any]) -> Event:
        return cls(*_base(d), playback=Playback.from_json(d["playback"]))

    return parse


def _p_app_replaced(d: dict[str, Any]) -> Event:
    return ApplicationReplaced(*_base(d))


def _p_contact_status(d: dict[str, Any]) -> Event:
    endpoint = d.get("endpoint") or {}
    info = d.get("contact_info") or {}
    return ContactStatusChange(
        *_base(d),
        endpoint_tech=_str(endpoint.get("technology")),
        endpoint_resource=_str(endpoint.get("resource")),
        aor=_str(info.get("aor")),
        uri=_str(info.get("uri")),
        contact_status=_str(info.get("contact_status")),
        roundtrip_usec=_int(info.get("roundtrip_usec")),
    )


def _p_endpoint_state(d: dict[str, Any]) -> Event:
    endpoint = d.get("endpoint") or {}
    return EndpointStateChange(
        *_base(d),
        endpoint_tech=_str(endpoint.get("technology")),
        endpoint_resource=_str(endpoint.get("resource")),
        state=_str(endpoint.get("state")),
    )


def _p_dial(d: dict[str, Any]) -> Event:
    return Dial(
        *_base(d),
        caller=parse_channel(d.get("caller")),
        peer=parse_channel(d.get("peer")),
        dialstatus=_str(d.get("dialstatus")),
        forward=_str(d.get("forward")),
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "StasisStart": _p_stasis_start,
    "StasisEnd": _p_simple(StasisEnd),
    "ChannelDtmfReceived": _p_dtmf,
    "ChannelHangupRequest": _p_hangup_request,
    "ChannelDestroyed": _p_destroyed,
    "ChannelStateChange": _p_simple(ChannelStateChange),
    "ChannelVarset": _p_varset,
    "ChannelDialplan": _p_dialplan,
    "ChannelEnteredBridge": _p_bridge(ChannelEnteredBridge),
    "ChannelLeftBridge": _p_bridge(ChannelLeftBridge),
    "PlaybackStarted": _p_playback(PlaybackStarted),
    "PlaybackContinuing": _p_playback(PlaybackContinuing),
    "PlaybackFinished": _p_playback(PlaybackFinished),
    "ApplicationReplaced": _p_app_replaced,
    "ContactStatusChange": _p_contact_status,
    "EndpointStateChange": _p_endpoint_state,
    "Dial": _p_dial,
}


def parse_event(data: dict[str, Any]) -> Event:
    """Turn one decoded ARI websocket message into a typed event. Never raises.

    Unknown types, and known types missing a required object (e.g. a StasisStart without
    ``channel``), become :class:`UnknownEvent` with the original dict in ``raw``.
    """
    if not isinstance(data, dict):
        return UnknownEvent("", "", "", {"value": data})
    etype = data.get("type")
    parser = _PARSERS.get(etype) if isinstance(etype, str) else None
    if parser is not None:
        try:
            return parser(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.debug("unparseable ARI %s event (%r); kept as UnknownEvent", data.get("type"), exc)
    return UnknownEvent(*_base(data))
