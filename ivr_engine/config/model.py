"""The shape of the YAML, as pydantic v2 models (frozen, unknown keys refused).

Field-level rules live here; rules that need the whole document (does that menu exist? is
that sub-menu shared by two parents?) live in ``validate.py``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from ..ivr.destinations import Destination, Dial0, parse_destination, parse_dial0
from ..ivr.messages import is_language, normalize_media
from ..ivr.schedule import TimeRange, parse_dates, parse_days, parse_range


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _dest(v: object) -> Destination:
    if isinstance(v, Destination):
        return v
    return parse_destination(v)  # type: ignore[arg-type]


def _dial0(v: object) -> Dial0:
    if isinstance(v, Dial0):
        return v
    return parse_dial0(v)  # type: ignore[arg-type]


def _language(v: str) -> str:
    if not is_language(v):
        raise ValueError(f"{v!r} is not a language code like en, fr or pt_BR")
    return v


def _timezone(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{v!r} is not an IANA timezone like Europe/Paris") from None
    return v


def _listen(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{v!r} is not host:port")
    return v


DestinationField = Annotated[Destination, BeforeValidator(_dest)]
Dial0Field = Annotated[Dial0, BeforeValidator(_dial0)]
Language = Annotated[str, AfterValidator(_language)]
Timezone = Annotated[str, AfterValidator(_timezone)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")]


# --------------------------------------------------------------------------- engine


class AriSettings(_Model):
    url: str = "http://127.0.0.1:8088"
    username: str = "ivr-engine"
    password: SecretStr
    app: Name = "ivr-engine"
    reconnect_max_seconds: float = Field(30.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", v):
            raise ValueError("expected http://host:port (the engine adds /ari)")
        return v.rstrip("/")


class AmiSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(5038, gt=0, lt=65536)
    username: str = "ivr-engine"
    password: SecretStr | None = None


class ApiSettings(_Model):
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:8080"


class DialplanSettings(_Model):
    """Dialplan contexts the engine hands calls to (see dialplan/extensions_ivr_engine.conf)."""

    queue: Name = "ivr-engine-queue"
    voicemail: Name = "ivr-engine-voicemail"
    endpoint: Name = "ivr-engine-endpoint"
    endpoint_ring_seconds: int = Field(30, ge=1, le=600)


class EngineSettings(_Model):
    ari: AriSettings
    ami: AmiSettings = AmiSettings()
    database_url: str = "sqlite:///ivr-engine.db"
    api: ApiSettings = ApiSettings()
    default_language: Language = "en"
    timezone: Timezone = "UTC"
    dialplan: DialplanSettings = DialplanSettings()


# --------------------------------------------------------------------------- schedules


def _ranges(v: object) -> tuple[TimeRange, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)):
        raise ValueError("expected a list of time ranges like ['08:00-12:00', '14:00-18:00']")
    ranges = sorted((r if isinstance(r, TimeRange) else parse_range(r)) for r in v)  # type: ignore[type-var]
    for a, b in zip(ranges, ranges[1:]):
        if b.start < a.end:
            raise ValueError(f"ranges {a} and {b} overlap")
    return tuple(ranges)


Ranges = Annotated[tuple[TimeRange, ...], BeforeValidator(_ranges)]


class ScheduleModel(_Model):
    timezone: Timezone | None = None
    weekly: dict[str, Ranges] = {}
    closed: list[str | dt.date] = []
    open: dict[str, Ranges] = {}

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, v: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
        seen: dict[int, str] = {}
        for key in v:
            for day in parse_days(key):
                if day in seen:
                    raise ValueError(f"{key!r} repeats a day already given by {seen[day]!r}")
                seen[day] = key
        return v

    @field_validator("closed")
    @classmethod
    def _closed(cls, v: list[str | dt.date]) -> list[str | dt.date]:
        for item in v:
            parse_dates(item)
        return v

    @field_validator("open")
    @classmethod
    def _open(cls, v: dict[str, tuple[TimeRange, ...]]) -> dict[str, tuple[TimeRange, ...]]:
        for key in v:
            if len(parse_dates(key)) != 1:
                raise ValueError(f"{key!r}: exceptional openings are given one date at a time")
        return v


# --------------------------------------------------------------------------- menus


def _media_list(v: object) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError("expected a sound reference or a non-empty list of them")
    return tuple(normalize_media(x) for x in v)


MediaList = Annotated[tuple[str, ...], BeforeValidator(_media_list)]


def _option_key(key: str) -> str:
    if key in ("0", "*", "#"):
        what = {"0": "the menu's dial0 policy", "*": "'back to parent'", "#": "'repeat'"}[key]
        raise ValueError(f"key {key!r} is reserved for {what}; it cannot be an option")
    if not re.fullmatch(r"[1-9]", key):
        raise ValueError(f"option key {key!r} must be a single digit 1-9")
    return key


OptionKey = Annotated[str, AfterValidator(_option_key)]


class AfterHours(_Model):
    message: Name | None = None
    destination: DestinationField


class MenuDefaults(_Model):
    timeout: float = Field(5.0, gt=0, le=120, description="seconds to wait for a key after the prompt")
    max_invalid: int = Field(3, ge=1, le=20)
    max_timeouts: int = Field(3, ge=1, le=20)
    dial0: Dial0Field = Dial0("disabled")
    on_exhausted: DestinationField = Destination("hangup")
    invalid_message: Name | None = None
    timeout_message: Name | None = None
    callback_message: Name | None = None


class Menu(_Model):
    prompt: Name
    options: dict[OptionKey, DestinationField] = {}
    timeout: float | None = Field(None, gt=0, le=120)
    max_invalid: int | None = Field(None, ge=1, le=20)
    max_timeouts: int | None = Field(None, ge=1, le=20)
    dial0: Dial0Field | None = None
    on_invalid: DestinationField | None = None
    on_timeout: DestinationField | None = None
    on_exhausted: DestinationField | None = None
    invalid_message: Name | None = None
    timeout_message: Name | None = None
    schedule: Name | None = None
    after_hours: AfterHours | None = None


class AccessPoint(_Model):
    type: Literal["phone-number"]
    numbers: list[Annotated[str, Field(pattern=r"^\+?[0-9]{2,20}$")]] = Field(min_length=1)
    menu: Name
    language: Language | None = None
    name: str | None = None


class Routing(_Model):
    unknown_number: DestinationField = Destination("hangup")


class ConfigModel(_Model):
    engine: EngineSettings
    schedules: dict[Name, ScheduleModel] = {}
    messages: dict[Name, dict[Language, MediaList]] = {}
    menu_defaults: MenuDefaults = MenuDefaults()
    menus: dict[Name, Menu] = {}
    access_points: list[AccessPoint] = []
    routing: Routing = Routing()
