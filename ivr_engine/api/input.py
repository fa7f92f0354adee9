"""The one door request bodies come through: JSON objects, bounded and clean.

Everything after this layer may assume a ``dict`` of plain JSON values whose strings are
valid Unicode (SQLite and every encoder downstream refuse lone surrogates) without NUL
(PostgreSQL ``text`` and ``jsonb`` cannot hold U+0000), whose numbers are
finite and short (``float(10**400)`` overflows, ``int()`` refuses 4 300+ digits), and whose
nesting is shallow (``json.loads`` recurses: 30 000 brackets end in RecursionError). The
depth is measured by a linear scan *before* parsing, so the parser never recurses deeply.

Path parameters get the same rule as query values (:func:`check_path`): printable text, so
no NUL, control character or lone surrogate reaches a handler, a log line or the database.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .problems import Problem, invalid
from .schemas import FieldError

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_INT_DIGITS = 32

# a JSON string (its closing quote optional, so an unterminated one is consumed once and the
# scan stays linear) or a bracket; brackets inside strings are skipped with the string
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # what no database column can hold


def _malformed(detail: str) -> Problem:
    return Problem(400, "Malformed JSON", detail)


def _too_large() -> Problem:
    return Problem(413, "Payload Too Large",
                   f"the request body is limited to {MAX_BODY_BYTES} bytes")


def is_text(value: object, limit: int) -> bool:
    """A printable string of at most ``limit`` characters (ids, versions, phone numbers)."""
    return isinstance(value, str) and len(value) <= limit and value.isprintable()


# A number JSON can write but the API cannot take (NaN, Infinity, 1e400, a 400-digit
# integer): the parser leaves this marker in its place, so the error can name the field.
_UNFIT = object()


def _parse_int(text: str) -> int | object:
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else _UNFIT


def _parse_float(text: str) -> float | object:
    value = float(text)
    return value if math.isfinite(value) else _UNFIT


def check_content_type(header: str | None) -> None:
    """``application/json`` with no charset or ``charset=utf-8`` (RFC 8259: JSON is UTF-8)."""
    mime, *params = (header or "").split(";")
    if mime.strip().lower() != "application/json":
        raise Problem(415, "Unsupported Media Type",
                      "the body must be JSON sent with Content-Type: application/json")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise Problem(415, "Unsupported Media Type",
                          "JSON bodies are UTF-8: charset must be utf-8 or absent")


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Does the JSON text nest deeper than ``limit``? One linear pass, no recursion: safe on
    text ``json.loads`` would die on."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH (400), before parsing."""
    if too_deep(text):
        raise _malformed(f"the JSON nests deeper than {MAX_DEPTH} levels")


def _field(path: tuple[str | int, ...]) -> str | None:
    """``("custom_data", "tags", 1)`` → ``custom_data.tags[1]``; the body itself → None."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or None


def _unstorable(text: str) -> str:
    """Why ``text`` cannot be stored: a NUL or a lone surrogate."""
    return "contains NUL (U+0000)" if "\x00" in text else \
        "is not valid Unicode text (lone surrogate)"


def check_values(body: dict[str, Any]) -> None:
    """Refuse lone surrogates and NUL in keys and strings, and unfit numbers, naming the
    field. Iterative: the depth is already bounded, but nothing here relies on it."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if _UNSTORABLE.search(key):
                    where = _field(path)
                    raise invalid(f"a key {'in ' + where if where else 'of the body'} "
                                  f"{_unstorable(key)}", where)
                stack.append((path + (key,), item))
        elif isinstance(value, list):
            stack.extend((path + (i,), item) for i, item in enumerate(value))
        elif isinstance(value, str) and _UNSTORABLE.search(value):
            raise invalid(f"{_field(path)} {_unstorable(value)}", _field(path))
        elif value is _UNFIT:
            raise invalid(f"{_field(path)} must be a finite number with at most "
                           f"{MAX_INT_DIGITS} digits", _field(path))


def check_path(params: Mapping[str, str]) -> None:
    """The route's path parameters (percent-decoded) as printable text: a NUL, a control
    character or a lone surrogate is refused with a 422 naming the parameter (before any
    handler, log line or database sees it)."""
    for name, value in params.items():
        if not value.isprintable():
            raise invalid(f"{name}: not printable text (a control character, NUL or an "
                          "invalid escape)", name)


def parse_object(raw: bytes) -> dict[str, Any]:
    """Bytes → a clean JSON object, or a 400/422 :class:`Problem`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("the request body is not valid UTF-8") from None
    check_depth(text)
    try:
        body = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=lambda _: _UNFIT)
    except json.JSONDecodeError:
        raise _malformed("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _malformed("the request body must be a JSON object")
    check_values(body)
    return body


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's body as a clean JSON object. Size is checked first (from the declared
    length, then while reading), then the media type, then the content."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise _too_large()
    check_content_type(request.headers.get("Content-Type"))
    try:
        raw = await request.read()  # the app's client_max_size is MAX_BODY_BYTES
    except web.HTTPRequestEntityTooLarge:
        raise _too_large() from None
    return parse_object(raw)


def validate_body(model: type[M], body: dict[str, Any]) -> M:
    """A clean JSON object → the route's request model, or a 422 naming the first bad field
    (in the model's field order)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise first_problem(exc) from None


def first_problem(exc: ValidationError) -> Problem:
    err = exc.errors(include_url=False)[0]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        return invalid(str(cause), cause.field)
    where = _field(tuple(p for p in err["loc"] if isinstance(p, (str, int))))
    if isinstance(cause, ValueError):
        message = str(cause)
        if where and not message.startswith(where):
            message = f"{where}: {message}"
    elif err["type"] == "extra_forbidden":
        message = f"{where}: not a parameter of this route"
    elif err["type"] == "missing":
        message = f"{where} is required"
    else:
        message = f"{where}: {err['msg'][:1].lower()}{err['msg'][1:]}"
    return invalid(message, where)


async def read_model(request: web.Request, model: type[M]) -> M:
    """The request's body through :func:`read_json_object`, then validated as ``model``."""
    return validate_body(model, await read_json_object(request))
