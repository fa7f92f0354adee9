"""Push notifications that wake a mobile app before a call rings it.

* :class:`FcmSender` — Firebase Cloud Messaging HTTP v1 (Android): high-priority data
  messages, OAuth2 service-account tokens, fully async.
* :class:`ApnsSender` — Apple Push Notification service over HTTP/2 (aioapns): VoIP pushes
  to wake, an ``alert`` push to cancel.
* :class:`PushService` — one sender per (app, provider) built from the configuration, dead
  tokens removed from the store.

Senders never raise for what a provider answers (or fails to answer in time): they return a
:class:`PushResult`.  :class:`PushError` is for configuration problems only.  Tokens, keys and
access tokens are never logged; :func:`token_hint` gives a short, stable stand-in for logs.
"""

from __future__ import annotations

from .apns import ApnsSender
from .fcm import FcmSender
from .model import PushError, PushResult, WakePayload, result_builder, token_hint
from .service import PushService

__all__ = ["ApnsSender", "FcmSender", "PushError", "PushResult", "PushService", "WakePayload",
           "result_builder", "token_hint"]
