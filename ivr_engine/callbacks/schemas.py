"""Request and response models of the callback routes."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, ConfigDict, Field, field_validator

from ..api.schemas import QueryModel, RequestModel, ResponseModel, Text, Timestamp
from .policy import API_OUTCOMES, STATES

State = Literal["requested", "claimed", "dialing", "completed", "failed", "expired"]
ApiOutcome = Literal["answered", "busy", "no-answer", "unreachable", "cancelled"]
assert set(STATES) == set(State.__args__) and set(API_OUTCOMES) == set(ApiOutcome.__args__)


class Callback(ResponseModel):
    """A caller asked to be called back."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    state: State = Field(description="requested → claimed (an API client, or the engine) → "
                         "dialing (the engine placed it in its queue) → completed, failed "
                         "(attempts spent) or expired (not done in time)")
    queue: str
    caller: str = Field(description="the number to call back")
    language: str
    app: str | None = None
    user: str | None = Field(None, description="the verified user of the call that asked")
    verified: bool = False
    entry: str = Field(description="the access point the call entered by")
    path: list[str] = Field(description="the menus it went through")
    call_id: str = Field(validation_alias=AliasChoices("call_id", "channel_id"),
                         description="the channel id of the call that asked")
    created_at: Timestamp
    updated_at: Timestamp | None = None
    claimed_by: str | None = Field(None, description="`api:<agent>` or `engine:<worker>`")
    claimed_at: Timestamp | None = None
    attempts: int = Field(description="tries at the customer's phone")
    not_before: Timestamp | None = Field(None, description="not placed again before")
    last_outcome: str | None = Field(None, description="answered, busy, no-answer, "
                                     "unreachable, cancelled, no-agent, invalid-number, lost")
    note: str | None = None
    completed_at: Timestamp | None = None

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, v: object) -> object:
        return [p for p in v.split("/") if p] if isinstance(v, str) else v


class CallbackList(ResponseModel):
    """Callback requests, oldest first (by id), at most `limit`."""

    count: int = Field(ge=0)
    callbacks: list[Callback]
    next_after: int | None = Field(description="pass as `after` for the next page; null: "
                                   "this is the last")


class CallbackQuery(QueryModel):
    state: State | None = None
    queue: Text(128) | None = None
    after: int = Field(0, ge=0, le=2**31, description="the previous page's `next_after`")
    limit: int = Field(100, ge=1, le=1000)


class ClaimBody(RequestModel):
    """Who takes the callback (shown as `claimed_by: api:<agent>`)."""

    agent: Text(128, "the agent or system that will call back") = Field(min_length=1)


class Claimed(Callback):
    """The callback is yours: complete it with `claim`."""

    claim: str = Field(description="the claim token `complete` needs")


class CompleteBody(RequestModel):
    """How the call back went."""

    claim: Text(64, "the token the claim answered") = Field(min_length=1)
    outcome: ApiOutcome = Field(description="answered → completed; anything else → failed")
    note: Text(500) | None = None
