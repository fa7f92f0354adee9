"""Graphviz ``dot -Tsvg`` run off the event loop, and the console's cache of its drawings.

``dot`` (Debian ``graphviz``) lays the graph out; it runs as a child process fed on stdin
(``asyncio`` subprocess: the loop never waits on it), killed past :data:`TIMEOUT_SECONDS`.
One drawing at a time (a lock): the machine's cores belong to the calls and Asterisk, and a
page asked for twice at once is drawn once. Drawings are kept per config generation (the
Config object a reload swaps in) and scope: a reload drops them all, so the next page shows
the new tree.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from typing import Any, Callable

log = logging.getLogger("ivr_engine.console")

TIMEOUT_SECONDS = 10.0
MAX_SVG_BYTES = 8 * 1024 * 1024


class GraphvizError(RuntimeError):
    """dot is missing, failed, or took too long."""


def dot_path() -> str | None:
    return shutil.which("dot")


def _svg_only(svg: bytes) -> bytes:
    """The ``<svg>`` element alone (without the XML prolog and DOCTYPE), to sit in a page."""
    start = svg.find(b"<svg")
    return svg[start:] if start >= 0 else svg


async def render_svg(dot_text: str, timeout: float = TIMEOUT_SECONDS) -> bytes:
    """``dot -Tsvg`` of ``dot_text``: the SVG element. GraphvizError when it cannot."""
    exe = dot_path()
    if exe is None:
        raise GraphvizError("Graphviz `dot` is not installed (Debian package graphviz)")
    proc = await asyncio.create_subprocess_exec(
        exe, "-Tsvg", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(dot_text.encode())
    except BaseException:  # the timeout, or the request was cancelled: no dot left running
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise GraphvizError(f"dot exited {proc.returncode}: "
                            f"{err.decode(errors='replace').strip()[:300]}")
    if len(out) > MAX_SVG_BYTES:
        raise GraphvizError(f"the drawing is larger than {MAX_SVG_BYTES} bytes")
    return _svg_only(out)


class GraphCache:
    """SVG drawings of the current config generation, by key (a scope's text)."""

    def __init__(self, render: Callable[[str], Any] = render_svg) -> None:
        self._render = render
        self._config: Any = None
        self._svgs: dict[str, bytes] = {}
        self._lock = asyncio.Lock()
        self.drawn = 0  # how many times dot ran (tests, logs)
        self._seen: Any = None  # the config object generation() last saw
        self._generation = 0

    def generation(self, config: Any) -> int:
        """A number that changes whenever a new config is in force (a reload)."""
        if config is not self._seen:
            self._seen, self._generation = config, self._generation + 1
        return self._generation

    async def svg(self, config: Any, key: str, build: Callable[[], str]) -> bytes:
        """The drawing of ``key`` for ``config``; ``build()`` makes its DOT text when it
        must be drawn (a new generation, or a key not drawn yet)."""
        async with self._lock:
            if config is not self._config:
                self._config, self._svgs = config, {}
            svg = self._svgs.get(key)
            if svg is None:
                svg = await self._render(build())
                self.drawn += 1
                if len(self._svgs) >= 64:  # a bounded cache, whatever scopes are asked for
                    self._svgs.pop(next(iter(self._svgs)))
                self._svgs[key] = svg
            return svg
