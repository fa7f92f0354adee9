"""Models every feature's API shares: the problem document, the engine's own answers (health,
reload), and the types request and response models are built from.

Request models are strict (a number is not a string, ``true`` is not ``1``) and ignore
unknown fields (an SDK newer than the engine may send more). Response models are what the
handlers answer: ``reply(model)`` serialises one, and the OpenAPI document describes the same
classes, so the two cannot drift.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

# ---------------------------------------------------------------- building blocks

_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"  # documents "printable"; the validator is stricter


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must be printable text (no control or format characters)")
    return value


def Text(max_length: int, description: str = "", **extra: Any) -> Any:  # a type: capitalised
    """A printable string of at most ``max_length`` characters (ids, versions, numbers)."""
    return Annotated[str, Field(max_length=max_length, description=description or None,
                                json_schema_extra={"pattern": _CONTROL, **extra}),
                     AfterValidator(_printable)]


def _utc(value: dt.datetime) -> dt.datetime:
    """The store may hand back naive datetimes (SQLite): they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


# ISO 8601 with its offset, as ``datetime.isoformat()`` writes it (``+00:00``)
Timestamp = Annotated[dt.datetime, AfterValidator(_utc),
                      PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json"),
                      WithJsonSchema({"type": "string", "format": "date-time"})]


class RequestModel(BaseModel):
    """A request body: strict types, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class QueryModel(BaseModel):
    """A route's query parameters (the door validates them before the handler runs): every
    value arrives as text; a parameter the route does not declare is refused (422), as is one
    given twice."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ResponseModel(BaseModel):
    """An answer body."""

    model_config = ConfigDict(extra="forbid")


class FieldError(ValueError):
    """Raised by a model validator that checks several fields: names the one to blame (the
    422's ``field``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def reply(model: BaseModel, status: int = 200) -> web.Response:
    """A JSON answer built from a response model (ASCII-escaped, like every answer)."""
    return web.json_response(model.model_dump(mode="json"), status=status,
                             dumps=json.dumps)


# ---------------------------------------------------------------- problems (RFC 9457)

class ProblemDocument(BaseModel):
    """An error answer (RFC 9457), `application/problem+json`."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field("about:blank", description="always about:blank: the status says it")
    title: str = Field(description="short, the same for every problem of this kind")
    status: int = Field(ge=400, le=599, description="the HTTP status")
    detail: str = Field(description="what went wrong with this request")
    instance: str = Field(description="the request's path")
    field: str | None = Field(None, description="the request field at fault, as "
                              "`custom_data.tags[1]` (422, 404 and 409 when one is)")


class UpdateRequiredProblem(ProblemDocument):
    """Refused: the device's version is below a mandatory release of its app."""

    model_config = ConfigDict(title="UpdateRequiredProblem")

    reason: Literal["mandatory_update"]
    minimum_version: str
    store_url: str
    platform: str


class ReloadProblem(ProblemDocument):
    """A refused configuration reload: the running config stays."""

    model_config = ConfigDict(title="ReloadProblem")

    errors: list[str] = Field(description="every error of the file, as "
                              "`file:line: key.path: message`")
    warnings: list[str] = Field(default_factory=list, description="its warnings, when the "
                                "whole file could be checked")


# ---------------------------------------------------------------- the engine's own answers

class WebhookStats(ResponseModel):
    """Context webhook deliveries since the engine started."""

    model_config = ConfigDict(extra="allow")

    delivered: int
    failed: int
    dropped: int
    attempts: int
    last_error: str


class Health(ResponseModel):
    """The engine answers; whether Asterisk is connected."""

    status: Literal["ok"]
    ari_connected: bool = Field(description="every Asterisk node's ARI websocket is up")
    calls_in_ivr: int = Field(ge=0, description="calls the engine is driving now")
    context_webhook: WebhookStats | None = Field(description="null when no webhook is set")


class ReloadSummary(ResponseModel):
    """The new configuration is in use (calls in progress keep the one they started with)."""

    status: Literal["reloaded"]
    path: str = Field(description="the file read")
    menus: int = Field(ge=0)
    apps: int = Field(ge=0)
    access_points: int = Field(ge=0)
    users: int = Field(ge=0)
    warnings: list[str] = Field(description="the file's warnings, `file:line: key.path: "
                                "warning: message`")
    restart_needed: list[str] = Field(description="changed settings that only a restart "
                                      "applies (engine.ari, engine.api.listen, ...)")


# ---------------------------------------------------------------- operations (api/ops.py)

class Liveness(ResponseModel):
    """The process answers."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ok"]


class Readiness(ResponseModel):
    """Whether the engine can take calls: every Asterisk node connected (calls taken back,
    registrations subscribed), the database reachable, AMI logged in when configured."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ready", "not ready"]
    reasons: list[str] = Field(default_factory=list, description="why not, when not ready")
