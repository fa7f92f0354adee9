"""Named prompts with per-language sounds and a default-language fallback. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

#: media schemes Asterisk's ARI play accepts
MEDIA_SCHEMES = ("sound", "recording", "number", "digits", "characters", "tone")
_LANG = re.compile(r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$")


def is_language(code: str) -> bool:
    return bool(_LANG.match(code))


def normalize_media(ref: object) -> str:
    """``hello-world`` → ``sound:hello-world``; ``digits:123`` stays; bad refs raise ValueError."""
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"{ref!r} is not a sound reference")
    ref = ref.strip()
    scheme, sep, rest = ref.partition(":")
    if not sep:
        scheme, rest = "sound", ref
    if scheme not in MEDIA_SCHEMES:
        raise ValueError(f"{ref!r}: unknown media scheme {scheme!r} (use {', '.join(MEDIA_SCHEMES)})")
    if not rest or any(c.isspace() for c in rest) or ".." in rest:
        raise ValueError(f"{ref!r} is not a valid {scheme} reference")
    return f"{scheme}:{rest}"


@dataclass(frozen=True, slots=True)
class Prompt:
    """What to play: media references and the language to ask Asterisk for."""

    media: tuple[str, ...]
    language: str


class Messages:
    """Immutable table message → language → media, resolved with fallback.

    Mobile apps may override any message per language. Resolution order for a call of app A
    in language L: A's message in L (or L's base language), A's message in A's default
    language, then the engine's message in L (or its base), then in the engine's default.
    """

    __slots__ = ("_table", "_apps", "default_language")

    def __init__(self, table: Mapping[str, Mapping[str, tuple[str, ...]]], default_language: str,
                 apps: Mapping[str, tuple[Mapping[str, Mapping[str, tuple[str, ...]]], str]]
                 | None = None):
        self._table = _freeze(table)
        self._apps = MappingProxyType(
            {a: (_freeze(t), lang) for a, (t, lang) in (apps or {}).items()})
        self.default_language = default_language

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def has(self, name: str, app: str | None = None) -> bool:
        return name in self._table or (app in self._apps and name in self._apps[app][0])

    def names(self) -> list[str]:
        return sorted(self._table)

    def languages(self, name: str) -> list[str]:
        return sorted(self._table[name])

    def resolve(self, name: str, language: str, app: str | None = None) -> Prompt:
        """The sounds of ``name`` for a caller in ``language`` (of ``app``, if any).

        ``KeyError`` when the message does not exist; config validation makes sure every
        referenced message exists and that the chain ends in a default-language entry.
        """
        base = language.split("_")[0]
        if app is not None and app in self._apps:
            table, app_default = self._apps[app]
            per_lang = table.get(name)
            if per_lang:
                for lang in (language, base, app_default):
                    if lang in per_lang:
                        return Prompt(per_lang[lang], lang)
        per_lang = self._table[name]
        for lang in (language, base, self.default_language):
            if lang in per_lang:
                return Prompt(per_lang[lang], lang)
        raise KeyError(f"message {name!r} has no {self.default_language!r} entry")


def _freeze(table: Mapping[str, Mapping[str, tuple[str, ...]]]) -> Mapping:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in table.items()})
