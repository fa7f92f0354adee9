"""Configuration models of the in-app texts: what an app shows (not plays) in a situation,
per language, engine-wide under ``texts:`` and per app under ``apps.<app>.texts``.

    texts:
      after_hours: {en: "We are closed now; we open at 8:00.", fr: "Nous sommes fermés."}
    apps:
      customer:
        texts:
          queue_full: {en: "All our agents are busy; try again in a few minutes."}

The keys are fixed (an unknown one is an error at its line); each text is served with the
app's menu (``GET /v1/apps/{app}/menu``) in the language its calls would use, with the
fallback of the audio messages. Validation is in ``texts.py``.
"""

# ruff: noqa: RUF012 - pydantic fields; ruff cannot see that _Model (fields.py) is a BaseModel

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .fields import Language, _Model

#: the in-app texts, in the order they are served
TEXT_KEYS = ("after_hours", "closed", "outside_app", "queue_full")

#: one text: at most 500 characters, line breaks allowed, no other control character
InAppText = Annotated[str, Field(min_length=1, max_length=500,
                                 pattern=r"^[^\x00-\x09\x0b-\x1f\x7f]*$")]
TextByLanguage = dict[Language, InAppText]


class InAppTexts(_Model):
    """Texts an app shows, per language."""

    after_hours: TextByLanguage = Field({}, description="a menu or option outside its "
                                        "opening hours (its `open` is false, `closed_by` "
                                        "hours)")
    closed: TextByLanguage = Field({}, description="closed all day: a closed date of its "
                                   "schedule (`closed_by` date)")
    outside_app: TextByLanguage = Field({}, description="calls to the fallback number from "
                                        "outside the app are not taken (block_outside_calls)")
    queue_full: TextByLanguage = Field({}, description="the queue takes no more callers")
