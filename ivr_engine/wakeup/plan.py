"""Push-then-wait, the pure part: what to ring now, whether to push, how long to wait.

- ``uc``: ring the UC device at once; no push.
- ``mobile``: already registered and reachable → ring at once, no push; otherwise push the
  app awake and wait up to ``mobile_loops × interval`` for its REGISTER, then ring it the
  moment it arrives; when the wait runs out → the user's no-answer destination.
- ``uc+mobile``: the UC device rings at once; the mobile is rung at once too when reachable,
  otherwise pushed and rung the moment it registers (budget ``uc_mobile_loops × interval``);
  first answer wins; when the wait runs out the UC device keeps ringing alone.
The loops × interval are only the budget: the ring is triggered by the registration event.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WakeSettings:
    mobile_loops: int = 3
    uc_mobile_loops: int = 3
    interval_seconds: float = 5.0
    hold: str = "moh"  # moh | ringback
    moh_class: str = "default"
    message: str | None = None
    ring_seconds: int = 30


@dataclass(frozen=True, slots=True)
class UserSpec:
    name: str
    ringing_device: str  # mobile | uc | uc+mobile
    mobile_endpoint: str | None
    uc_endpoint: str | None
    app: str | None
    wake: WakeSettings


@dataclass(frozen=True, slots=True)
class WakePlan:
    ring_uc: bool
    ring_mobile: bool
    push: bool
    wait_seconds: float
    ring_seconds: int
    after_wait: str  # "no-answer" | "uc-alone"


def plan_wakeup(user: UserSpec, mobile_reachable: bool) -> WakePlan:
    w = user.wake
    if user.ringing_device == "uc":
        return WakePlan(True, False, False, 0.0, w.ring_seconds, "no-answer")
    has_uc = user.ringing_device == "uc+mobile"
    loops = w.uc_mobile_loops if has_uc else w.mobile_loops
    after = "uc-alone" if has_uc else "no-answer"
    if mobile_reachable:
        return WakePlan(has_uc, True, False, 0.0, w.ring_seconds, after)
    return WakePlan(has_uc, False, True, loops * w.interval_seconds, w.ring_seconds, after)
