"""Request and response models of the web widget's routes (``edge/http.py``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..api.schemas import QueryModel, RequestModel, ResponseModel, Text, Timestamp


def _language(v: str | None) -> str | None:
    if v is not None and (not v or not v.replace("_", "").isalnum() or not v.isascii()):
        raise ValueError("must be a language code like en or pt_BR")
    return v


class WidgetQuery(QueryModel):
    """The visitor's language (default: the browser's Accept-Language, then the app's)."""

    lang: str | None = Field(None, max_length=16, description="labels in this language, then "
                             "its base language, the app's default, the engine's default")

    _lang = field_validator("lang")(classmethod(lambda cls, v: _language(v)))


class WidgetCallRequest(RequestModel):
    """A click on an entry of the widget's menu."""

    target: Text(200, "a node id of the app's tree (GET /w/{app}/menu): the call starts there")
    language: Text(16, "the visitor's language; the app's default when not one of its "
                   "languages") | None = None

    _lang = field_validator("language")(classmethod(lambda cls, v: _language(v)))


class WidgetSip(ResponseModel):
    """How the browser places the call: SIP over secure WebSocket, WebRTC media."""

    wss_url: str = Field(description="Asterisk's SIP over WebSocket (wss://)")
    uri: str = Field(description="the Request-URI: sip:app-<app>@<domain>")
    from_uri: str = Field(description="the visitor's SIP identity (the WebRTC endpoint)")
    headers: dict[str, str] = Field(description='{"X-IVR-Token": <token>}')
    ice_servers: list[str] = Field(description="STUN/TURN URLs for the browser")


class WidgetCall(ResponseModel):
    """An anonymous call plan for one WebRTC call, deep-linked to the clicked node."""

    app: str
    token: str = Field(pattern=r"^[0-9]+$", description="single use, ties the call to this "
                       "plan (its language and target)")
    target: str = Field(description="the node the call starts at")
    language: str = Field(description="the language the call will use")
    expires_at: Timestamp
    sip: WidgetSip
