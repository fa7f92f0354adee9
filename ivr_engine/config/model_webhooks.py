"""Configuration of the webhooks: where the engine tells the contact centre's systems how each
call left the IVR (and what became of its callback).

    context_webhook:                 # the first one (before issue 19): call.queued only,
      url: https://crm.example/ivr   #   unless `events` says otherwise
      secret: ${IVR_WEBHOOK_SECRET}
    webhooks:                        # more URLs, each with the events it wants (default all)
      - url: https://bi.example/hook
        events: [call.hungup, callback.requested]

Every delivery is signed the same way (``X-IVR-Signature: sha256=<HMAC of the body>`` when a
secret is set) and carries an ``X-IVR-Delivery`` id repeated on every retry.
"""

# ruff: noqa: RUF012 - pydantic fields; ruff cannot see that _Model (fields.py) is a BaseModel

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .fields import Secret, _Model

#: how a call left the IVR (one per call), and what became of a callback; ``*``: all of them
EventName = Literal["call.queued", "call.transferred", "call.voicemail", "call.user",
                    "call.hungup", "callback.requested", "callback.completed",
                    "callback.failed", "callback.expired", "*"]


class ContextWebhook(_Model):
    enabled: bool = True
    url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(3.0, gt=0, le=60)
    attempts: int = Field(4, ge=1, le=20)
    backoff_seconds: float = Field(0.5, ge=0, le=60)
    secret: Secret = None  # HMAC-SHA256 of the body in X-IVR-Signature
    events: tuple[EventName, ...] = Field(("call.queued",), min_length=1,
                                          description="the events this URL receives")


class Webhook(ContextWebhook):
    events: tuple[EventName, ...] = Field(("*",), min_length=1,
                                          description="the events this URL receives")
