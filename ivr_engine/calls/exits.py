"""How a call left the IVR, told once to the webhooks (``webhook.py``).

Every call the engine routed announces one exit, when it happens:

    call.queued        handed to a queue (``queue:``, dial-0, a transfer)
    call.transferred   handed to a SIP endpoint (``endpoint:``)
    call.voicemail     handed to a voicemail box (after its announcement)
    call.user          a user's phone answered (``user:``; no answer: the user's
                       no-answer destination is the exit)
    callback.requested the callback request is in the database (``callback:``)
    call.hungup        the engine ended the call (``hangup``, ``message-then-hangup``):
                       ``hung_up_by: engine``; or the caller hung up while in the IVR (a
                       menu, a user's phone ringing): ``hung_up_by: caller``

All share one payload shape (a field that does not apply is null)::

    {"event", "call_id", "app", "entry", "caller", "language", "path", "custom_data",
     "user", "verified", "destination", "target", "queue", "reason", "hung_up_by",
     "callback", "timestamp"}

``reason`` says why the call went there (``option``, ``dial0``, ``invalid``, ``timeout``,
``after-hours``, ``no-answer``, ``transfer``, ``entry``, ``deep-link``, ``config-loop``;
``caller-hung-up``); ``queue`` is the queue of ``call.queued`` and ``callback.*`` (it was
the only place ``call.queued`` named it before); ``callback`` is ``{"id", "state",
"attempts", "outcome"}`` for ``callback.*``. The placer (``callbacks/placer.py``) sends
``callback.completed``, ``callback.failed`` and ``callback.expired`` in the same shape.

Delivery is at least once: a call taken over after a crash may announce its exit again (the
receiver de-duplicates on ``call_id`` + ``event``). A call sent to the dialplan fallback (the
engine stopping, a database that does not answer) announces nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..ivr.destinations import Destination

EVENT_OF = {"queue": "call.queued", "endpoint": "call.transferred",
            "voicemail": "call.voicemail", "user": "call.user",
            "callback": "callback.requested", "hangup": "call.hungup",
            "message-then-hangup": "call.hungup"}
#: destinations where the engine itself ends the call
ENGINE_ENDS = frozenset({"hangup", "message-then-hangup"})


def payload(event: str, *, call_id: str, info: Any, path: list[str],
            destination: Destination | None, reason: str, timestamp: dt.datetime,
            hung_up_by: str | None = None, callback: dict[str, Any] | None = None,
            queue: str | None = None) -> dict[str, Any]:
    """The one shape every event has; ``info``: the call's context (``CallInfo`` or a
    callback row: app, entry, caller, language, user, verified, custom data if any)."""
    if queue is None and destination is not None and destination.kind in ("queue",
                                                                           "callback"):
        queue = destination.target
    return {
        "event": event, "call_id": call_id, "app": info.app, "entry": info.entry,
        "caller": info.caller, "language": info.language, "path": list(path),
        "custom_data": dict(getattr(info, "custom_data", None) or {}),
        "user": info.user, "verified": bool(info.verified),
        "destination": str(destination) if destination is not None else None,
        "target": (destination.target or None) if destination is not None else None,
        "queue": queue, "reason": reason, "hung_up_by": hung_up_by, "callback": callback,
        "timestamp": timestamp.isoformat()}


def announce(call: Any, event: str, *, hung_up_by: str | None = None,
             reason: str | None = None, callback: dict[str, Any] | None = None) -> None:
    """The call's exit, to the webhooks; once per call (later ones are dropped)."""
    if call.announced:
        return
    call.announced = True
    notifier, info, rt = call.services.notifier, call.info, call.runtime
    if notifier is None or info is None:
        return
    notifier.notify(payload(
        event, call_id=call.channel_id, info=info,
        path=list(rt.path) if rt is not None else list(info.path),
        destination=rt.destination if rt is not None else None,
        reason=reason if reason is not None else (rt.reason if rt is not None else ""),
        hung_up_by=hung_up_by, callback=callback, timestamp=call.clock()))


def announce_engine_end(call: Any) -> None:
    """After the IVR acted: the engine is ending the call itself (the closing message
    plays, or the hang-up is sent) — announced when decided."""
    rt = call.runtime
    if not call.announced and rt is not None and rt.destination is not None \
            and rt.destination.kind in ENGINE_ENDS:
        announce(call, "call.hungup", hung_up_by="engine")
