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
    """Immutable table message → language → media, resolved with fallback."""

    __slots__ = ("_table", "default_language")

    def __init__(self, table: Mapping[str, Mapping[str, tuple[str, ...]]], default_language: str):
        self._table = MappingProxyType({k: MappingProxyType(dict(v)) for k, v in table.items()})
        self.default_language = default_language

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def names(self) -> list[str]:
        return sorted(self._table)

    def languages(self, name: str) -> list[str]:
        return sorted(self._table[name])

    def resolve(self, name: str, language: str) -> Prompt:
        """The sounds of ``name`` in ``language``, else in the default language.

        ``KeyError`` when the message does not exist; config validation makes sure every
        referenced message exists and has a default-language entry.
        """
        per_lang = self._table[name]
        if language in per_lang:
            return Prompt(per_lang[language], language)
        base = language.split("_")[0]
        if base in per_lang:
            return Prompt(per_lang[base], base)
        return Prompt(per_lang[self.default_language], self.default_language)
