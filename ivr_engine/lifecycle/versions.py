"""App versions and how they compare (pure).

The rule, as the README says it:

- A version is ``[v]N(.N)*`` — one to eight dotted numeric components, each compared as an
  integer (``2.17.60 < 2.17.100``, ``2.9 < 2.10``). Missing trailing components count as 0
  (``2.17 == 2.17.0``). Leading zeros do not matter (``2.017 == 2.17``).
- An optional pre-release after ``-`` (``2.18.0-beta.2``) sorts *before* the same version
  without one (``2.18.0-rc.1 < 2.18.0``); pre-releases compare as in SemVer 2.0: dot-separated
  identifiers left to right, numeric ones as integers and below alphanumeric ones (compared
  as ASCII), a shorter list first when all shared identifiers are equal.
- A build number is ignored: after ``+`` (``2.17.60+62740``) or in parentheses as the
  platforms show it (``2.17.60 (2.62740)``): two builds of one version are the same version.
- Anything else (empty, ``latest``, ``2..1``, ``2.x``, more than 8 components, a component
  of more than 9 digits, more than 64 characters) is not a version: :class:`VersionError`,
  which the API answers with a 422 naming the field.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

MAX_LENGTH = 64
MAX_COMPONENTS = 8

_VERSION = re.compile(
    r"^[vV]?(?P<core>\d{1,9}(?:\.\d{1,9}){0,7})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)|\s+\((?P<paren>[0-9A-Za-z.-]+)\))?$")


class VersionError(ValueError):
    """Not a version this engine can compare."""


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    """A parsed version; ``text`` is what was given (shown back as is)."""

    numbers: tuple[int, ...]  # trailing zeros stripped: 2.17.0 == 2.17
    pre: tuple[int | str, ...]  # () when not a pre-release
    text: str

    def _key(self) -> tuple:
        # a release sorts after all its pre-releases: (1,) > (0, ...)
        pre = (1,) if not self.pre else (0,) + tuple(
            (0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre)
        return (self.numbers, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: "Version") -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text


def parse_version(text: object) -> Version:
    """``text`` as a :class:`Version`, or :class:`VersionError` saying why not."""
    if not isinstance(text, str):
        raise VersionError("a version is a string like 2.17.60")
    value = text.strip()
    if not value:
        raise VersionError("the version is empty")
    if len(value) > MAX_LENGTH:
        raise VersionError(f"a version has at most {MAX_LENGTH} characters")
    m = _VERSION.match(value)
    if m is None:
        raise VersionError(f"{value[:MAX_LENGTH]!r} is not a version: expected dotted numbers "
                           "like 2.17.60, optionally -prerelease and +build or (build), "
                           f"at most {MAX_COMPONENTS} components of at most 9 digits")
    numbers = [int(n) for n in m.group("core").split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    pre: tuple[int | str, ...] = ()
    if m.group("pre"):
        parts = m.group("pre").split(".")
        pre = tuple(int(p) if p.isdigit() else p for p in parts)
    return Version(tuple(numbers), pre, value)


def is_older(installed: str, release: str) -> bool:
    """``installed`` is older than ``release`` (both must parse)."""
    return parse_version(installed) < parse_version(release)


def older_or_unknown(installed: str | None, release: Version) -> bool | None:
    """True when ``installed`` is older than ``release``, False when at or above it, None
    when the device never reported a version or reported one that does not parse (such a
    device is not notified: we cannot say it is older)."""
    if not installed:
        return None
    try:
        return parse_version(installed) < release
    except VersionError:
        return None
