"""ARI REST requests over the events websocket (Asterisk 22.4+, 21.9+, 20.14+).

A request is a JSON message on the websocket the events come in on::

    {"type": "RESTRequest", "request_id": "17", "method": "POST",
     "uri": "channels/<id>/play?playbackId=...", "content_type": "application/json",
     "message_body": "{\\"media\\": [...]}"}

and its answer a ``RESTResponse`` event carrying the same ``request_id``, ``status_code`` and,
for a JSON answer, ``message_body`` (the JSON text). No HTTP request is parsed on either side.

What Asterisk does with them (measured on 22.10; it matters):

- requests of one websocket are handled one after another, in the order sent, inline in the
  session's reader thread — so the engine's per-channel command order holds without waiting
  for answers;
- a request that waits for a channel's control thread (a variable set behind a playing
  prompt waits for the prompt's end) holds every request behind it: the engine's rule that
  nothing but a stop follows a play on a channel is what keeps this transport safe;
- ``RESTResponse`` is an event type like any other: an event filter that does not allow it
  swallows every answer (``AriRest.set_event_filter`` always allows it).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .errors import AriError, AriNotFound

log = logging.getLogger(__name__)

#: an answer slower than this is logged: on this transport it held every request behind it
SLOW_SECONDS = 0.5

#: Asterisk versions whose websocket takes REST requests (major: first minor that does)
_SINCE = {20: 14, 21: 9, 22: 4}


def supports_rest_over_websocket(version: str) -> bool:
    """True for an Asterisk version (``22.10.1``, ``22.4.0-rc1``) that has the feature."""
    m = re.match(r"(\d+)\.(\d+)", version or "")
    if not m:
        return False
    major, minor = int(m.group(1)), int(m.group(2))
    return major > max(_SINCE) or minor >= _SINCE.get(major, 10**6)


class WsRequests:
    """The requests waiting for their ``RESTResponse`` on one websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, timeout: float):
        self._ws = ws
        self._timeout = timeout
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future] = {}

    async def request(self, method: str, path: str,
                      params: Sequence[tuple[str, str]] | None, body: Any) -> Any:
        rid = str(next(self._ids))
        uri = path.lstrip("/")
        if params:
            uri += "?" + urlencode(params)
        msg: dict[str, Any] = {"type": "RESTRequest", "request_id": rid, "method": method,
                               "uri": uri}
        if body is not None:
            msg["content_type"] = "application/json"
            msg["message_body"] = json.dumps(body)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending[rid] = future
        sent = time.monotonic()
        try:
            await self._ws.send_str(json.dumps(msg))
            async with asyncio.timeout(self._timeout):
                answer = await future
        except TimeoutError:
            raise AriError(0, method, path, "no RESTResponse in time") from None
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise AriError(0, method, path, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._pending.pop(rid, None)
        took = time.monotonic() - sent
        if took > SLOW_SECONDS:
            log.warning("ARI %s %s answered after %.0f ms over the websocket; the requests "
                        "sent after it waited as long (a command queued behind a channel's "
                        "prompt?)", method, path.split("?")[0], took * 1000)
        return _decode(method, path, answer)

    def answered(self, data: dict[str, Any]) -> None:
        """A ``RESTResponse`` arrived (from the websocket reader)."""
        future = self._pending.get(str(data.get("request_id")))
        if future is not None and not future.done():
            future.set_result(data)

    def fail_all(self, reason: str) -> None:
        """The websocket is gone: whatever was in flight never gets its answer."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(reason))
        self._pending.clear()


def _decode(method: str, path: str, answer: dict[str, Any]) -> Any:
    status = int(answer.get("status_code") or 0)
    text = answer.get("message_body")
    data: Any = None
    if text:
        try:
            data = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            data = text
    if 200 <= status < 300:
        return data
    message = str(answer.get("reason_phrase") or "")
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("error") or message)
    cls = AriNotFound if status == 404 else AriError
    raise cls(status, method, path, message)
