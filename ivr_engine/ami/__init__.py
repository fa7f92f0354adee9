"""Asterisk Manager Interface through panoramisk, for what ARI cannot do.

ARI only controls channels inside Stasis. Once the engine has handed a caller to a queue or
an endpoint, moving that caller again (an agent's transfer) takes AMI's ``Redirect``.

``AmiClient.run()`` owns panoramisk's ``Manager`` for the engine's lifetime: run it in the
engine's TaskGroup; cancelling it closes the connection without panoramisk's reconnect timer
firing later. The login secret never reaches a log: panoramisk logs through a filter that
redacts it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable

from panoramisk import Manager

from .. import metrics

log = logging.getLogger("ivr_engine.ami")


class AmiError(Exception):
    pass


class _Redact(logging.Filter):
    def __init__(self, secret: str):
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secret:
            msg = record.getMessage()
            if self._secret in msg:
                record.msg = msg.replace(self._secret, "***")
                record.args = ()
        return True


class _Manager(Manager):
    """panoramisk's Manager that stops reconnecting once closed."""

    closing = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:
            self._connected = False
            return
        super().connection_lost(exc)

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self.closing:
            return None
        return super().connect(*args, **kwargs)


class AmiClient:
    def __init__(self, host: str, port: int, username: str, secret: str):
        self.host, self.port, self.username = host, port, username
        self._secret = secret
        self._manager: _Manager | None = None
        self._ready = asyncio.Event()
        self._logins = 0
        self._events = "off"  # event classes the login asks for (listen() adds them)
        self._handlers: list[tuple[str, Callable[[Any, Any], None]]] = []
        self._login_hooks: list[Callable[[], None]] = []

    def listen(self, classes: str, patterns: Iterable[str], handler: Callable[[Any, Any], None],
               on_login: Callable[[], None]) -> None:
        """Before ``run``: receive the events of ``classes`` (e.g. ``agent``) matching
        ``patterns`` in ``handler(manager, message)`` (synchronous), and call ``on_login``
        after every (re)login (to resync what was missed)."""
        self._events = classes if self._events == "off" else f"{self._events},{classes}"
        self._handlers += [(p, handler) for p in patterns]
        self._login_hooks.append(on_login)

    async def event_list(self, action: dict[str, Any], timeout: float = 10.0) -> list[Any]:
        """An action answered by a list of events (e.g. QueueStatus): every message."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise AmiError(f"AMI not connected to {self.host}:{self.port}") from None
        assert self._manager is not None
        resp = await asyncio.wait_for(self._manager.send_action(action, as_list=True), timeout)
        return list(resp) if isinstance(resp, list) else [resp]

    async def run(self) -> None:
        plog = logging.getLogger("ivr_engine.ami.panoramisk")
        plog.addFilter(_Redact(self._secret))
        m = _Manager(loop=asyncio.get_running_loop(), host=self.host, port=self.port,
                     username=self.username, secret=self._secret, events=self._events, log=plog,
                     ping_delay=10, ping_interval=10, reconnect_timeout=2,
                     on_login=self._on_login, on_disconnect=self._on_disconnect)
        self._manager = m
        for pattern, handler in self._handlers:
            m.register_event(pattern, handler)
        m.connect()
        try:
            await asyncio.Event().wait()
        finally:
            m.closing = True
            self._ready.clear()
            m.close()

    def _on_login(self, manager: Manager) -> None:
        log.info("AMI logged in at %s:%d", self.host, self.port)
        if self._logins:
            metrics.RECONNECTS.labels("ami").inc()
        self._logins += 1
        self._ready.set()
        for hook in self._login_hooks:
            hook()

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def _on_disconnect(self, manager: Manager, exc: Exception | None) -> None:
        self._ready.clear()
        log.warning("AMI connection lost (%s); reconnecting", exc)

    async def action(self, action: dict[str, Any], timeout: float = 5.0) -> Any:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise AmiError(f"AMI not connected to {self.host}:{self.port}") from None
        assert self._manager is not None
        # as_list=False: panoramisk would wait forever for more after "Added interface to queue"
        resp = await asyncio.wait_for(self._manager.send_action(action, as_list=False), timeout)
        if not getattr(resp, "success", False):
            raise AmiError(f"{action.get('Action')}: {getattr(resp, 'message', resp)}")
        return resp

    async def redirect(self, channel: str, context: str, variables: dict[str, str],
                       exten: str = "s", priority: int = 1) -> None:
        """Set channel variables, then send the channel to ``context,exten,priority``."""
        for name, value in variables.items():
            await self.action({"Action": "Setvar", "Channel": channel, "Variable": name,
                               "Value": value})
        await self.action({"Action": "Redirect", "Channel": channel, "Context": context,
                           "Exten": exten, "Priority": priority})
