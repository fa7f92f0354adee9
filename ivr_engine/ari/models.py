"""ARI resource models carried by events (channels, playbacks), parsed by hand from JSON.

Frozen, slotted dataclasses (no pydantic: this is the hot path).  ``parse_channel`` /
``parse_playback`` return None for an absent or empty object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Channel", "Playback", "parse_channel", "parse_playback"]


def _int(value: Any, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _str(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str = ""
    state: str = ""
    caller_number: str = ""
    caller_name: str = ""
    language: str = ""
    context: str = ""
    exten: str = ""
    priority: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Channel:
        caller = data.get("caller") or {}
        dialplan = data.get("dialplan") or {}
        return cls(
            id=_str(data.get("id")),
            name=_str(data.get("name")),
            state=_str(data.get("state")),
            caller_number=_str(caller.get("number")),
            caller_name=_str(caller.get("name")),
            language=_str(data.get("language")),
            context=_str(dialplan.get("context")),
            exten=_str(dialplan.get("exten")),
            priority=_int(dialplan.get("priority")),
        )


@dataclass(frozen=True, slots=True)
class Playback:
    id: str
    media_uri: str = ""
    next_media_uri: str | None = None
    target_uri: str = ""
    state: str = ""
    language: str = ""

    @property
    def channel_id(self) -> str | None:
        if self.target_uri.startswith("channel:"):
            return self.target_uri[len("channel:"):]
        return None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Playback:
        return cls(
            id=_str(data.get("id")),
            media_uri=_str(data.get("media_uri")),
            next_media_uri=data.get("next_media_uri") or None,
            target_uri=_str(data.get("target_uri")),
            state=_str(data.get("state")),
            language=_str(data.get("language")),
        )


def parse_channel(data: dict[str, Any] | None) -> Channel | None:
    """Channel from ARI JSON, or None when ``data`` is empty/None."""
    if not data:
        return None
    return Channel.from_json(data)


def parse_playback(data: dict[str, Any] | None) -> Playback | None:
    if not data:
        return None
    return Playback.from_json(data)
