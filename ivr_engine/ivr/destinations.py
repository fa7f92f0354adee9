"""Where a caller can be sent: the ``kind:target`` strings of the YAML, parsed. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

# kind -> (target required, target pattern, human description of the target)
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
KINDS: dict[str, tuple[bool, str, str]] = {
    "menu": (True, _NAME, "a menu name"),
    "queue": (True, _NAME, "an Asterisk queue name"),
    "voicemail": (True, r"[A-Za-z0-9_]+(@[A-Za-z0-9_-]+)?", "a mailbox like 1000 or 1000@default"),
    "callback": (True, _NAME, "the queue the callback is for"),
    "message-then-hangup": (True, _NAME, "a message name"),
    "endpoint": (True, r"[A-Za-z0-9][A-Za-z0-9_.-]*", "a PJSIP endpoint name"),
    "user": (True, _NAME, "a user name (see users:)"),
    "hangup": (False, "", ""),
}

#: destinations that leave the engine for an Asterisk dialplan hand-off context
HANDOFF_KINDS = frozenset({"queue", "voicemail", "endpoint"})

#: Asterisk's special one-letter extensions (h: hang-up, i: invalid, t/T: timeouts, s: start,
#: a/o: voicemail keys, e: exception). A queue or endpoint name travels as the extension of
#: its hand-off context, whose patterns never match these (dialplan/): such names are refused.
SPECIAL_EXTENSIONS = frozenset("aehiostT")


def _not_special(kind: str, target: str, what: str) -> None:
    if target in SPECIAL_EXTENSIONS:
        raise ValueError(f"{target!r} cannot be {what}: the one-letter names "
                         f"{' '.join(sorted(SPECIAL_EXTENSIONS))} are Asterisk's special "
                         f"extensions (h runs at every hang-up); rename the {kind}")


@dataclass(frozen=True, slots=True)
class Destination:
    kind: str
    target: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind

    def as_json(self) -> dict[str, str | None]:
        return {"type": self.kind, "target": self.target or None}


def parse_destination(text: str) -> Destination:
    """Parse ``queue:support`` and friends; raise ValueError with a readable reason."""
    if not isinstance(text, str):
        raise ValueError(f"expected a destination string like 'queue:support', got {text!r}")
    text = text.strip()
    kind, sep, target = text.partition(":")
    kind = kind.strip()
    target = target.strip()
    if kind not in KINDS:
        raise ValueError(
            f"unknown destination {text!r}; use one of: "
            + ", ".join(k + (":<...>" if KINDS[k][0] else "") for k in KINDS)
        )
    needs_target, pattern, what = KINDS[kind]
    if not needs_target:
        if target:
            raise ValueError(f"'{kind}' takes no target")
        return Destination(kind)
    if not target:
        raise ValueError(f"'{kind}' needs a target: {kind}:<{what}>")
    if not re.fullmatch(pattern, target):
        raise ValueError(f"{target!r} is not {what}")
    if kind in ("queue", "endpoint"):
        _not_special(kind, target, what)
    return Destination(kind, target)


@dataclass(frozen=True, slots=True)
class Dial0:
    """What pressing 0 does in a menu."""

    policy: str  # parent | top | stay | disabled | queue
    queue: str = ""

    def __str__(self) -> str:
        return f"queue:{self.queue}" if self.policy == "queue" else self.policy


DIAL0_POLICIES = ("parent", "top", "stay", "disabled", "queue:<name>")


def parse_dial0(text: str) -> Dial0:
    if not isinstance(text, str):
        raise ValueError(f"expected one of {', '.join(DIAL0_POLICIES)}")
    text = text.strip()
    if text in ("parent", "top", "stay", "disabled"):
        return Dial0(text)
    if text.startswith("queue:"):
        queue = text[len("queue:"):].strip()
        if not re.fullmatch(_NAME, queue):
            raise ValueError(f"{queue!r} is not an Asterisk queue name")
        _not_special("queue", queue, "an Asterisk queue name")
        return Dial0("queue", queue)
    raise ValueError(f"unknown dial-0 policy {text!r}; use one of {', '.join(DIAL0_POLICIES)}")
