"""Request and response models of the users routes. A user's keys are the config's
``users:`` keys; the rules behind them (names, destinations, the ``wakeup`` bounds, the app
and messages named) are the config's own, applied by ``records.parse_user`` and
``records.check_against`` after these models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..api.schemas import ProblemDocument, QueryModel, RequestModel, ResponseModel, Text
from ..config.model_apps import WakeupOverride

Name = Text(128, "letters, digits and . _ + -, starting with a letter or digit")
Device = Literal["mobile", "uc", "uc+mobile"]
Destination = Text(300, "where an unanswered call goes, as in the config: "
                   "`voicemail:<box>@<context>`, `queue:<name>`, `endpoint:<name>`, "
                   "`callback:<queue>`, `message-then-hangup:<message>`, `hangup`; default "
                   "`voicemail:<user>@default`")


class UserFields(RequestModel):
    """A user's keys, as under the config's `users:`; a key left out takes its default."""

    ringing_device: Device = Field("mobile", description="mobile: the phone app (woken by "
                                   "a push); uc: the desk or web client; uc+mobile: both, "
                                   "the first to answer wins")
    mobile_endpoint: Name | None = Field(None, description="the PJSIP endpoint (and AOR) "
                                         "the phone app registers; one user's at most")
    uc_endpoint: Name | None = None
    app: Name | None = Field(None, description="the app whose push credentials wake the "
                             "phone")
    no_answer: Destination | None = None
    wakeup: WakeupOverride | None = Field(None, description="overrides of the config's "
                                          "`wakeup:` keys")

    def values(self) -> dict[str, Any]:
        """The keys given, as ``records.parse_user`` takes them."""
        out = self.model_dump(exclude_none=True, exclude={"wakeup", "name"})
        if self.wakeup is not None:
            wake = self.wakeup.model_dump(exclude_none=True)
            if wake:
                out["wakeup"] = wake
        return out


class NewUser(UserFields):
    name: Name


class UserPatch(RequestModel):
    """JSON merge patch (RFC 7396): a key given replaces, `null` removes it (back to its
    default); `wakeup` is merged key by key."""

    ringing_device: Device | None = None
    mobile_endpoint: Name | None = None
    uc_endpoint: Name | None = None
    app: Name | None = None
    no_answer: Destination | None = None
    wakeup: WakeupOverride | None = None

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.model_fields_set:
            value = getattr(self, key)
            if key == "wakeup" and value is not None:
                value = {k: getattr(value, k) for k in value.model_fields_set}
            out[key] = value
        return out


class User(ResponseModel):
    """A user as the engine rings it."""

    name: str
    ringing_device: Device
    mobile_endpoint: str | None
    uc_endpoint: str | None
    app: str | None
    no_answer: str | None = Field(description="null: `voicemail:<user>@default`")
    wakeup: dict[str, Any] = Field(description="the `wakeup:` keys this user overrides")
    source: Literal["database", "config"] = Field(description="where the engine reads it: "
                                                  "the database wins over the config file")
    config_at: str | None = Field(description="`file:line` of a user of the same name "
                                  "under the config's `users:` (shadowed when `source` is "
                                  "database)")


class UserPage(ResponseModel):
    """Database users by name, at most `limit`."""

    users: list[User]
    next_after: str | None = Field(description="pass as `after` for the next page; null: "
                                   "this is the last")
    total: int = Field(description="database users in all")


class UserListQuery(QueryModel):
    after: Text(128, "the previous page's `next_after`") | None = None
    limit: int = Field(100, ge=1, le=1000, description="users per page")


class ImportAccepted(ResponseModel):
    imported: int = Field(description="users created or replaced")
    created: int
    replaced: int


class LineError(ResponseModel):
    line: int = Field(description="1 is the header")
    reason: str


class ImportProblem(ProblemDocument):
    """A refused import: nothing was imported."""

    bad_lines: int = Field(description="how many lines were refused (exact)")
    errors: list[LineError] = Field(description="the first 10 000 bad lines, in order")


class RingingRequest(RequestModel):
    """What the user's calls ring: the phone app alone, or the UC client and the phone app
    (the first to answer wins)."""

    ringing_device: Literal["mobile", "uc+mobile"]


class Ringing(ResponseModel):
    user: str
    ringing_device: Device
    source: Literal["database", "config"]
