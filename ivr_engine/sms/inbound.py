"""Inbound SMS as each provider posts it, opt-out keywords, and which sends a reply answers.
Pure: a request's body in, messages out.

    twilio   form (or a GET's query): MessageSid, From (E.164), To, Body, NumSegments, …
             (Twilio reassembles long messages)
    vonage   SMS API, GET query, form or JSON: messageId, msisdn (international digits), to,
             text, type (text, unicode, binary), keyword, message-timestamp; a long message
             comes in parts, each with concat=true, concat-ref, concat-total, concat-part
    infobip  JSON {"results": [{messageId, from, to, text, cleanText, keyword, receivedAt,
             smsCount, …}]} (Infobip reassembles long messages)
    url-*    a form, a flat JSON object or a GET's query; field names from the provider's
             ``inbound_fields`` (default from, to, text, id)

A number is kept in E.164 when it reads as one (Vonage's and Infobip's international digits
get their ``+``; a url-* gateway's per ``inbound_numbers``), else as sent (a short code of
fewer than 7 digits, an alphanumeric sender): those are stored but never put on the
do-not-contact list nor linked to a send.
Ids and numbers are short printable text (422 otherwise); a text keeps its line breaks, a NUL
(no database stores it) or a lone surrogate becomes U+FFFD.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..config.model_sms import INBOUND_FIELDS
from .numbers import NumberError, to_e164
from .reports import ReportError, report_fields

MAX_TEXT = 10_000  # characters: ten times Twilio's 1 600, far below the 64 KiB body
MAX_RESULTS = 1000  # messages in one Infobip post
PUNCTUATION = ".,;:!?¡¿\"'()[]"
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MIN_DIGITS = 7  # fewer: a short code (3 to 6 digits), kept as sent
SEPARATORS = str.maketrans("", "", " -().")


class InboundError(ValueError):
    """Not an inbound message this provider sends: a 422 with the reason."""


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a long Vonage message: ``ref`` is the sender's reference (reused over
    time), ``total`` parts, this one's ``number`` (1-based)."""

    ref: str
    total: int
    number: int


@dataclass(frozen=True, slots=True)
class Received:
    message_id: str
    sender: str  # E.164 when it reads as a number, else as sent
    recipient: str
    text: str
    part: Part | None = None

    @property
    def e164(self) -> bool:
        """The sender reads as a phone number (do-not-contact, replies: E.164 only)."""
        return E164.fullmatch(self.sender) is not None


@dataclass(frozen=True, slots=True)
class Stop:
    word: str  # as configured
    language: str


# ---------------------------------------------------------------- fields

def _digits(text: str) -> str | None:
    """The digits of a phone number as people write it (``+1 500 555-0006``), or None."""
    digits = text.lstrip("+").translate(SEPARATORS)
    return digits if digits.isdigit() and digits.isascii() else None


def _short(value: Any, name: str, limit: int = 128) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InboundError(f"{name} is missing or not a short string")
    value = value.strip()
    if not value.isprintable():
        raise InboundError(f"{name} is not printable text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InboundError(f"{name} is not valid Unicode text") from None
    return value


def clean_text(value: Any, name: str = "text") -> str:
    """A message's text: line breaks kept; NUL and lone surrogates replaced."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InboundError(f"{name} is not a string")
    if len(value) > MAX_TEXT:
        raise InboundError(f"{name} is longer than {MAX_TEXT} characters")
    value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value.replace("\x00", "\ufffd")


def number(value: Any, name: str, *, international: bool, region: str | None) -> str:
    """E.164 when ``value`` reads as a phone number, else ``value`` as sent (short text).
    ``international``: digits without ``+`` are an international number (Vonage, Infobip);
    otherwise they are read in ``region``."""
    text = _short(value, name, 64)
    digits = _digits(text)
    if digits is None or len(digits) < MIN_DIGITS:
        return text  # alphanumeric, a channel address, a short code: kept as sent
    try:
        return to_e164("+" + digits if international or text.startswith("+") else text,
                       None if international else region)
    except NumberError:
        return text  # a short code, a number of no country


# ---------------------------------------------------------------- per provider

def parse_inbound(spec: Any, content_type: str, body: bytes, query: Mapping[str, str],
                  region: str | None) -> list[Received]:
    """The messages in one request of provider ``spec``; InboundError when it is not what
    that provider sends."""
    try:
        data = report_fields(content_type, body, query)
    except ReportError as exc:
        raise InboundError(str(exc)) from None
    kind = spec.type
    if kind == "twilio":
        return [Received(_short(data.get("MessageSid") or data.get("SmsSid"), "MessageSid"),
                         number(data.get("From"), "From", international=True, region=None),
                         number(data.get("To"), "To", international=True, region=None),
                         clean_text(data.get("Body"), "Body"))]
    if kind == "vonage":
        return [_vonage(data)]
    if kind == "infobip":
        return _infobip(data)
    names = {**INBOUND_FIELDS, **spec.inbound_fields}
    intl = spec.inbound_numbers == "international"
    given = data.get(names["id"])
    return [Received(_short(given, names["id"]) if given not in (None, "")
                     else "engine-" + uuid.uuid4().hex,  # the gateway sends no id
                     number(data.get(names["from"]), names["from"], international=intl,
                            region=region),
                     number(data.get(names["to"]), names["to"], international=intl,
                            region=region),
                     clean_text(data.get(names["text"]), names["text"]))]


def _vonage(data: Mapping[str, Any]) -> Received:
    part = None
    if str(data.get("concat", "")).lower() == "true":
        try:
            total, at = int(str(data.get("concat-total"))), int(str(data.get("concat-part")))
        except ValueError:
            raise InboundError("concat-total and concat-part must be numbers") from None
        if not 1 <= at <= total <= 255:
            raise InboundError("concat-part must be between 1 and concat-total (at most 255)")
        part = Part(_short(data.get("concat-ref"), "concat-ref", 32), total, at)
    text = data.get("text") if data.get("type", "text") in ("text", "unicode") else ""
    return Received(_short(data.get("messageId"), "messageId"),
                    number(data.get("msisdn"), "msisdn", international=True, region=None),
                    number(data.get("to"), "to", international=True, region=None),
                    clean_text(text), part if part is not None and part.total > 1 else None)


def _infobip(data: Mapping[str, Any]) -> list[Received]:
    results = data.get("results")
    if not isinstance(results, list) or not results:
        raise InboundError("results is missing or empty")
    if len(results) > MAX_RESULTS:
        raise InboundError(f"more than {MAX_RESULTS} results in one request")
    out = []
    for r in results:
        if not isinstance(r, dict):
            raise InboundError("each result is an object with messageId, from, to and text")
        out.append(Received(_short(r.get("messageId"), "messageId"),
                            number(r.get("from"), "from", international=True, region=None),
                            number(r.get("to"), "to", international=True, region=None),
                            clean_text(r.get("text"))))
    return out


def assemble(parts: Iterable[tuple[int, str]]) -> str:
    """A long message's text from its (part number, text) pairs."""
    return "".join(text for _, text in sorted(parts))


# ---------------------------------------------------------------- opt-out keywords

def fold(word: str) -> str:
    """Case and accents ignored: ``Arrêt`` and ``ARRET`` are one word."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def first_word(text: str) -> str:
    words = text.split(maxsplit=1)
    return words[0].strip(PUNCTUATION) if words else ""


def stop_word(text: str, words: Mapping[str, Iterable[str]]) -> Stop | None:
    """The opt-out keyword ``text`` starts with (its first word, trimmed, punctuation around
    it dropped, case and accents ignored), from ``words`` (language → keywords)."""
    first = fold(first_word(text))
    if not first:
        return None
    for language, keywords in words.items():
        for keyword in keywords:
            if fold(keyword) == first:
                return Stop(keyword, language)
    return None


# ---------------------------------------------------------------- replies

def _as_number(value: str | None, region: str | None) -> str | None:
    digits = _digits(value or "")
    if digits is None or len(digits) < MIN_DIGITS:
        return None
    try:
        return to_e164(value, region)
    except NumberError:
        return None


def reply_providers(sms: Any, receiver: str, recipient: str) -> set[str]:
    """The providers whose sends a message to ``recipient`` (our number) answers: those whose
    ``sender`` is that number, and the provider that received it when its own sender is not
    a number (unset or alphanumeric: the account's number is not in the config)."""
    region = sms.default_region
    to = _as_number(recipient, region)
    out = {p.name for p in sms.providers
           if to is not None and _as_number(p.sender, region) == to}
    spec = next((p for p in sms.providers if p.name == receiver), None)
    if spec is not None and _as_number(spec.sender, region) is None:
        out.add(receiver)
    return out
