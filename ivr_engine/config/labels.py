"""Rules for the display text of menus and options (``model_livedata.py``).

- errors: a label or description that does not have the engine's default language (the
  fallback for every other language, as for messages); an ``option_labels`` key that is not
  one of the menu's options;
- warnings: for every tree an app renders (a mobile-app access point with ``visual: true``,
  on either surface), each menu and option of that tree without a label in each of the
  app's languages.
"""

from __future__ import annotations

from typing import Callable

from .model import ConfigModel, MobileAppAccessPoint
from .yamlsrc import Issue, Source


def tree_menus(model: ConfigModel, top: str) -> list[str]:
    """``top`` and every menu below it through options, parents first."""
    out, todo = [], [top]
    while todo:
        name = todo.pop(0)
        if name in out or name not in model.menus:
            continue
        out.append(name)
        for key in sorted(model.menus[name].options):
            dest = model.menus[name].options[key]
            if dest.kind == "menu":
                todo.append(dest.target)
    return out


def check_labels(model: ConfigModel, src: Source) -> list[Issue]:
    issues: list[Issue] = []
    default = model.engine.default_language

    def err(path: tuple, msg: str, severity: str = "error") -> None:
        issues.append(src.issue(path, msg, severity))

    def need_default(path: tuple, text: dict) -> None:
        if text and default not in text:
            err(path, f"no text for the default language {default!r} "
                "(engine.default_language); it is the fallback for every other language")

    for name, menu in model.menus.items():
        need_default(("menus", name, "label"), menu.label)
        need_default(("menus", name, "description"), menu.description)
        for key, opt in menu.option_labels.items():
            if key not in menu.options:
                err(("menus", name, "option_labels", key), f"menu {name!r} has no option {key!r}")
            need_default(("menus", name, "option_labels", key, "label"), opt.label)
            need_default(("menus", name, "option_labels", key, "description"), opt.description)
    _check_missing(model, err)
    return issues


def _check_missing(model: ConfigModel, err: Callable[..., None]) -> None:
    warned: set[tuple] = set()
    for ap in model.access_points:
        if not isinstance(ap, MobileAppAccessPoint) or ap.app not in model.apps:
            continue
        if not ap.visual:
            continue
        langs = list(model.apps[ap.app].languages) or [model.engine.default_language]
        for name in tree_menus(model, ap.menu):
            menu = model.menus[name]
            missing = [lang for lang in langs if lang not in menu.label]
            path = ("menus", name)
            if missing and path not in warned:
                warned.add(path)
                err(path, f"app {ap.app!r} shows this menu but it has no label in "
                    f"{', '.join(missing)}", "warning")
            for key, dest in sorted(menu.options.items()):
                if dest.kind == "menu":
                    continue  # shown with the sub-menu's own label
                opt = menu.option_labels.get(key)
                missing = [lang for lang in langs if opt is None or lang not in opt.label]
                path = ("menus", name, "options", key)
                if missing and path not in warned:
                    warned.add(path)
                    err(path, f"app {ap.app!r} shows option {key} ({dest}) but it has no label "
                        f"in {', '.join(missing)} (option_labels.{key})", "warning")
