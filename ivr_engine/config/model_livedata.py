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


class StreamLimits(_Model):
    """The queue event streams (``GET /v1/queues/{name}/events``) open at once, and how long
    one lasts. Past a cap a new stream is refused with 429 and ``Retry-After``; ``total`` is
    also held under half the connection budget (``engine.api.connections``), so streams
    never take the connections requests need."""

    per_client: int = Field(4, ge=1, le=10_000, description="per app key and address")
    per_user: int = Field(4, ge=1, le=10_000, description="per user (a session's streams)")
    per_address: int = Field(64, ge=1, le=100_000, description="per client address (a "
                             "carrier's NAT puts many phones behind one)")
    total: int = Field(1000, ge=1, le=1_000_000, description="in all")
    max_lifetime_seconds: float = Field(600, ge=10, le=86_400, description="then the engine "
                                        "ends the stream (after a `retry:` hint); the app "
                                        "reconnects")
    retry_seconds: float = Field(5, ge=1, le=3600, description="the `retry:` hint: how long "
                                 "the app waits before it reconnects")
