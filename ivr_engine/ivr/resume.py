"""Taking over a call another engine process was driving. Pure.

An engine that crashed (or a caller whose watchdog fired) leaves a channel in Stasis with the
variables the engine published on it. From those alone, :func:`plan_resume` decides where the
caller goes now:

- ``IVR_DESTINATION`` set (the engine had declared the call's end): ring the user again, play
  the closing message again, or hang up — a callback is never recorded twice;
- ``IVR_AWAITING=<menu>:<n>`` (the caller was waiting in a menu, or has since pressed a key the
  dead engine may not have acted on): enter that menu again, path from ``IVR_PATH``;
- only ``IVR_ENTRY`` (answered, routed, still in the first prompt): start at the entry again,
  when the original Stasis arguments are known (``restart``);
- nothing, or a menu the current configuration no longer has: the dialplan fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .destinations import Destination, parse_destination
from .tree import IvrTree

#: what the engine publishes on a call's channel (read back when it takes a call over)
CHANNEL_VARIABLES = ("IVR_ENTRY", "IVR_LANGUAGE", "IVR_APP", "IVR_PATH", "IVR_AWAITING",
                     "IVR_DESTINATION", "IVR_USER", "IVR_VERIFIED")


@dataclass(frozen=True, slots=True)
class ChannelState:
    entry: str = ""
    language: str = ""
    app: str = ""
    path: tuple[str, ...] = ()
    awaiting: str = ""  # the menu of the last wait
    seq: int = 0  # the number of that wait
    destination: Destination | None = None
    user: str = ""  # the verified user the call carries (IVR_USER with IVR_VERIFIED=1)


def channel_state(values: Mapping[str, str | None]) -> ChannelState:
    """The variables as read from the channel (missing ones None or empty); never raises."""
    get = lambda name: (values.get(name) or "").strip()  # noqa: E731
    menu, _, seq = get("IVR_AWAITING").rpartition(":")
    try:
        destination = parse_destination(get("IVR_DESTINATION")) if get("IVR_DESTINATION") \
            else None
    except ValueError:
        destination = None
    return ChannelState(
        entry=get("IVR_ENTRY"), language=get("IVR_LANGUAGE"),
        app=get("IVR_APP"), path=tuple(p for p in get("IVR_PATH").split("/") if p),
        awaiting=menu if seq.isdigit() else "", seq=int(seq) if seq.isdigit() else 0,
        destination=destination,
        user=get("IVR_USER") if get("IVR_VERIFIED") == "1" else "")


@dataclass(frozen=True, slots=True)
class ResumePlan:
    how: str  # menu | restart | destination | fallback
    menu: str = ""
    path: tuple[str, ...] = ()
    seq: int = 0
    destination: Destination | None = None
    reason: str = ""


def plan_resume(tree: IvrTree, state: ChannelState, users: Mapping[str, object],
                can_restart: bool) -> ResumePlan:
    """Where the caller goes now. ``can_restart``: the original entry can be routed again."""
    dest = state.destination
    if dest is not None:
        if dest.kind == "user":
            if dest.target in users:
                return ResumePlan("destination", destination=dest, reason="ring the user again")
            return ResumePlan("fallback", reason=f"user {dest.target!r} is no longer configured")
        if dest.kind == "message-then-hangup":
            if dest.target in tree.messages.names():
                return ResumePlan("destination", destination=dest, reason="closing message")
            return ResumePlan("destination", destination=Destination("hangup"),
                              reason="closing message no longer configured")
        if dest.kind == "callback" and tree.callback_message:
            # recorded before IVR_DESTINATION was set: only the confirmation is left
            return ResumePlan("destination", reason="callback already recorded",
                              destination=Destination("message-then-hangup",
                                                      tree.callback_message))
        return ResumePlan("destination", destination=Destination("hangup"),
                          reason=f"{dest} was already under way")
    if state.awaiting:
        if state.awaiting in tree.menus:
            path = tuple(p for p in state.path if p in tree.menus) or (state.awaiting,)
            return ResumePlan("menu", menu=state.awaiting, path=path, seq=state.seq,
                              reason="waiting in a menu")
        return ResumePlan("fallback", reason=f"menu {state.awaiting!r} is no longer configured")
    if state.entry:
        if can_restart:
            return ResumePlan("restart", reason="still in the first prompt")
        return ResumePlan("fallback", reason="no menu wait published and the entry is unknown")
    return ResumePlan("fallback", reason="the call was not routed yet")


def stale_playbacks(channel_id: str, state: ChannelState, probes: int = 8) -> list[str]:
    """Ids of the playbacks the previous engine may still be running on the channel: the k-th
    prompt since its last menu wait (``p<seq>.<k>``, see runtime.py) and the ringer's."""
    prefix = f"{channel_id}.p{state.seq}."
    return [f"{prefix}{k}" for k in range(1, probes + 1)] + [prefix + "wake",
                                                              prefix + "ringback"]
