"""How long a prompt plays, for the watchdog (``ivr/watchdog.py``): read from Asterisk's sound
files when the engine can see them (``engine.watchdog.sounds_dir``), else learned from earlier
plays of the same media that ran to their end. Unknown (a ``number:`` or ``tone:`` media, a
file in no readable format, a prompt never heard to its end): None, and the watchdog uses
``prompt_seconds``.

A file's length comes from its size: Asterisk's raw formats have a fixed rate (GSM: 33 bytes
per 20 ms; μ-law/A-law: 8 000 bytes/s; signed linear: 2 bytes per sample), a ``.wav`` from
its header. Asterisk picks a file ``<sounds>/<language>/<name>.<format>``, falling back to the
language without its region, then ``en``, then ``<sounds>/<name>``: so does this. A length is
looked up once (a few ``stat`` calls) and cached, missing files too; a reload that changes
``sounds_dir`` starts a new cache. When the engine reads Asterisk's files from outside its
filesystem (a chroot, a container's root mounted somewhere), ``sounds_root`` names the
directory that is Asterisk's ``/``: paths, and absolute symbolic links such as Debian's
``sounds/en -> /etc/alternatives/asterisk-prompt-en``, are resolved inside it.
"""

from __future__ import annotations

import logging
import os
import wave
from pathlib import Path, PurePosixPath

log = logging.getLogger("ivr_engine.calls")

#: raw formats Asterisk plays, and their bytes per second of sound
RAW_RATES = {"gsm": 1650.0, "ulaw": 8000.0, "ul": 8000.0, "pcm": 8000.0, "alaw": 8000.0,
             "al": 8000.0, "g722": 8000.0, "g729": 1000.0, "sln": 16000.0, "raw": 16000.0,
             "sln16": 32000.0, "WAV": 1625.0}  # WAV: GSM in a WAV file, 65 bytes per 40 ms
DIGITS = {**{d: f"digits/{d}" for d in "0123456789"}, "*": "digits/star", "#": "digits/pound"}
MAX_LEARNED = 10_000  # distinct prompts remembered from plays
MAX_LINKS = 40


def in_root(root: Path, path: str) -> Path:
    """``path`` as Asterisk sees it, read under ``root`` (Asterisk's ``/``): symbolic links
    are followed inside ``root``, never out of it."""
    cur, parts, links = root, list(PurePosixPath(path).parts[1:]), 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            cur = cur.parent if cur != root else root
            continue
        nxt = cur / part
        if nxt.is_symlink():
            links += 1
            if links > MAX_LINKS:
                raise OSError(f"too many symbolic links under {root}: {path}")
            target = PurePosixPath(os.readlink(nxt))
            if target.is_absolute():
                cur, parts = root, list(target.parts[1:]) + parts
            else:
                parts = list(target.parts) + parts
            continue
        cur = nxt
    return cur


def _file_seconds(path: Path) -> float | None:
    ext = path.suffix[1:]
    try:
        if ext == "wav":
            with wave.open(str(path), "rb") as w:
                return w.getnframes() / float(w.getframerate())
        return os.stat(path).st_size / RAW_RATES[ext]
    except (OSError, wave.Error, EOFError, KeyError, ZeroDivisionError):
        return None


class SoundLengths:
    """Prompt lengths for every call of the engine (one instance, in ``CallServices``)."""

    def __init__(self) -> None:
        self._files: dict[tuple[str, str], float | None] = {}
        self._learned: dict[tuple[tuple[str, ...], str], float] = {}
        self._where: tuple[str, str | None] | None = None

    def length(self, media: tuple[str, ...], language: str, sounds_dir: str | None = None,
               sounds_root: str | None = None) -> float | None:
        """Seconds ``media`` (one play) lasts in ``language``, or None when unknown."""
        if sounds_dir:
            if self._where != (sounds_dir, sounds_root):
                self._files.clear()
                self._where = (sounds_dir, sounds_root)
            total = 0.0
            for m in media:
                part = self._media_seconds(m, language)
                if part is None:
                    break
                total += part
            else:
                return total
        return self._learned.get((media, language))

    def learn(self, media: tuple[str, ...], language: str, seconds: float) -> None:
        """A play of ``media`` ran to its end in ``seconds`` (from its request): the longest
        seen is kept (a watchdog armed too short would take a caller out of Stasis)."""
        key = (media, language)
        if key not in self._learned and len(self._learned) >= MAX_LEARNED:
            return
        self._learned[key] = max(seconds, self._learned.get(key, 0.0))

    def _media_seconds(self, media: str, language: str) -> float | None:
        kind, _, target = media.partition(":")
        if kind == "sound":
            return self._sound(target, language)
        if kind == "digits" and target and all(c in DIGITS for c in target):
            parts = [self._sound(DIGITS[c], language) for c in target]
            return None if None in parts else sum(parts)  # type: ignore[arg-type]
        return None

    def _sound(self, name: str, language: str) -> float | None:
        key = (name, language)
        if key not in self._files:
            try:
                self._files[key] = self._find(name, language)
            except OSError as exc:  # a link loop: unknown
                log.warning("the length of sound %r is unknown: %s", name, exc)
                self._files[key] = None
        return self._files[key]

    def _find(self, name: str, language: str) -> float | None:
        assert self._where is not None
        sounds_dir, sounds_root = self._where
        if ".." in PurePosixPath(name).parts:
            return None
        if name.startswith("/"):
            paths = [name]
        else:
            langs = dict.fromkeys(x for x in (language, language.split("_")[0], "en") if x)
            paths = [f"{sounds_dir}/{lang}/{name}" for lang in langs] + [f"{sounds_dir}/{name}"]
        for path in paths:
            base = in_root(Path(sounds_root), path) if sounds_root else Path(path)
            for ext in ("wav", *RAW_RATES):
                seconds = _file_seconds(base.with_name(f"{base.name}.{ext}"))
                if seconds is not None:
                    return seconds
        return None
