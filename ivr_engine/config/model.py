"""The shape of the YAML, as pydantic v2 models (frozen, unknown keys refused).

Field-level rules live here; rules that need the whole document (does that menu exist? is
that sub-menu shared by two parents?) live in ``validate.py``.  The shared field types live in
``fields.py``, the mobile-app and user models in ``model_apps.py``; both are re-exported here.
"""

# ruff: noqa: RUF012 - pydantic fields; ruff cannot see that _Model (fields.py) is a BaseModel

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)

from ..ivr.destinations import Destination, Dial0
from ..ivr.schedule import TimeRange, parse_dates, parse_days, parse_range
from .fields import (  # noqa: F401 - re-exported: the shared field types
    E164,
    CallerPattern,
    DestinationField,
    Dial0Field,
    Language,
    MediaList,
    Name,
    Number,
    Secret,
    Timezone,
    _blank_secret_is_unset,
    _Model,
)
from .model_api import (  # noqa: F401 - re-exported: model.ApiSettings etc. stay importable
    ApiRateLimits,
    ApiSettings,
    ConnectionLimits,
    RateLimit,
)
from .model_livedata import DisplayText, OptionLabel
from .model_apps import (  # noqa: F401 - re-exported: model.App etc. stay importable
    ApnsCredentials,
    App,
    AppFallback,
    BlockOutside,
    FcmCredentials,
    OfflineCodes,
    PushCredentials,
    SmsLinks,
    TokenGuessing,
    User,
    UserAssertion,
    UserDirectorySettings,
    WakeupOverride,
    WakeupSettings,
)
from .model_callbacks import CallbackSettings
from .model_lifecycle import LifecycleSettings
from .model_texts import InAppTexts
from .model_nodes import AmiSettings, AriSettings, NodeSettings  # noqa: F401 - re-exported
from .model_registrar import RegistrarSettings
from .model_webhooks import ContextWebhook, Webhook
from .model_sms import SmsSettings


# --------------------------------------------------------------------------- engine


class DialplanSettings(_Model):
    """Dialplan contexts the engine hands calls to (see dialplan/extensions_ivr_engine.conf)."""

    queue: Name = "ivr-engine-queue"
    voicemail: Name = "ivr-engine-voicemail"
    endpoint: Name = "ivr-engine-endpoint"
    fallback: Name = "ivr-engine-fallback"  # message + default queue when the engine cannot
    endpoint_ring_seconds: int = Field(30, ge=1, le=600)


class WatchdogSettings(_Model):
    """Asterisk's own rescue of callers if the engine dies and does not come back: the
    engine keeps TIMEOUT(absolute) armed on each caller in Stasis; when it runs out the
    dialplan's ``T`` extension re-enters the engine (``resume``) or, with no engine, the
    fallback. A caller waiting in a menu is rescued ``timeout + grace_seconds`` after the
    wait began; one hearing a prompt ``grace_seconds`` after its end when its length is known
    (its sound files under ``sounds_dir``, or an earlier play of it), else within
    ``prompt_seconds``."""

    enabled: bool = True
    grace_seconds: float = Field(3.0, ge=1, le=60)
    prompt_seconds: float = Field(120.0, ge=10, le=3600,
                                  description="above the longest prompt you play")
    sounds_dir: str | None = Field(
        "/usr/share/asterisk/sounds", description="Asterisk's sounds directory (a prompt's "
        "length is read from its files); null: lengths are learned from plays only")
    sounds_root: str | None = Field(
        None, description="where the engine finds Asterisk's `/` when it runs outside "
        "Asterisk's filesystem (a chroot, a mounted container root); links are followed "
        "inside it")


class CallRecordSettings(_Model):
    """The call context behind GET /v1/calls/<id> is kept in the database this long after
    the call's last change, then deleted (checked at start and every hour)."""

    retention_days: float = Field(30, gt=0, le=3650)


class DatabaseSettings(_Model):
    """How long anyone waits on the database. ``call_deadline_seconds``: every query a caller
    waits for (an app token, a callback, a user's devices); past it the caller goes to the
    dialplan fallback. ``statement_timeout_seconds``: any query of the engine (PostgreSQL:
    asyncpg's command_timeout). ``busy_timeout_seconds``: SQLite (WAL mode) lets a writer
    wait this long for another writer's lock before failing."""

    call_deadline_seconds: float = Field(2.0, gt=0, le=30)
    statement_timeout_seconds: float = Field(30.0, ge=1, le=3600)
    busy_timeout_seconds: float = Field(5.0, ge=0, le=300)


class SupervisorSettings(_Model):
    """Background loops (SMS lanes, sweepers, monitors, webhook, call records): a failed one
    is restarted after a backoff doubling from ``restart_backoff_seconds`` up to
    ``restart_backoff_max_seconds``; ``not_ready_after_failures`` failures within
    ``failure_window_seconds`` make /readyz name it, until it has run ``stable_seconds``."""

    restart_backoff_seconds: float = Field(1.0, gt=0, le=300)
    restart_backoff_max_seconds: float = Field(60.0, gt=0, le=3600)
    not_ready_after_failures: int = Field(5, ge=1, le=10_000)
    failure_window_seconds: float = Field(300.0, gt=0, le=86_400)
    stable_seconds: float = Field(30.0, gt=0, le=86_400)

    @field_validator("restart_backoff_max_seconds")
    @classmethod
    def _max(cls, v: float, info: ValidationInfo) -> float:
        first = info.data.get("restart_backoff_seconds")
        if first is not None and v < first:
            raise ValueError(f"must be at least restart_backoff_seconds ({first:g})")
        return v


class EngineSettings(_Model):
    # one Asterisk: ``ari`` (+ ``ami``), the shorthand; several: ``nodes`` (model_nodes.py)
    ari: AriSettings | None = None
    ami: AmiSettings | None = None
    nodes: tuple[NodeSettings, ...] = ()
    registrar: RegistrarSettings = RegistrarSettings()  # where apps register (model_registrar.py)
    # this engine among the engines on one database (call_records.engine, the engines
    # table); unset: its nodes' names joined by "+" (docs/cluster.md)
    name: Name | None = None
    database_url: str = "sqlite:///ivr-engine.db"
    database: DatabaseSettings = DatabaseSettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    call_records: CallRecordSettings = CallRecordSettings()
    api: ApiSettings = ApiSettings()
    default_language: Language = "en"
    timezone: Timezone = "UTC"
    dialplan: DialplanSettings = DialplanSettings()
    watchdog: WatchdogSettings = WatchdogSettings()


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
    voicemail_message: Name | None = None  # played before the caller reaches a voicemail box


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
    label: DisplayText = {}  # display text per language (apps rendering the menu)
    description: DisplayText = {}
    option_labels: dict[OptionKey, OptionLabel] = {}


# --------------------------------------------------------------------------- access points


class PhoneNumberAccessPoint(_Model):
    """The dialled number (DID) enters a top-level menu."""

    type: Literal["phone-number"]
    numbers: list[Number] = Field(min_length=1)
    menu: Name
    language: Language | None = None
    name: str | None = None


class UserSegmentAccessPoint(_Model):
    """Callers whose number matches a pattern or a named list, or verified users of an app,
    enter a top-level menu.

    Evaluated before phone-number and mobile-app access points, in file order. Numbers can
    be spoofed; ``users`` match only a user the app's backend proved (a session's plan, an
    offline code), on that app's calls.
    """

    type: Literal["user-segment"]
    callers: list[CallerPattern] = []  # exact numbers, or prefixes ending in *
    caller_list: Name | None = Field(None, alias="list")  # a list under caller_lists
    users: list[str] = Field([], max_length=10_000)  # verified users of `app`
    app: Name | None = None  # whose users `users` are (required with users)
    numbers: list[Number] = []  # dialled numbers it applies to (empty: every number)
    menu: Name
    language: Language | None = None
    name: str | None = None


class MobileAppAccessPoint(_Model):
    """A mobile app's own entry: its VoIP calls and its PSTN fallback calls land here."""

    type: Literal["mobile-app"]
    app: Name
    menu: Name
    surface: Literal["ivr", "in-app"] = "ivr"
    name: str | None = None
    visual: bool = False  # the app renders this tree: `check` warns about missing labels


AccessPoint = Annotated[
    PhoneNumberAccessPoint | UserSegmentAccessPoint | MobileAppAccessPoint,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- document


class Checks(_Model):
    cross_app: Literal["error", "warning"] = "error"


class Routing(_Model):
    unknown_number: DestinationField = Destination("hangup")


class ConfigModel(_Model):
    engine: EngineSettings
    schedules: dict[Name, ScheduleModel] = {}
    messages: dict[Name, dict[Language, MediaList]] = {}
    texts: InAppTexts = InAppTexts()  # in-app texts per language (apps.<app>.texts override)
    menu_defaults: MenuDefaults = MenuDefaults()
    menus: dict[Name, Menu] = {}
    access_points: list[AccessPoint] = []
    routing: Routing = Routing()
    caller_lists: dict[Name, list[Number]] = {}
    apps: dict[Name, App] = {}
    checks: Checks = Checks()
    context_webhook: ContextWebhook | None = None
    webhooks: list[Webhook] = Field([], max_length=20)
    callbacks: CallbackSettings = CallbackSettings()
    wakeup: WakeupSettings = WakeupSettings()
    users: dict[Name, User] = {}
    user_directory: UserDirectorySettings = UserDirectorySettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    sms: SmsSettings = SmsSettings()
