"""Request and response models of the wake-up routes: device registration, test pushes."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from ..api.schemas import FieldError, RequestModel, ResponseModel, Text, Timestamp

# bounded by the store's columns (a longer value would fail on PostgreSQL)
Token = Text(512, "a push token as the platform's SDK gives it")
Name = Text(128)


# the rules of ``DeviceRequest._tokens``, for the document: a non-empty token, and no
# voip_token on Android
_TOKEN_RULES = {
    "anyOf": [{"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
              for name in ("push_token", "voip_token")],
    "if": {"required": ["platform"], "properties": {"platform": {"const": "android"}}},
    "then": {"properties": {"voip_token": {"anyOf": [{"type": "null"},
                                                     {"type": "string", "maxLength": 0}]}}},
}


class DeviceRequest(RequestModel):
    """The session user's app install and its push tokens: an iOS app gives its PushKit
    `voip_token` (and its alert `push_token` for cancels), an Android app its FCM
    `push_token`. At least one token is required. The user and the app are the session's."""

    model_config = ConfigDict(json_schema_extra=_TOKEN_RULES)

    app: Name | None = Field(None, description="optional: the session's app (a different "
                             "one is refused)")
    user: Name | None = Field(None, description="optional: the session's user (a different "
                              "one is refused)")
    platform: Literal["ios", "android"]
    push_token: Token | None = None
    voip_token: Token | None = Field(None, description="iOS only (PushKit)")
    app_version: Text(64) | None = None
    os_version: Text(64) | None = None
    model: Text(128) | None = None

    @model_validator(mode="after")
    def _tokens(self) -> DeviceRequest:
        if not self.push_token and not self.voip_token:
            raise FieldError("push_token", "push_token (and for iOS voip_token) is required")
        if self.platform == "android" and self.voip_token:
            raise FieldError("voip_token", "voip_token is for iOS (PushKit) only")
        return self


class DeviceResponse(ResponseModel):
    """The device as stored (one per user, app and platform: a new registration replaces
    the tokens)."""

    id: int
    user: str
    app: str
    platform: Literal["ios", "android"]
    updated_at: Timestamp


class PushTestRequest(RequestModel):
    """Whose devices to push to, through which app's credentials."""

    app: Name
    user: Name


class PushTestResult(ResponseModel):
    """One device's answer. `ok` false with only `reason`: the app's push credentials are
    missing or unusable (nothing was sent)."""

    device_id: int
    platform: str
    ok: bool
    provider: Literal["apns", "fcm"] | None = None
    status: int | None = Field(None, description="the provider's HTTP status; null when it "
                               "never answered")
    reason: str = Field(description='"" when accepted; the provider\'s reason, "timeout", ...')
    token_removed: bool = Field(False, description="the provider says the token is dead: "
                                "the engine forgot it")
    elapsed_ms: float | None = None


class PushTestResponse(ResponseModel):
    """A test wake-up push to each of the user's devices for the app
    (`ivr-engine push test`)."""

    app: str
    user: str
    results: list[PushTestResult]
