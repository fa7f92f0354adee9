"""Asterisk REST Interface: typed events and models, an asyncio client and per-channel dispatch."""

from .client import AriClient
from .dispatch import ChannelDispatcher
from .errors import AriAppReplaced, AriError, AriNotFound
from .events import (
    ApplicationReplaced,
    ChannelDestroyed,
    ChannelDialplan,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    ChannelLeftBridge,
    ChannelStateChange,
    ChannelVarset,
    ContactStatusChange,
    Dial,
    EndpointStateChange,
    Event,
    PlaybackContinuing,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
    UnknownEvent,
    parse_event,
)
from .models import Channel, Playback

__all__ = [
    "AriAppReplaced",
    "AriClient",
    "AriError",
    "AriNotFound",
    "ChannelDispatcher",
    "ApplicationReplaced",
    "Channel",
    "ChannelDestroyed",
    "ChannelDialplan",
    "ChannelDtmfReceived",
    "ChannelEnteredBridge",
    "ChannelHangupRequest",
    "ChannelLeftBridge",
    "ChannelStateChange",
    "ChannelVarset",
    "ContactStatusChange",
    "Dial",
    "EndpointStateChange",
    "Event",
    "Playback",
    "PlaybackContinuing",
    "PlaybackFinished",
    "PlaybackStarted",
    "StasisEnd",
    "StasisStart",
    "UnknownEvent",
    "parse_event",
]
