"""The widget page: the app's tree (``livedata/tree.py``'s export) rendered with a Jinja2
template, its Content-Security-Policy, the visitor's language. Pure (the template is read
once, when the module is imported).

The page carries no inline script: its settings travel in a ``<script
type="application/json">`` block (data, never run), so the CSP allows scripts of the
engine's own origin only.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

_ENV = Environment(loader=PackageLoader("ivr_engine.edge", "templates"),
                   autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True)

# the page's own words (the menu's labels come from the config, in the visitor's language)
TEXTS: dict[str, dict[str, str]] = {
    "en": {"call": "Call", "hangup": "Hang up", "closed": "closed now", "wait": "wait about",
           "min": "min", "keypad": "Keypad", "idle": "Pick an entry to call us.",
           "calling": "Calling…", "connected": "Connected", "ended": "Call ended",
           "failed": "The call could not be placed", "title": "Call us"},
    "fr": {"call": "Appeler", "hangup": "Raccrocher", "closed": "fermé",
           "wait": "attente environ", "min": "min", "keypad": "Clavier",
           "idle": "Choisissez une entrée pour nous appeler.", "calling": "Appel en cours…",
           "connected": "En ligne", "ended": "Appel terminé",
           "failed": "L'appel n'a pas pu aboutir", "title": "Nous appeler"},
}


def accept_language(header: str) -> str | None:
    """The first language of an Accept-Language header, as a config language code
    (``fr-CA`` → ``fr_CA``); None when there is none usable."""
    best: tuple[float, str] | None = None
    for i, part in enumerate(header.split(",")[:16]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        tag = tag.strip().replace("-", "_")
        if not tag or tag == "*" or not tag.replace("_", "").isalnum() or not tag.isascii() \
                or len(tag) > 16:
            continue
        if best is None or q > best[0]:
            best = (q - i * 1e-6, tag)
    return best[1] if best else None


def _minutes(wait: Any) -> int | None:
    if wait is None:
        return None
    seconds = wait.seconds if hasattr(wait, "seconds") else wait.get("seconds")
    return None if seconds is None else max(1, round(seconds / 60))


def _entries(node: dict, depth: int = 0) -> list[dict]:
    """The tree flattened in display order: every node a caller can start at."""
    out = [{"id": node["id"], "kind": node["kind"], "label": node["label"] or node["id"],
            "description": node["description"], "open": node["open"],
            "wait_minutes": _minutes(node["wait"]), "depth": depth}]
    for child in node["children"]:
        out += _entries(child, depth + 1)
    return out


def content_security_policy(widget: Any) -> str:
    """Scripts, styles and fetches of this origin only, plus Asterisk's WebSocket; embedding
    by this origin and the sites in ``frame_ancestors``."""
    wss = urlsplit(widget.sip_wss_url)
    ancestors = " ".join(["'self'", *widget.frame_ancestors])
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' wss://{wss.netloc}; media-src 'self' blob: mediastream:; "
            f"frame-ancestors {ancestors}; base-uri 'none'; form-action 'none'")


def render_page(app: str, tree: dict, widget: Any) -> str:
    """The page for ``tree`` (``export_tree``'s answer, labels already in the language)."""
    lang = tree["language"]
    texts = TEXTS.get(lang) or TEXTS.get(lang.split("_")[0]) or TEXTS["en"]
    settings = {"app": app, "language": lang, "menu_url": f"/w/{app}/menu?lang={lang}",
                "calls_url": f"/w/{app}/calls", "texts": texts}
    # "</" cannot end the JSON block early: the JSON escapes it
    data = json.dumps(settings, ensure_ascii=True).replace("</", "<\\/")
    root = tree["root"]
    return _ENV.get_template("widget.html").render(
        app=app, lang=lang, title=root["label"] or texts["title"], texts=texts,
        entries=_entries(root), settings=data)
