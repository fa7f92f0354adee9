"""Request and response models of the apps' routes: SDK call plans, the apps' status."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, RootModel, field_validator

from ..api.schemas import ProblemDocument, RequestModel, ResponseModel, Text, Timestamp
from .plans import MAX_CUSTOM_KEYS, MAX_CUSTOM_VALUE, clean_custom_data

CustomKey = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")]
CustomValue = Union[Annotated[str, Field(max_length=MAX_CUSTOM_VALUE)], int, float, bool]
Caller = Text(32, "the caller's phone number, as the phone will present it")
InactiveReason = Literal["switched-off", "no-in-app-access-point", "no-ivr-access-point"]
INACTIVE_REASON_DOC = ("switched-off: the app's `active` switch is off; "
                       "no-in-app-access-point: it has no mobile-app access point in the "
                       "in-app structure; no-ivr-access-point: none in the IVR structure")
Language = Text(16, "a language code like en or fr; the app's default when not one of its "
                "languages")


class CallPlanRequest(RequestModel):
    """What the SDK knows when the user taps "call"."""

    connectivity: float = Field(ge=0, le=1, description="the data path's quality, 0..1: VoIP "
                                "above the app's threshold")
    data_path: bool = Field(True, description="false: no usable data path, always PSTN")
    caller: Caller | None = None
    language: Language | None = None
    custom_data: Annotated[dict[CustomKey, CustomValue], Field(
        max_length=MAX_CUSTOM_KEYS)] | None = Field(
        None, description=f"at most {MAX_CUSTOM_KEYS} simple values (printable strings of at "
        f"most {MAX_CUSTOM_VALUE} characters, numbers, booleans), handed to agents and the "
        "dialplan (IVR_DATA_<key>) as strings")

    target: Text(200, "a node id of the app's IVR or in-app tree (GET /v1/apps/{app}/menu"
                 "?surface=ivr|in-app): the call starts there instead of at the top") | None = None

    @field_validator("custom_data", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> dict[str, str]:
        return clean_custom_data(value)  # ValueError names the key; the field stays custom_data


class SipTarget(ResponseModel):
    """Where a VoIP call goes: dial the extension with these SIP headers."""

    extension: str = Field(description="app-<app>")
    headers: dict[str, str] = Field(description='{"X-IVR-Token": <token>}')


class _Plan(ResponseModel):
    reason: str = Field(description="why this mode")
    app: str
    language: str = Field(description="the language the call will use")
    token: str = Field(pattern=r"^[0-9]+$", description="single use, ties the call to this "
                       "plan (its language and custom data)")
    expires_at: Timestamp
    target: str | None = Field(None, description="the node the call starts at (deep link)")


class VoipPlan(_Plan):
    """Call over VoIP."""

    mode: Literal["voip"]
    sip: SipTarget


class PstnPlan(_Plan):
    """Dial the app's fallback number, then the token as post-dial DTMF."""

    mode: Literal["pstn"]
    number: str = Field(description="the app's fallback number (E.164)")
    dial: str = Field(description="what the phone dials: <number>,,<token>#")


class CallPlanResponse(RootModel[Annotated[Union[VoipPlan, PstnPlan],
                                           Field(discriminator="mode")]]):
    """The call plan: VoIP, or PSTN with the number and token to dial."""


class AppInactiveProblem(ProblemDocument):
    """Refused: the app is inactive (README "Mobile apps"): `reason` says why."""

    model_config = ConfigDict(title="AppInactiveProblem")

    reason: InactiveReason = Field(description=INACTIVE_REASON_DOC)


class PlanConflictProblem(ProblemDocument):
    """No plan: the app is inactive, or it has no fallback number for a call with no data
    path (`reason`: no-fallback-number)."""

    model_config = ConfigDict(title="PlanConflictProblem")

    reason: Literal["switched-off", "no-in-app-access-point", "no-ivr-access-point",
                    "no-fallback-number"] = Field(description=INACTIVE_REASON_DOC +
                                                  "; no-fallback-number")


class AppLinks(ResponseModel):
    """Whether agents (and `POST /v1/sms/app-links`) can send this app's install and open
    links by SMS."""

    sends: bool = Field(description="install and open links are sent (sms_links on, "
                        "base_url set, the app active)")
    reason: str | None = Field(description="why not, when not")


class PushCredentials(ResponseModel):
    apns: bool = Field(description="push.apns is configured")
    fcm: bool = Field(description="push.fcm is configured")


class AppStatus(ResponseModel):
    """One app: can its SDK calls be routed, and are its credentials in place."""

    name: str
    status: Literal["active", "switched-off", "no-access-point", "credential-problems"] = Field(
        description="switched-off: its `active` switch is off; no-access-point: it lacks a "
        "mobile-app access point in the in-app or the IVR structure (`reason`); either way "
        "its SDK requests are refused; credential-problems: it is active, but `problems` "
        "lists what is missing (api_key, push credential files)")
    active: bool = Field(description="its SDK requests (plans, menus, queues) are served")
    reason: InactiveReason | None = Field(description="why it is inactive, when it is: "
                                          + INACTIVE_REASON_DOC)
    problems: list[str] = Field(description="the config's warnings about this app and missing "
                                "credentials")
    menu: str | None = Field(description="the menu its callers enter (IVR structure)")
    in_app_menu: str | None = Field(description="the top of its in-app menu")
    app_links: AppLinks
    fallback_number: str | None
    threshold: float | None
    languages: list[str]
    api_key_configured: bool
    push: PushCredentials


class AppStatusList(ResponseModel):
    """Every configured app, in config order."""

    apps: list[AppStatus]
