"""The in-app texts an app is served with its menu, in one language. Pure.

The same fallback as the audio messages (``ivr/messages.py``): for app A in language L, A's
text in L (or L's base language), in A's default language, then the engine's text in L (or
its base), in the engine's default. L is the language the app's calls would use: the asked
language when it is one of the app's (or its base is), else the app's default.
"""

from __future__ import annotations

from typing import Mapping

from ..config.model import ConfigModel
from ..config.model_texts import TEXT_KEYS
from ..routing.entry import AppEntry


def _pick(per_lang: Mapping[str, str], chain: tuple[str, ...]) -> dict | None:
    for lang in chain:
        if lang in per_lang:
            return {"text": per_lang[lang], "language": lang}
    return None


def app_texts(model: ConfigModel, entry: AppEntry, lang: str | None) -> dict[str, dict | None]:
    """``key → {"text", "language"}`` (None when neither the app nor the engine has one)."""
    language = entry.language_for(lang)
    base = language.split("_")[0]
    own = model.apps[entry.app].texts
    out: dict[str, dict | None] = {}
    for key in TEXT_KEYS:
        out[key] = _pick(getattr(own, key), (language, base, entry.default_language)) or \
            _pick(getattr(model.texts, key), (language, base, model.engine.default_language))
    return out
