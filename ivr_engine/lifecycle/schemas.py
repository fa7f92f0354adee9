"""Request and response models of the lifecycle routes: logins (sessions), releases and their
notices, the current sessions, the login report."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator

from ..api.schemas import (
    ProblemDocument,
    QueryModel,
    RequestModel,
    ResponseModel,
    Text,
    Timestamp,
)
from .versions import parse_version

Name = Text(128)
VersionText = Text(64, "dotted numbers compared as integers (2.17.60 < 2.17.100); "
                   "-prerelease sorts before the release, +build or (build) is ignored")
Os = Literal["ios", "android", "windows", "macos", "linux", "web"]
ReleasePlatform = Os
EndReason = Literal["logout", "replaced", "mandatory_update", "expired"]
MAX_MESSAGES = 20
MAX_MESSAGE = 400
MAX_MESSAGES_JSON = 2000  # APNs payloads are at most 4 KiB


def _version(value: str) -> str:
    parse_version(value)  # VersionError is a ValueError: the 422 names the field
    return value


class LoginRequest(RequestModel):
    """An SDK login: who (the `assertion` the customer's backend signed for the user), on
    what. `push_token` (the APNs alert token on iOS, the FCM token on Android) is how the
    device is told when a later login ends this session."""

    assertion: str = Field(min_length=1, max_length=8192, description="a JWT your backend "
                           "signed: {sub: <user>, aud: <app>, iss, iat, exp, jti}, with the "
                           "algorithm of the app's user_assertion")
    user: Name | None = Field(None, description="optional: the assertion's `sub` (a "
                              "different user is refused)")
    device_id: Text(128, "the install's stable id")
    platform: Literal["mobile", "desktop"]
    app_type: Text(64, 'the client, e.g. "Mobile" or "Agent Desktop"')
    app_version: VersionText
    os: Os
    os_version: Text(64)
    device_model: Text(128, 'e.g. "iPhone 8 Plus"') = ""
    push_token: Text(512, "alert push token (APNs) or FCM token") | None = None
    force: bool = Field(False, description="end the user's open session on another device "
                        "without asking (with `confirm_takeover` on, a login without it is "
                        "answered 409 naming that session)")

    @field_validator("app_version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        return _version(value)


class ReplacedSession(ResponseModel):
    """The session this login ended (reason `replaced`) and how its device was told."""

    session_id: int
    device_id: str
    platform: str
    notified: Literal["sent", "provider_error", "token_removed", "no_token", "same_device"] = (
        Field(description="same_device: the device logged in again (nothing to tell)"))


class OfflineSecret(ResponseModel):
    """For calls with no data path: keep `secret` on the device (keychain / keystore). To call
    offline, dial `number` then, as post-dial DTMF, `<session_id>*<code>#` where `code` is
    HOTP(secret, counter + 1) (RFC 4226, SHA-1, `digits` digits) and the counter moves on; the
    engine accepts a counter up to `look_ahead` past the last one it accepted, each once."""

    secret: str = Field(description="base32 (RFC 4648), 160 bits")
    digits: int
    counter: int = Field(description="the last counter used: the next code is counter + 1")
    look_ahead: int
    number: str | None = Field(description="the app's PSTN fallback number")
    dial: str | None = Field(description="what to dial with {code} replaced, e.g. "
                             "+17144505656,,42*{code}#")


class LoginResponse(ResponseModel):
    """The session: send `token` as `Authorization: Bearer <token>` on the SDK routes that act
    for the user (call plans, device registration) and to log out. Only its hash is stored.
    `offline`: how to call the fallback number with no data path (null: the app has no
    offline codes)."""

    session_id: int
    token: str
    user: str
    app: str
    started_at: Timestamp
    idle_expiry_seconds: float | None = Field(description="null: no idle expiry")
    replaced: list[ReplacedSession]
    offline: OfflineSecret | None = None


class HandoverSession(ResponseModel):
    """The open session a login would end: what the app shows its user."""

    platform: str = Field(description="mobile | desktop")
    app_type: str
    os: str
    os_version: str
    device_model: str
    device_id: str
    since: Timestamp


class HandoverProblem(ProblemDocument):
    """409 `session_takeover`: the app's `confirm_takeover` is on and this login would end
    the user's open session on another device (`session`); ask the user, then repeat the
    login with `force: true` (the same assertion may be sent again: it was not used up).
    Without `reason`: logins are not configured for the app."""

    model_config = ConfigDict(title="HandoverProblem")

    reason: Literal["session_takeover"] | None = None
    session: HandoverSession | None = None


class LoggedOut(ResponseModel):
    """The session has ended (reason `logout`)."""

    session_id: int
    ended_at: Timestamp
    end_reason: Literal["logout"]


class SessionInfo(ResponseModel):
    """A user's session as the admin sees it (Login Info)."""

    session_id: int
    app: str
    user: str
    platform: str
    app_type: str
    app_version: str
    os: str
    os_version: str
    device_model: str
    device_id: str
    since: Timestamp
    last_seen_at: Timestamp


class SessionList(ResponseModel):
    """The open sessions (one per user and app), by user."""

    sessions: list[SessionInfo]


class ReminderPolicy(RequestModel):
    """Reminders of a recommended release: a device still older is sent the notice again
    `after_seconds` after the last one, at most `max` times (0: never)."""

    after_seconds: int = Field(ge=60, le=90 * 86_400)
    max: int = Field(ge=0, le=20)


class ReleaseRequest(RequestModel):
    """A release of an app for one platform. `grace_seconds` (mandatory only): how long open
    sessions below it live on after the notice (0: they end at the notice). `reminders`
    (recommended only): this release's reminder policy; absent: `lifecycle.reminders`."""

    platform: ReleasePlatform
    version: VersionText
    kind: Literal["recommended", "mandatory"]
    store_url: Annotated[str, Field(max_length=1000, pattern=r"^https://[^\s]+$",
                                    description="where the update is (https)")]
    messages: dict[Text(16), Text(MAX_MESSAGE)] = Field(
        default_factory=dict, max_length=MAX_MESSAGES,
        description="language code: the text the notice shows")
    grace_seconds: int = Field(0, ge=0, le=30 * 86_400)
    reminders: ReminderPolicy | None = None

    @field_validator("messages")
    @classmethod
    def _fits_a_push(cls, value: dict[str, str]) -> dict[str, str]:
        if len(json.dumps(value)) > MAX_MESSAGES_JSON:
            raise ValueError(f"the messages take more than {MAX_MESSAGES_JSON} bytes as JSON: "
                             "a notice must fit in one push")
        return value

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        return _version(value)


class NoticeCounts(ResponseModel):
    """Notices recorded for a release, by delivery result."""

    sent: int = 0
    provider_error: int = 0
    token_removed: int = 0


class ReminderInfo(ResponseModel):
    """A recommended release's reminders: the policy in force, and what the sweeper sent."""

    after_seconds: int
    max: int = Field(description="0: no reminders")
    policy: Literal["release", "config"] = Field(description="the release's own policy, or "
                                                 "`lifecycle.reminders`")
    reminders: int = Field(description="reminder pushes made (every result)")
    devices: int = Field(description="devices reminded at least once")
    last_result: NoticeCounts = Field(description="devices by the result of their last "
                                      "reminder")
    updated: int = Field(description="devices that reported this version or newer after "
                         "their notice: no more reminders")


class ReleaseInfo(ResponseModel):
    id: int
    app: str
    platform: str
    version: str
    kind: str
    store_url: str
    messages: dict[str, str]
    grace_seconds: int
    published_at: Timestamp
    republished_at: Timestamp | None
    notices: NoticeCounts
    reminders: ReminderInfo | None = Field(None, description="null for a mandatory release")


class PublishResponse(ResponseModel):
    """The release as stored, what this publication did: the devices notified now (only
    those still older and not yet sent this release), and the sessions it ended."""

    release: ReleaseInfo
    created: bool = Field(description="false: a re-publication")
    notified: NoticeCounts = Field(description="this publication's sends")
    skipped_up_to_date: int = Field(description="devices at or above the release (or of "
                                    "unknown version): nothing sent")
    skipped_already_sent: int
    skipped_logged_out: int = Field(description="devices of users logged out of the app "
                                    "(they had sessions, none is open): not reachable")
    sessions_ended: int = Field(description="mandatory, no grace: sessions below it ended")
    fanout_seconds: float


class ReleaseList(ResponseModel):
    releases: list[ReleaseInfo]


class NoticeInfo(ResponseModel):
    device_id: int
    user: str
    device_version: str
    result: Literal["sent", "provider_error", "token_removed"]
    reason: str
    sent_at: Timestamp
    reminders: int = Field(0, description="reminders sent to the device since its notice")
    reminded_at: Timestamp | None = None
    reminder_result: Literal["sent", "provider_error", "token_removed"] | None = None


class NoticeList(ResponseModel):
    """A release's notices, per device (at most 1000)."""

    release_id: int
    notices: list[NoticeInfo]


class LoginRow(ResponseModel):
    """One session in the login report."""

    session_id: int
    app: str
    user: str
    platform: str
    app_type: str
    app_version: str
    device_id: str
    device_model: str
    os: str
    os_version: str
    login_at: Timestamp
    logout_at: Timestamp | None = Field(description="null while the session is open")
    ended: EndReason | None = Field(description="how the session ended; null while open")


class LoginReport(ResponseModel):
    """Sessions that began in [from, to), oldest first."""

    start: Timestamp = Field(description="the `from` asked")
    end: Timestamp = Field(description="the `to` asked")
    rows: list[LoginRow]
    truncated: bool = Field(description="more rows than the limit (10 000): narrow the range")


# ---------------------------------------------------------------- app logs on request

class LogRequestCreate(RequestModel):
    """Ask a user's devices of the app (or one of them) for their logs."""

    user: Name
    device: int | None = Field(None, ge=1, le=2**31 - 1, description="one device (its id "
                               "in the devices list); all the user's devices of the app when "
                               "absent")


class LogRequestInfo(ResponseModel):
    """An admin's log request and its upload, or logs the app sent unasked (`origin`
    user: uploaded when created)."""

    id: str = Field(description="the request id the device uploads to: PUT "
                    "/v1/log-requests/{id}/upload")
    app: str
    user: str
    device: int | None = Field(description="the device (devices list); null: logs sent "
                               "unasked from a device with no push registration")
    platform: str
    created_at: Timestamp
    expires_at: Timestamp
    push: str = Field(description="how the device was asked: sent, provider_error, "
                      "token_removed, no_token; unasked (origin user)")
    state: Literal["pending", "uploaded", "expired"]
    uploaded_at: Timestamp | None
    content_type: str | None
    size: int | None
    origin: Literal["admin", "user"] = Field(description="admin: asked by an admin; user: "
                                             "sent by the app unasked")
    session_id: int | None = Field(description="origin user: the session that sent it")


class LogRequestList(ResponseModel):
    """Log requests, newest first (at most 1000)."""

    requests: list[LogRequestInfo]


class LogUploaded(ResponseModel):
    """The upload is stored (kept `lifecycle.logs.retention_days`)."""

    id: str
    size: int
    content_type: str
    uploaded_at: Timestamp


# ---------------------------------------------------------------- query parameters

class UserQuery(QueryModel):
    """Narrow to one user."""

    user: Text(128, "one user's id") | None = None


class LogQuery(QueryModel):
    """Narrow the log list to one user, or to one origin."""

    user: Text(128, "one user's id") | None = None
    origin: Literal["admin", "user"] | None = None


class ReportQuery(QueryModel):
    """The login report's range and filters."""

    start: Text(40, "ISO 8601; without an offset, UTC; default: a day before `to`") | None = (
        Field(None, alias="from"))
    end: Text(40, "ISO 8601; default: now; between 1970 and 9998") | None = Field(
        None, alias="to")
    app: Text(128) | None = None
    user: Text(128) | None = None
