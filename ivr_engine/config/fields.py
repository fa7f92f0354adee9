"""Field types and validators shared by the configuration models (``model.py``,
``model_apps.py``): the frozen base model, names, languages, timezones, destinations, sound
lists, phone-number patterns and the blank-secret rule.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from ..ivr.destinations import Destination, Dial0, parse_destination, parse_dial0
from ..ivr.messages import is_language, normalize_media


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


DestinationField = Annotated[Destination, BeforeValidator(_dest)]
Dial0Field = Annotated[Dial0, BeforeValidator(_dial0)]
Language = Annotated[str, AfterValidator(_language)]
Timezone = Annotated[str, AfterValidator(_timezone)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")]


def _blank_secret_is_unset(v: object) -> object:
    """``${VAR:-}`` yields an empty string: that means "not configured", never "the empty
    secret" (which an empty ``Bearer`` would match). Surrounding whitespace cannot travel in a
    header, so it is dropped."""
    if isinstance(v, SecretStr):
        v = v.get_secret_value()
    if isinstance(v, str):
        return v.strip() or None
    return v


MIN_SECRET = 32


def _long_enough(v: SecretStr | None) -> SecretStr | None:
    """A secret the API compares against must not be guessable: at least 32 characters
    (``openssl rand -hex 32`` gives 64)."""
    if v is not None and len(v.get_secret_value()) < MIN_SECRET:
        raise ValueError(f"a secret of {len(v.get_secret_value())} characters is too short to "
                         f"resist guessing: use at least {MIN_SECRET} (e.g. the output of "
                         "`openssl rand -hex 32`)")
    return v


# A credential the engine checks (api keys, the admin token, callback tokens, signing
# secrets): empty means not configured (the door is shut), shorter than 32 is refused.
Secret = Annotated[SecretStr | None, BeforeValidator(_blank_secret_is_unset),
                   AfterValidator(_long_enough)]


def _media_list(v: object) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError("expected a sound reference or a non-empty list of them")
    return tuple(normalize_media(x) for x in v)


MediaList = Annotated[tuple[str, ...], BeforeValidator(_media_list)]


# Phone numbers: dialled / listed numbers, E.164 numbers, caller patterns (prefix*).
Number = Annotated[str, Field(pattern=r"^\+?[0-9]{2,20}$")]
E164 = Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")]
CallerPattern = Annotated[str, Field(pattern=r"^\+?[0-9]{1,20}\*?$")]
