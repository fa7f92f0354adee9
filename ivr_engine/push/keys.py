"""The push credentials' files (APNs ``.p8`` key or certificate, FCM service-account JSON, a
CA bundle) are read and parsed in a worker thread, never on the event loop: a slow disk, a
network mount or a named pipe would stall every call in progress. A sender keeps what it
loaded; :class:`FileStamps` tells :class:`~ivr_engine.push.service.PushService` when a file
changed (size, mtime, inode: a rotated key), looked at off the loop at most every
``recheck_seconds``, so the sender is rebuilt with the new key.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Callable, Iterable

from .model import PushError

MAX_KEY_BYTES = 1024 * 1024  # a key, a certificate chain or a service account is a few KiB
RECHECK_SECONDS = 1.0

Stamp = tuple[int, int, int, int] | None  # (device, inode, mtime_ns, size); None: no file


def read_key_file(path: str, what: str) -> bytes:
    """The file's bytes (call it in a worker thread); PushError naming it when it cannot be
    read or is too large to be a key."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_BYTES + 1)
    except OSError as e:
        raise PushError(f"{what} {path}: missing or unreadable ({e.strerror or e})") from None
    if len(data) > MAX_KEY_BYTES:
        raise PushError(f"{what} {path}: larger than {MAX_KEY_BYTES} bytes, not a key file")
    return data


def _stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


class FileStamps:
    """Where files stand (``stat`` in a worker thread), remembered ``recheck_seconds``."""

    def __init__(self, recheck_seconds: float = RECHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.recheck_seconds = recheck_seconds
        self._clock = clock
        self._seen: dict[str, tuple[float, Stamp]] = {}

    async def of(self, paths: Iterable[str]) -> tuple[Stamp, ...]:
        paths = tuple(paths)
        now = self._clock()
        stale = [p for p in dict.fromkeys(paths)
                 if p not in self._seen or now - self._seen[p][0] >= self.recheck_seconds]
        if stale:
            stamps = await asyncio.to_thread(lambda: [_stamp(p) for p in stale])
            for p, st in zip(stale, stamps):
                self._seen[p] = (now, st)
        return tuple(self._seen[p][1] for p in paths)
