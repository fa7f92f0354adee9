"""What the runtime asks the shell to do. Pure data; the shell (calls/) executes it over ARI."""

from __future__ import annotations

from dataclasses import dataclass

from .destinations import Destination


@dataclass(frozen=True, slots=True)
class Answer:
    pass


@dataclass(frozen=True, slots=True)
class Play:
    """Play ``media`` in order as one playback; ``interruptible`` = a key stops it (barge-in)."""

    token: str
    media: tuple[str, ...]
    language: str
    interruptible: bool


@dataclass(frozen=True, slots=True)
class StopPlayback:
    token: str


@dataclass(frozen=True, slots=True)
class Collect:
    """The menu now waits ``seconds`` for a key; the shell starts a timer named ``token``.

    ``menu`` and ``seq`` let the shell publish that the engine is waiting (IVR_AWAITING), which
    is what `ivr-engine call` and the tests use to send keys at the right moment.
    """

    token: str
    menu: str
    seconds: float
    seq: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    token: str


@dataclass(frozen=True, slots=True)
class SetVariables:
    """Channel variables, in order (e.g. IVR_PATH on each menu entry, hand-off data)."""

    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class HandOff:
    """Leave the engine: continue in the dialplan context for a queue, voicemail or endpoint."""

    destination: Destination


@dataclass(frozen=True, slots=True)
class RecordCallback:
    queue: str
    caller: str
    language: str
    entry: str
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RingUser:
    """Wake the user's devices as needed and ring them (the shell's push-then-wait); the
    shell answers with ``IvrRuntime.ring_finished(token, answered)``."""

    user: str
    token: str


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str = "normal"


Action = (Answer | Play | StopPlayback | Collect | CancelTimer | SetVariables | HandOff
          | RecordCallback | RingUser | Hangup)
