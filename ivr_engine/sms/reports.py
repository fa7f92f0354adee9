"""Delivery reports (status callbacks) as each provider sends them. Pure: body in, updates
out. Each update names the row by the provider's message id or by our idempotency key.

    twilio   form: MessageSid, MessageStatus (queued, sent, delivered, undelivered, failed)
    vonage   JSON, form or query: messageId, status (delivered, failed, …), client-ref (ours)
    infobip  JSON: {"results": [{"messageId" (ours), "status": {"groupName", "name"}}]}

The URL types send none. A JSON body is parsed only when it nests at most 32 levels (``json``
recurses: a report nested 30 000 deep would end in RecursionError); every text taken from a
report is short printable text (a NUL could not be stored by PostgreSQL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import parse_qsl

from ..api.input import MAX_DEPTH, too_deep


@dataclass(frozen=True, slots=True)
class Update:
    status: str
    message_id: str | None = None
    key: str | None = None


class ReportError(ValueError):
    pass


def report_fields(content_type: str, body: bytes, query: Mapping[str, str]) -> dict[str, Any]:
    """The report's fields: a JSON object, or the form's fields over the query's."""
    if content_type == "application/json":
        try:
            text = (body or b"null").decode("utf-8")
        except UnicodeDecodeError:
            raise ReportError("the body is not UTF-8") from None
        if too_deep(text):
            raise ReportError(f"the body nests deeper than {MAX_DEPTH} levels")
        try:
            data = json.loads(text)
        except ValueError:  # not JSON, or an integer of 4 300+ digits
            raise ReportError("the body is not JSON") from None
        if not isinstance(data, dict):
            raise ReportError("the body is not a JSON object")
        return data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ReportError("the body is not UTF-8") from None
    return {**query, **dict(parse_qsl(text))}


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 128:
        raise ReportError(f"{name} is missing or not a short string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ReportError(f"{name} is not valid Unicode text") from None
    if not value.isprintable():  # NUL, control characters: no database stores NUL
        raise ReportError(f"{name} is not printable text")
    return value


def parse_report(kind: str, content_type: str, body: bytes,
                 query: Mapping[str, str]) -> list[Update]:
    """The updates in one callback; ReportError when it is not what ``kind`` sends."""
    if kind.startswith("url-"):
        raise ReportError(f"{kind} providers send no delivery reports")
    data = report_fields(content_type, body, query)
    if kind == "twilio":
        return [Update(_text(data.get("MessageStatus"), "MessageStatus"),
                       message_id=_text(data.get("MessageSid"), "MessageSid"))]
    if kind == "vonage":
        ref = data.get("client-ref")
        return [Update(_text(data.get("status"), "status"),
                       message_id=_text(data.get("messageId"), "messageId"),
                       key=_text(ref, "client-ref") if ref else None)]
    results = data.get("results")
    if not isinstance(results, list) or not results:
        raise ReportError("results is missing or empty")
    out = []
    for r in results[:1000]:
        if not isinstance(r, dict) or not isinstance(r.get("status"), dict):
            raise ReportError("each result needs messageId and status")
        st = r["status"]
        out.append(Update(_text(st.get("groupName"), "status.groupName"),
                          key=_text(r.get("messageId"), "messageId")))
    return out
