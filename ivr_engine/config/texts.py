"""Rules for the in-app texts (``model_texts.py``), the audio messages' rules applied to text.

- an engine text (``texts.<key>``) needs the engine's default language: it is the fallback
  for every other language;
- an app's text (``apps.<app>.texts.<key>``) overrides the engine's; where the engine has
  none, it needs the app's default language (its first language);
- a text in a language nobody can be shown is an error: an app's text in a language that is
  not one of the app's languages (or the base of one: ``pt`` for ``pt_BR``), an engine text
  in a language of no app and not the engine's default (a typo like ``fe`` for ``fr`` would
  otherwise never be seen).

An unknown key (``queue_ful``) is refused by the model, at its line.
"""

from __future__ import annotations

from .model import ConfigModel
from .model_texts import TEXT_KEYS
from .yamlsrc import Issue, Source


def app_languages(model: ConfigModel, app: str) -> list[str]:
    """The app's languages, its default first (the engine's default when it lists none)."""
    return list(model.apps[app].languages) or [model.engine.default_language]


def reachable(langs: list[str]) -> set[str]:
    """The languages a text can be shown in to callers of ``langs``: those, and their base
    languages (a ``pt_BR`` caller falls back to ``pt``)."""
    return set(langs) | {lang.split("_")[0] for lang in langs}


def check_texts(model: ConfigModel, src: Source) -> list[Issue]:
    issues: list[Issue] = []

    def err(path: tuple, msg: str) -> None:
        issues.append(src.issue(path, msg))

    default = model.engine.default_language
    known = reachable([default] + [lang for name in model.apps
                                   for lang in app_languages(model, name)])
    for key in TEXT_KEYS:
        per_lang = getattr(model.texts, key)
        if per_lang and default not in per_lang:
            err(("texts", key), f"no text for the default language {default!r} "
                "(engine.default_language); it is the fallback for every other language")
        for lang in per_lang:
            if lang not in known:
                err(("texts", key, lang), f"language {lang!r} is neither "
                    f"engine.default_language nor a language of any app "
                    f"({', '.join(sorted(known))}): no app is ever shown this text")

    for name, app in model.apps.items():
        langs = app_languages(model, name)
        shown = reachable(langs)
        for key in TEXT_KEYS:
            per_lang = getattr(app.texts, key)
            at = ("apps", name, "texts", key)
            if per_lang and not getattr(model.texts, key) and langs[0] not in per_lang:
                err(at, f"the engine has no {key} text (texts.{key}), so this one needs the "
                    f"app's default language {langs[0]!r}")
            for lang in per_lang:
                if lang not in shown:
                    err(at + (lang,), f"language {lang!r} is not one of app {name!r}'s "
                        f"languages ({', '.join(langs)}): the app is never shown this text")
    return issues
