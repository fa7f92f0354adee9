"""Push-then-wait, the ringing itself as a state machine. Pure: events in, actions out.

One :class:`Ringing` per ``user:`` destination. The shell (``ringer.py``) feeds it what
happens — the wake-up message ended, the app registered, a leg entered Stasis, answered or
went, the wait budget ran out — and executes the actions it returns in order. Legs are named
here (``<call>-uc1``, ``<call>-mobile2``), so the shell can route their events before they
exist. Stale events (a second registration, a leg already gone, an old timer) return nothing.

Timeline of a sleeping ``mobile`` user: ``start`` → arm the watchdog, push, wait timer, the
optional message → hold (music on hold or ringback) → the app registers → ring the mobile
(created now, dialled once in Stasis) → it answers → stop the hold, disarm, bridge → done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .plan import UserSpec, WakePlan


# ------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True)
class ArmWatchdog:
    """Asterisk's deadline for the caller if the engine dies; 0: none (a conversation)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class SendWakePushes:
    ttl_seconds: float


@dataclass(frozen=True, slots=True)
class StartWaitTimer:
    seconds: float


@dataclass(frozen=True, slots=True)
class PlayMessage:
    name: str


@dataclass(frozen=True, slots=True)
class Hold:
    on: bool


@dataclass(frozen=True, slots=True)
class CreateLeg:
    """Create the leg in the engine's application; it is dialled once it is in Stasis."""

    leg: str
    endpoint: str
    kind: str  # uc | mobile


@dataclass(frozen=True, slots=True)
class DialLeg:
    leg: str
    ring_seconds: int


@dataclass(frozen=True, slots=True)
class HangupLeg:
    leg: str


@dataclass(frozen=True, slots=True)
class CancelPushes:
    """Tell the woken devices the call is gone (iOS: an alert push, never VoIP)."""


@dataclass(frozen=True, slots=True)
class Bridge:
    leg: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The ringing is over: ``leg`` answered, else nobody did (or it was stopped)."""

    leg: str | None = None

    @property
    def answered(self) -> bool:
        return self.leg is not None


RingAction = (ArmWatchdog | SendWakePushes | StartWaitTimer | PlayMessage | Hold | CreateLeg
              | DialLeg | HangupLeg | CancelPushes | Bridge | Finished)


# ------------------------------------------------------------------ the machine


@dataclass
class Ringing:
    call: str  # the caller's channel id (legs are named after it)
    user: UserSpec
    plan: WakePlan
    grace_seconds: float = 3.0  # added to the watchdog (see ivr/runtime.py)

    legs: dict[str, str] = field(default_factory=dict)  # leg -> uc | mobile, until gone
    to_dial: set[str] = field(default_factory=set)  # created, dialled on entering Stasis
    waiting: bool = False  # for the mobile app's registration
    message: bool = False  # the wake-up message is playing
    after_message: list[str] = field(default_factory=list)  # registrations, expiry meanwhile
    pushed: bool = False
    finished: bool = False
    _n: int = 0

    # -------------------------------------------------------------- events

    def start(self) -> list[RingAction]:
        plan, out = self.plan, []
        wait = plan.wait_seconds + plan.ring_seconds
        out.append(ArmWatchdog(wait + self.grace_seconds))
        if plan.push:
            self.waiting = self.pushed = True
            out += [SendWakePushes(plan.wait_seconds), StartWaitTimer(plan.wait_seconds)]
        if self.user.wake.message:
            self.message = True
            out.append(PlayMessage(self.user.wake.message))
            return out
        return out + self._ring_now()

    def message_finished(self) -> list[RingAction]:
        if not self.message or self.finished:
            return []
        self.message = False
        out = self._ring_now()
        for what in self.after_message:
            out += self.registered() if what == "registered" else self.wait_expired()
        self.after_message.clear()
        return out

    def registered(self) -> list[RingAction]:
        """The user's mobile app has just registered."""
        if not self.waiting or self.finished:
            return []
        if self.message:
            self.after_message.append("registered")
            return []
        self.waiting = False
        return self._leg("mobile")

    def wait_expired(self) -> list[RingAction]:
        if not self.waiting or self.finished:
            return []
        if self.message:
            self.after_message.append("expired")
            return []
        self.waiting = False
        out = self._cancel_pushes()
        if self.plan.after_wait == "uc-alone" and self.legs:
            return out  # the UC device keeps ringing alone
        return out + self._no_answer()

    def leg_in_stasis(self, leg: str) -> list[RingAction]:
        if leg not in self.to_dial or self.finished:
            return []
        self.to_dial.discard(leg)
        return [DialLeg(leg, self.plan.ring_seconds)]

    def leg_answered(self, leg: str) -> list[RingAction]:
        if leg not in self.legs or self.finished:
            return []
        kind = self.legs.pop(leg)
        out: list[RingAction] = [HangupLeg(other) for other in self.legs]
        self.legs.clear()
        self.waiting = False
        if kind != "mobile":  # answered elsewhere: the woken phone must stop ringing
            out += self._cancel_pushes()
        self.finished = True
        return out + [Hold(False), ArmWatchdog(0), Bridge(leg), Finished(leg)]

    def leg_gone(self, leg: str) -> list[RingAction]:
        """The leg hung up, was refused, or could not be created or dialled."""
        if leg not in self.legs or self.finished:
            return []
        del self.legs[leg]
        self.to_dial.discard(leg)
        if self.legs or self.waiting:
            return []
        return self._no_answer()

    def stop(self, caller_left: bool = False) -> list[RingAction]:
        """A transfer took the caller elsewhere, or the caller hung up."""
        if self.finished:
            return []
        return self._no_answer(hold_off=not caller_left)

    # -------------------------------------------------------------- internals

    def _ring_now(self) -> list[RingAction]:
        out: list[RingAction] = []
        if self.plan.ring_uc:
            out += self._leg("uc")
        if self.plan.ring_mobile:
            out += self._leg("mobile")
        out.insert(0, Hold(True))
        if not self.legs and not self.waiting:
            out += self._no_answer()
        return out

    def _leg(self, kind: str) -> list[RingAction]:
        if kind in self.legs.values():
            return []
        self._n += 1
        leg = f"{self.call}-{kind}{self._n}"
        self.legs[leg] = kind
        self.to_dial.add(leg)
        endpoint = self.user.uc_endpoint if kind == "uc" else self.user.mobile_endpoint
        assert endpoint is not None
        return [CreateLeg(leg, endpoint, kind)]

    def _cancel_pushes(self) -> list[RingAction]:
        if not self.pushed:
            return []
        self.pushed = False
        return [CancelPushes()]

    def _no_answer(self, hold_off: bool = True) -> list[RingAction]:
        out: list[RingAction] = [HangupLeg(leg) for leg in self.legs]
        self.legs.clear()
        self.to_dial.clear()
        self.waiting = False
        self.finished = True
        out += self._cancel_pushes()
        if hold_off:
            out.append(Hold(False))
        return out + [Finished()]
