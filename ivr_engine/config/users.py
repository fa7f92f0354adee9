"""Users (targets of ``user:<name>``) and their push-then-wait settings.

The rules a user follows against the rest of the document (:func:`user_problems`) and how a
user is compiled for a call (:func:`compile_user`) are the same whoever defines it: the
YAML ``users:`` here, the database through ``ivr_engine/users/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..ivr.destinations import Destination
from ..wakeup.plan import UserSpec, WakeSettings
from .model import ConfigModel
from .yamlsrc import Issue, Source

WAKE_KEYS = ("mobile_loops", "uc_mobile_loops", "interval_seconds", "hold", "moh_class",
             "message", "ring_seconds")


@dataclass(frozen=True, slots=True)
class CompiledUser:
    spec: UserSpec
    no_answer: Destination


def wake_settings(model: ConfigModel, overrides: Mapping[str, Any]) -> WakeSettings:
    """``wakeup:`` with a user's overrides (None: not overridden)."""
    base = model.wakeup
    return WakeSettings(**{k: overrides[k] if overrides.get(k) is not None else getattr(base, k)
                           for k in WAKE_KEYS})


def default_no_answer(name: str) -> Destination:
    return Destination("voicemail", f"{name}@default")


def compile_user(model: ConfigModel, name: str, *, ringing_device: str,
                 mobile_endpoint: str | None, uc_endpoint: str | None, app: str | None,
                 no_answer: Destination | None, wakeup: Mapping[str, Any]) -> CompiledUser:
    spec = UserSpec(name, ringing_device, mobile_endpoint, uc_endpoint, app,
                    wake_settings(model, wakeup))
    return CompiledUser(spec, no_answer or default_no_answer(name))


def user_problems(model: ConfigModel, *, ringing_device: str, mobile_endpoint: str | None,
                  uc_endpoint: str | None, app: str | None, no_answer: Destination | None,
                  message: str | None) -> Iterator[tuple[tuple, str]]:
    """What is wrong with a user against ``model``: (the key under the user, the message).
    ``message`` is the user's ``wakeup.message``."""
    if ringing_device in ("mobile", "uc+mobile"):
        if not mobile_endpoint:
            yield (), (f"ringing_device {ringing_device} needs mobile_endpoint (the PJSIP "
                       "endpoint the app registers)")
        if not app:
            yield (), (f"ringing_device {ringing_device} needs app (whose push credentials "
                       "wake the phone)")
    if ringing_device in ("uc", "uc+mobile") and not uc_endpoint:
        yield (), f"ringing_device {ringing_device} needs uc_endpoint"
    if app and app not in model.apps:
        yield ("app",), f"app {app!r} is not defined under apps"
    if message and message not in model.messages:
        yield ("wakeup", "message"), f"message {message!r} is not defined under messages"
    if no_answer is not None:
        if no_answer.kind in ("menu", "user"):
            yield ("no_answer",), (f"no_answer cannot be {no_answer.kind}: use a queue, "
                                   "voicemail, endpoint, callback, message-then-hangup or "
                                   "hangup")
        elif no_answer.kind == "message-then-hangup" and no_answer.target not in model.messages:
            yield ("no_answer",), f"message {no_answer.target!r} is not defined under messages"


def check_users(model: ConfigModel, src: Source) -> list[Issue]:
    issues: list[Issue] = []

    def err(path: tuple, msg: str) -> None:
        issues.append(src.issue(path, msg))

    if model.wakeup.message and model.wakeup.message not in model.messages:
        err(("wakeup", "message"), f"message {model.wakeup.message!r} is not defined under "
            "messages")
    mobile_owner: dict[str, str] = {}
    for name, user in model.users.items():
        at = ("users", name)
        for path, msg in user_problems(
                model, ringing_device=user.ringing_device, mobile_endpoint=user.mobile_endpoint,
                uc_endpoint=user.uc_endpoint, app=user.app, no_answer=user.no_answer,
                message=user.wakeup.message):
            err(at + path, msg)
        if user.mobile_endpoint:
            other = mobile_owner.get(user.mobile_endpoint)
            if other:
                err(at + ("mobile_endpoint",), f"endpoint {user.mobile_endpoint!r} is already "
                    f"the mobile endpoint of user {other!r}")
            mobile_owner.setdefault(user.mobile_endpoint, name)
    return issues


def compile_users(model: ConfigModel) -> dict[str, CompiledUser]:
    return {name: compile_user(model, name, ringing_device=u.ringing_device,
                               mobile_endpoint=u.mobile_endpoint, uc_endpoint=u.uc_endpoint,
                               app=u.app, no_answer=u.no_answer,
                               wakeup=u.wakeup.model_dump())
            for name, u in model.users.items()}
