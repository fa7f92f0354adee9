"""Whole-document rules of the ``callbacks:`` section, and its compiled form (one
:class:`~ivr_engine.callbacks.policy.QueuePolicy` per queue the engine places)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable
from zoneinfo import ZoneInfo

from ..callbacks.policy import QueuePolicy, window_schedule
from ..ivr.schedule import Schedule
from .yamlsrc import Issue, Source

if TYPE_CHECKING:
    from .model import ConfigModel


def _callback_queues(model: ConfigModel) -> set[str]:
    """The queues a ``callback:`` destination of the document names."""
    out = set()
    dests = [model.menu_defaults.on_exhausted, model.routing.unknown_number]
    for menu in model.menus.values():
        dests += list(menu.options.values())
        dests += [d for d in (menu.on_invalid, menu.on_timeout, menu.on_exhausted) if d]
        if menu.after_hours is not None:
            dests.append(menu.after_hours.destination)
    dests += [u.no_answer for u in model.users.values() if u.no_answer is not None]
    for d in dests:
        if d.kind == "callback":
            out.add(d.target)
    return out


def check_callbacks(model: ConfigModel, src: Source) -> list[Issue]:
    issues: list[Issue] = []
    cb = model.callbacks

    def err(path: tuple, msg: str, severity: str = "error") -> None:
        issues.append(src.issue(("callbacks",) + path, msg, severity))

    if not cb.queues:
        return issues
    if cb.dial is None:
        err(("dial",), "required when callbacks.queues lists queues: the Dial() string that "
            "reaches a customer, e.g. PJSIP/{number}@carrier")
    used = _callback_queues(model)
    for name, q in cb.queues.items():
        if q.schedule is not None and q.schedule not in model.schedules:
            err(("queues", name, "schedule"), f"schedule {q.schedule!r} is not defined under "
                "schedules")
        if q.window is not None:
            try:
                window_schedule(name, q.window, ZoneInfo("UTC"))
            except ValueError as exc:
                err(("queues", name, "window"), str(exc))
        if name not in used:
            err(("queues", name), f"no callback:{name} destination in the tree: nothing will "
                "be placed for this queue (requests of other queues wait for API clients)",
                "warning")
    return issues


def compile_callbacks(model: ConfigModel,
                      schedule: Callable[[str, str], Schedule]) -> dict[str, QueuePolicy]:
    """The placer's policy per queue; only call on a model that passed ``check``.
    ``schedule(name, default_timezone)`` compiles a schedule of ``schedules:``."""
    out = {}
    for name, q in model.callbacks.queues.items():
        tz = ZoneInfo(q.timezone or model.engine.timezone)
        if q.schedule is not None:
            window = schedule(q.schedule, q.timezone or model.engine.timezone)
        elif q.window is not None:
            window = window_schedule(name, q.window, tz)
        else:
            window = None
        out[name] = QueuePolicy(
            queue=name, window=window, attempts=q.attempts, retry_seconds=q.retry_seconds,
            expire_after_seconds=q.expire_after_seconds, ring_seconds=q.ring_seconds,
            wait_seconds=q.wait_seconds, max_waiting=q.max_waiting, caller_id=q.caller_id)
    return out
