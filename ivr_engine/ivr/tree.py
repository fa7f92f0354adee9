"""The compiled, immutable IVR tree the runtime walks. Pure.

Menus form a forest: a menu reached through another menu's option is that menu's child and has
exactly one parent; a menu with no parent is top-level. ``parent`` and ``root`` are therefore
static facts, which is what makes ``*`` (back) and the dial-0 policies ``parent`` and ``top``
predictable, and what stops a caller from climbing out of the structure they entered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from .destinations import Destination, Dial0
from .messages import Messages
from .schedule import Schedule


@dataclass(frozen=True, slots=True)
class MenuNode:
    name: str
    prompt: str
    options: Mapping[str, Destination]
    timeout: float
    max_invalid: int
    max_timeouts: int
    dial0: Dial0
    on_invalid: Destination
    on_timeout: Destination
    invalid_message: str | None
    timeout_message: str | None
    schedule: Schedule | None
    after_hours_message: str | None
    after_hours_destination: Destination | None
    parent: str | None
    root: str


@dataclass(frozen=True, slots=True)
class EntryPoint:
    """A direct access point: how a call enters the tree."""

    kind: str  # "phone-number" (the mobile-apps issue adds more)
    label: str  # e.g. "did:+15551230000"
    menu: str
    language: str


@dataclass(frozen=True, slots=True)
class IvrTree:
    menus: Mapping[str, MenuNode]
    messages: Messages
    default_language: str
    callback_message: str | None = None
    voicemail_message: str | None = None
    no_answer: Mapping[str, Destination] = field(default_factory=dict)  # user -> if unanswered

    def __post_init__(self) -> None:
        object.__setattr__(self, "menus", MappingProxyType(dict(self.menus)))
        object.__setattr__(self, "no_answer", MappingProxyType(dict(self.no_answer)))

    def top_level(self) -> list[str]:
        return [m.name for m in self.menus.values() if m.parent is None]
