"""Configuration of the callbacks the engine places itself (``callbacks:``, issue 19).

    callbacks:
      dial: "PJSIP/{number}@carrier"     # how the customer is reached; {number}: the caller
      queues:                            # only these queues' callbacks are placed by the engine
        sales:
          window: ["mon-fri 09:00-18:00", "sat 10:00-13:00"]   # or schedule: <a schedules: name>
          timezone: Europe/Paris         # default engine.timezone
          attempts: 3                    # tries at the customer's phone
          retry_seconds: 300
          ring_seconds: 30
          wait_seconds: 1800             # in the queue for an agent, per placement
          expire_after_seconds: 86400    # not completed by then: expired
          max_waiting: 10                # placements of this queue in Asterisk at once
          caller_id: "+15551230000"      # what the customer sees

A queue not listed keeps its requests for API clients (``GET /v1/callbacks``). Rules that need
the whole document (a schedule that exists, a dial string) are in ``callbacks.py``.
"""

# ruff: noqa: RUF012 - pydantic fields; ruff cannot see that _Model (fields.py) is a BaseModel

from __future__ import annotations

import string
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..callbacks.policy import parse_window
from ..ivr.destinations import SPECIAL_EXTENSIONS
from .fields import Name, Timezone, _Model


def _windows(v: object) -> object:
    if isinstance(v, str):
        v = [v]
    if isinstance(v, (list, tuple)):
        for text in v:
            parse_window(text)
    return v


Windows = Annotated[tuple[str, ...], BeforeValidator(_windows)]


class CallbackQueue(_Model):
    window: Windows | None = Field(None, description="weekly hours like 'mon-fri "
                                   "09:00-18:00' (a list for several); default: any time")
    schedule: Name | None = Field(None, description="a schedule of `schedules:` instead of "
                                  "window (its closed and open dates apply too)")
    timezone: Timezone | None = None
    attempts: int = Field(3, ge=1, le=20)
    retry_seconds: float = Field(300.0, ge=1, le=86_400)
    ring_seconds: int = Field(30, ge=5, le=300)
    wait_seconds: int = Field(1800, ge=10, le=86_400)
    expire_after_seconds: float = Field(86_400.0, ge=60, le=30 * 86_400)
    max_waiting: int = Field(10, ge=1, le=1000)
    caller_id: str | None = Field(None, max_length=80, pattern=r"^[^\r\n;,|]*$")

    @model_validator(mode="after")
    def _one_window(self) -> "CallbackQueue":
        if self.window is not None and self.schedule is not None:
            raise ValueError("give either window or schedule, not both")
        return self


class CallbackSettings(_Model):
    dial: str | None = Field(None, max_length=200, description="the Dial() string that "
                             "reaches a customer: {number} is the caller's number, e.g. "
                             "PJSIP/{number}@carrier")
    context: Name = Field("ivr-engine-callback", description="the dialplan context the "
                          "placements enter (and <context>-dial, where the customer is "
                          "dialled): dialplan/extensions_ivr_engine.conf")
    poll_seconds: float = Field(1.0, ge=0.1, le=60, description="how often each placement "
                                "in Asterisk is checked, and due requests are looked for")
    lease_seconds: float = Field(30.0, ge=5, le=3600, description="a placement whose engine "
                                 "has not renewed it this long is taken over by another")
    queues: dict[Name, CallbackQueue] = {}

    @field_validator("dial")
    @classmethod
    def _dial(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as exc:
            raise ValueError(f"{v!r}: {exc}") from None
        if fields != ["number"]:
            raise ValueError(f"{v!r} must name {{number}} once, and no other field "
                             "(e.g. PJSIP/{number}@carrier)")
        if any(c in v for c in "\r\n,|"):
            raise ValueError("a Dial() string cannot hold a comma, a | or a line break")
        return v

    @field_validator("queues")
    @classmethod
    def _queues(cls, v: dict[str, CallbackQueue]) -> dict[str, CallbackQueue]:
        for name in v:
            if name in SPECIAL_EXTENSIONS:
                raise ValueError(f"{name!r} cannot be a queue name: the one-letter names "
                                 "are Asterisk's special extensions")
        return v
