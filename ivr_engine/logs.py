"""Log lines: text or JSON, each line of a call carrying the call's channel id.

A call's session sets :data:`CHANNEL` in its own task; every task it starts inherits the
context (asyncio copies it), so a push sender or a timer logging on the call's behalf carries
the channel id too, without every log call passing it. ``--log-format json`` writes one JSON
object per line (``time``, ``level``, ``logger``, ``message``, ``channel`` when in a call,
``exception`` when there is one) for a log shipper.

Secrets never reach a log: the code never formats a password, key or token (push tokens
appear as a short hash, see push/), and AMI's library logs through a redacting filter.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

CHANNEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("ivr_channel",
                                                                     default=None)
FORMATS = ("text", "json")


class _CallFilter(logging.Filter):
    """Adds ``record.channel`` (the call's channel id, or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.channel = CHANNEL.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        channel = getattr(record, "channel", None)
        if channel:
            head, _, rest = line.partition(f" {record.name} ")
            line = f"{head} {record.name} [{channel}] {rest}"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
            .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        channel = getattr(record, "channel", None)
        if channel:
            out["channel"] = channel
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(level: int, fmt: str = "text") -> None:
    """Log to stderr at ``level`` in ``fmt`` (text or json)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_CallFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
