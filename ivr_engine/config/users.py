"""Users (targets of ``user:<name>``) and their push-then-wait settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..ivr.destinations import Destination
from ..wakeup.plan import UserSpec, WakeSettings
from .model import ConfigModel
from .yamlsrc import Issue, Source


@dataclass(frozen=True, slots=True)
class CompiledUser:
    spec: UserSpec
    no_answer: Destination


def _settings(model: ConfigModel, name: str) -> WakeSettings:
    base, over = model.wakeup, model.users[name].wakeup
    values = {k: getattr(over, k) if getattr(over, k) is not None else getattr(base, k)
              for k in ("mobile_loops", "uc_mobile_loops", "interval_seconds", "hold",
                        "moh_class", "message", "ring_seconds")}
    return WakeSettings(**values)


def default_no_answer(name: str) -> Destination:
    return Destination("voicemail", f"{name}@default")


def check_users(model: ConfigModel, src: Source,
                need_dest: Callable[[tuple, Destination], None]) -> list[Issue]:
    issues: list[Issue] = []

    def err(path: tuple, msg: str) -> None:
        issues.append(src.issue(path, msg))

    if model.wakeup.message and model.wakeup.message not in model.messages:
        err(("wakeup", "message"), f"message {model.wakeup.message!r} is not defined under "
            "messages")
    mobile_owner: dict[str, str] = {}
    for name, user in model.users.items():
        at = ("users", name)
        device = user.ringing_device
        if device in ("mobile", "uc+mobile"):
            if not user.mobile_endpoint:
                err(at, f"ringing_device {device} needs mobile_endpoint (the PJSIP endpoint "
                    "the app registers)")
            if not user.app:
                err(at, f"ringing_device {device} needs app (whose push credentials wake "
                    "the phone)")
        if device in ("uc", "uc+mobile") and not user.uc_endpoint:
            err(at, f"ringing_device {device} needs uc_endpoint")
        if user.app and user.app not in model.apps:
            err(at + ("app",), f"app {user.app!r} is not defined under apps")
        if user.mobile_endpoint:
            other = mobile_owner.get(user.mobile_endpoint)
            if other:
                err(at + ("mobile_endpoint",), f"endpoint {user.mobile_endpoint!r} is already "
                    f"the mobile endpoint of user {other!r}")
            mobile_owner.setdefault(user.mobile_endpoint, name)
        if user.wakeup.message and user.wakeup.message not in model.messages:
            err(at + ("wakeup", "message"), f"message {user.wakeup.message!r} is not defined "
                "under messages")
        if user.no_answer is not None:
            if user.no_answer.kind in ("menu", "user"):
                err(at + ("no_answer",), f"no_answer cannot be {user.no_answer.kind}: use a "
                    "queue, voicemail, endpoint, callback, message-then-hangup or hangup")
            else:
                need_dest(at + ("no_answer",), user.no_answer)
    return issues


def compile_users(model: ConfigModel) -> dict[str, CompiledUser]:
    out = {}
    for name, u in model.users.items():
        spec = UserSpec(name, u.ringing_device, u.mobile_endpoint, u.uc_endpoint, u.app,
                        _settings(model, name))
        out[name] = CompiledUser(spec, u.no_answer or default_no_answer(name))
    return out
