"""Response models of the livedata routes: the app's menu tree, queue status, waits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..api.schemas import QueryModel, ResponseModel

Kind = Literal["menu", "queue", "voicemail", "callback", "message", "user", "endpoint", "hangup"]


class WaitEstimate(ResponseModel):
    """An estimated wait, with how it was made. `seconds` is null when the data is too thin
    to say (see the README's estimator section)."""

    seconds: float | None = Field(description="seconds still to wait; null: no estimate")
    method: Literal["talk-time", "answered-waits", "none"] = Field(
        description="talk-time: position-aware, from recent talk times and the agents "
        "serving; answered-waits: mean wait of recent answered callers; none")
    confidence: Literal["high", "medium", "low", "none"]
    samples: int = Field(ge=0, description="history samples the estimate used")
    reason: str


class MenuNode(ResponseModel):
    """One node of the app's tree: a menu, or an option leading out of the IVR."""

    id: str = Field(description="a deep-link target for POST /v1/apps/{app}/calls")
    kind: Kind
    digit: str | None = Field(description="the key reaching it from its parent menu")
    label: str | None = Field(description="display text in the asked language (with "
                              "fallback); null when the config has none")
    description: str | None
    open: bool = Field(description="open now: its menu's schedule and those above it")
    closed_by: Literal["hours", "date"] | None = Field(
        description="why it is not open: `hours` (outside the opening hours: show "
        "`texts.after_hours`) or `date` (a closed date: show `texts.closed`), from the "
        "highest closed menu on the way; null when open")
    queue: str | None = Field(description="the queue, for queue and callback nodes")
    wait: WaitEstimate | None = Field(description="for a queue: the wait a new caller "
                                      "would have; null while queues are not followed")
    children: list["MenuNode"]


class ShownText(ResponseModel):
    """One in-app text, in the language it was found in."""

    text: str
    language: str = Field(description="the language of this text (after fallback)")


class MenuTexts(ResponseModel):
    """The app's in-app texts (`texts:` and `apps.<app>.texts` in the config) in the language
    its calls would use — the asked one when it is one of the app's (or its base is), else
    the app's default — with the messages' fallback: the app's text in that language, its
    base language, the app's default; then the engine's, the same way, ending in the
    engine's default. Null when neither the app nor the engine has one."""

    after_hours: ShownText | None = Field(description="outside opening hours")
    closed: ShownText | None = Field(description="a closed date (closed all day)")
    outside_app: ShownText | None = Field(description="calls from outside the app are not "
                                          "taken on the fallback number")
    queue_full: ShownText | None = Field(description="the queue takes no more callers")


class MenuTree(ResponseModel):
    """The app's own tree from its access point down (never another app's node), with the
    app's in-app texts."""

    app: str
    surface: Literal["ivr", "in-app"]
    language: str = Field(description="the language labels were picked in first")
    root: MenuNode
    texts: MenuTexts


class Agents(ResponseModel):
    logged_in: int = Field(ge=0, description="members of the queue")
    serving: int = Field(ge=0, description="logged in, not paused, reachable")
    available: int = Field(ge=0, description="serving and free now")
    busy: int = Field(ge=0, description="serving and on a call")
    paused: int = Field(ge=0)


class WaitingCaller(ResponseModel):
    """A caller in the queue, by position (no caller identity is shown)."""

    position: int = Field(ge=1)
    waiting_seconds: float = Field(ge=0)
    estimate: WaitEstimate


class QueueStatus(ResponseModel):
    """A queue as app_queue reports it, followed live over AMI."""

    queue: str
    callers_waiting: int = Field(ge=0)
    longest_wait_seconds: float = Field(ge=0)
    agents: Agents
    answered: int = Field(ge=0, description="callers answered since the engine started")
    abandoned: int = Field(ge=0, description="callers who hung up while waiting")
    estimate_new_caller: WaitEstimate = Field(description="for a caller joining now")
    positions: list[WaitingCaller]
    asterisk_holdtime_seconds: int | None = Field(
        description="Asterisk's own estimate (running average hold time), for comparison")


class CallQueue(ResponseModel):
    """Where a call waits in a queue."""

    queue: str
    position: int = Field(ge=1)
    waiting_seconds: float = Field(ge=0)
    estimate: WaitEstimate


class MenuQuery(QueryModel):
    """Which surface's tree, and in which language."""

    surface: Literal["ivr", "in-app"] = Field("ivr", description="the visual IVR (`ivr`) or "
                                             "the in-app menu")
    lang: str | None = Field(None, max_length=16, description="labels in this language, then "
                             "its base language, the app's default, the engine's default")

    @field_validator("lang")
    @classmethod
    def _lang(cls, v: str | None) -> str | None:
        if v is not None and (not v or not v.replace("_", "").isalnum() or not v.isascii()):
            raise ValueError("lang must be a language code like en or pt_BR")
        return v or None
