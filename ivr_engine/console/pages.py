"""The console's templates and the headers every console answer carries.

Templates autoescape everything (a caller number, a campaign name or a user's device model
is text, never markup). The Content-Security-Policy allows scripts and styles from the engine
only — no inline script, no inline style, nothing from another origin — so an injected
``<script>`` would not run even if escaping failed.
"""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("ivr_engine.console", "templates"),
    autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "—"


ENV.filters["duration"] = _duration
ENV.filters["when"] = _when


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)


def page(template: str, status: int = 200, **context: Any) -> web.Response:
    """A whole page or a fragment (htmx swaps it in), with the console's headers."""
    return web.Response(text=render(template, **context), status=status,
                        content_type="text/html", charset="utf-8", headers=HEADERS)
