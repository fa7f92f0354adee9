"""Configuration models of the live data (livedata, issue 10): display text of menus and
options per language, shown by apps that render the IVR (visual IVR, in-app menus).

    menus:
      sales:
        prompt: sales-menu
        label: {en: Sales, fr: Ventes}
        description: {en: New orders and quotes}
        options: {"1": menu:billing, "2": queue:sales}
        option_labels:
          "2": {label: {en: Talk to sales, fr: Parler aux ventes}}

A label given in any language needs the engine's default language (like messages): it is
the fallback for every other language. Validation is in ``labels.py``.
"""

# ruff: noqa: RUF012 - pydantic fields; ruff cannot see that _Model (fields.py) is a BaseModel

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .fields import Language, _Model

#: display text: language → text (at most 200 characters, one line)
DisplayText = dict[Language, Annotated[str, Field(min_length=1, max_length=200,
                                                  pattern=r"^[^\r\n]*$")]]


class OptionLabel(_Model):
    """How an app shows one option of a menu."""

    label: DisplayText = {}
    description: DisplayText = {}
