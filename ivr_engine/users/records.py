"""A user as the directory keeps it, and its validation. Pure.

A database user is validated by the config's own model (``config.model_apps.User``: the
names, the ringing device, the ``no_answer`` destination, the ``wakeup`` bounds) and by the
config's own rules against the rest of the document (``config.users.user_problems``: the
ringing device's endpoints and app, the app and messages it names). What the config cannot
say alone, because it is about two users, is said here: a mobile endpoint belongs to one user
(the database's unique index; against ``users:``, :func:`yaml_endpoint_owner`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from pydantic import ValidationError

from ..config.model import ConfigModel, User
from ..config.users import WAKE_KEYS, CompiledUser, compile_user, user_problems
from ..ivr.destinations import Destination, parse_destination
from .models import DESTINATION_LENGTH, NAME_LENGTH

DEVICES = ("mobile", "uc", "uc+mobile")
APP_DEVICES = ("mobile", "uc+mobile")  # what a user may choose from the app
FIELDS = ("ringing_device", "mobile_endpoint", "uc_endpoint", "app", "no_answer")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_NAME_HINT = "letters, digits and . _ + -, starting with a letter or digit"


class UserInvalid(ValueError):
    """A user that cannot be stored: ``field`` is the key at fault (``wakeup.message``), or
    None for the user as a whole."""

    def __init__(self, field: str | None, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field, self.message = field, message


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One user, whoever defines it (slots: the engine may cache tens of thousands)."""

    name: str
    ringing_device: str = "mobile"
    mobile_endpoint: str | None = None
    uc_endpoint: str | None = None
    app: str | None = None
    no_answer: Destination | None = None
    wakeup: tuple[tuple[str, Any], ...] = ()  # the wakeup: keys set, in WAKE_KEYS order

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.wakeup)

    def compile(self, model: ConfigModel) -> CompiledUser:
        """What a call needs: the ringing plan's input and the no-answer destination."""
        return compile_user(model, self.name, ringing_device=self.ringing_device,
                            mobile_endpoint=self.mobile_endpoint, uc_endpoint=self.uc_endpoint,
                            app=self.app, no_answer=self.no_answer, wakeup=self.overrides)

    def problems(self, model: ConfigModel) -> Iterator[tuple[str | None, str]]:
        """The config's rules for a user, against ``model``: (field, message)."""
        for path, msg in user_problems(
                model, ringing_device=self.ringing_device,
                mobile_endpoint=self.mobile_endpoint, uc_endpoint=self.uc_endpoint,
                app=self.app, no_answer=self.no_answer, message=self.overrides.get("message")):
            yield (".".join(path) or None), msg

    def columns(self) -> dict[str, Any]:
        """The ``users`` row's columns (the times aside)."""
        return {"name": self.name, "ringing_device": self.ringing_device,
                "mobile_endpoint": self.mobile_endpoint, "uc_endpoint": self.uc_endpoint,
                "app": self.app, "no_answer": str(self.no_answer) if self.no_answer else None,
                "wakeup": self.overrides}

    def fields(self) -> dict[str, Any]:
        """The user as the API and the CLI show it."""
        return {"name": self.name, "ringing_device": self.ringing_device,
                "mobile_endpoint": self.mobile_endpoint, "uc_endpoint": self.uc_endpoint,
                "app": self.app,
                "no_answer": str(self.no_answer) if self.no_answer else None,
                "wakeup": self.overrides}

    def with_device(self, device: str) -> "UserRecord":
        return UserRecord(self.name, device, self.mobile_endpoint, self.uc_endpoint, self.app,
                          self.no_answer, self.wakeup)


def _wakeup(values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple((k, values[k]) for k in WAKE_KEYS if values.get(k) is not None)


def from_config(name: str, user: User) -> UserRecord:
    """A user of the config's ``users:``."""
    return UserRecord(name, user.ringing_device, user.mobile_endpoint, user.uc_endpoint,
                      user.app, user.no_answer, _wakeup(user.wakeup.model_dump()))


def from_row(row: Any) -> UserRecord:
    """A ``users`` row (validated when it was written)."""
    return UserRecord(row.name, row.ringing_device, row.mobile_endpoint, row.uc_endpoint,
                      row.app, parse_destination(row.no_answer) if row.no_answer else None,
                      _wakeup(row.wakeup or {}))


def check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise UserInvalid(field, "a user name is required")
    if len(name) > NAME_LENGTH:
        raise UserInvalid(field, f"longer than {NAME_LENGTH} characters")
    if not _NAME.fullmatch(name):
        raise UserInvalid(field, f"{name[:80]!r} is not a valid name ({_NAME_HINT})")
    return name


def _message(err: Mapping[str, Any]) -> tuple[str | None, str]:
    field = ".".join(str(p) for p in err["loc"]) or None
    kind, msg = err["type"], err["msg"]
    if kind == "string_pattern_mismatch":
        return field, f"{str(err['input'])[:80]!r} is not a valid name ({_NAME_HINT})"
    if kind == "extra_forbidden":
        return field, "not a key of a user"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return field, msg[:1].lower() + msg[1:]


def parse_user(name: str, values: Mapping[str, Any]) -> UserRecord:
    """A user from plain values (an API body, a CSV row) through the config's own model;
    UserInvalid names the first bad key."""
    check_name(name)
    try:
        user = User.model_validate(values)
    except ValidationError as exc:
        raise UserInvalid(*_message(exc.errors(include_url=False)[0])) from None
    for key in ("mobile_endpoint", "uc_endpoint", "app"):
        value = getattr(user, key)
        if value is not None and len(value) > NAME_LENGTH:
            raise UserInvalid(key, f"longer than {NAME_LENGTH} characters")
    if user.no_answer is not None and len(str(user.no_answer)) > DESTINATION_LENGTH:
        raise UserInvalid("no_answer", f"longer than {DESTINATION_LENGTH} characters")
    return from_config(name, user)


def values_of(rec: UserRecord) -> dict[str, Any]:
    """``rec`` as the plain values ``parse_user`` takes (unset keys left out)."""
    out: dict[str, Any] = {k: v for k, v in rec.columns().items()
                           if k not in ("name", "wakeup") and v is not None}
    if rec.wakeup:
        out["wakeup"] = rec.overrides
    return out


def patched(rec: UserRecord, changes: Mapping[str, Any]) -> UserRecord:
    """``rec`` with ``changes`` (JSON merge patch, RFC 7396: a key given replaces, null
    removes; ``wakeup`` is merged key by key), validated again."""
    values = values_of(rec)
    for key, value in changes.items():
        if key == "wakeup" and isinstance(value, Mapping):
            wake = dict(values.get("wakeup", {}))
            wake.update(value)
            value = {k: v for k, v in wake.items() if v is not None}
        if value is None or value == {}:
            values.pop(key, None)
        else:
            values[key] = value
    return parse_user(rec.name, values)


def check_against(model: ConfigModel, rec: UserRecord,
                  endpoints: Mapping[str, str] | None = None) -> None:
    """The config's rules (UserInvalid for the first problem), and no mobile endpoint of a
    user under ``users:`` (other than one of the same name, which this one replaces).
    ``endpoints``: :func:`yaml_endpoints` of ``model``, when checking many users."""
    for field, msg in rec.problems(model):
        raise UserInvalid(field, msg)
    if endpoints is None:
        endpoints = yaml_endpoints(model)
    owner = endpoints.get(rec.mobile_endpoint or "")
    if owner is not None and owner != rec.name:
        raise UserInvalid("mobile_endpoint", f"endpoint {rec.mobile_endpoint!r} is the mobile "
                          f"endpoint of user {owner!r} under users: in the config file")


def yaml_endpoints(model: ConfigModel) -> dict[str, str]:
    """The mobile endpoints of the users under ``users:``: endpoint → user."""
    return {u.mobile_endpoint: name for name, u in model.users.items() if u.mobile_endpoint}
