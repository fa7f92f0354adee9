"""An inactive app's SDK requests are refused (call plans, menus, queue status): ``409`` with
a ``reason`` member (``switched-off``, ``no-in-app-access-point``, ``no-ivr-access-point``).

409, not 403: the app's credential is good and the request well-formed; the app's state in
the configuration conflicts with it, and changes when an admin switches it on or adds its
access point (``routing.entry.AppEntry.inactive_reason`` decides).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from ..api.problems import PROBLEM, Problem
from ..api.routes import PROBLEM_JSON, Reply
from ..routing.entry import AppEntry
from .schemas import AppInactiveProblem

INACTIVE = Reply(AppInactiveProblem, "the app is inactive: `reason` says why (its `active` "
                 "switch is off, or it lacks a mobile-app access point in the in-app or the "
                 "IVR structure)", media_type=PROBLEM_JSON)


class ReasonProblem(Problem):
    """A problem document with a ``reason`` member, as ``model`` describes it."""

    def __init__(self, status: int, title: str, detail: str, reason: str,
                 model: type[BaseModel] = AppInactiveProblem):
        super().__init__(status, title, detail)
        self.reason, self.model = reason, model

    def response(self, request: web.Request) -> web.Response:
        doc = self.model(title=self.title, status=self.status, detail=self.detail,
                         instance=request.path, reason=self.reason)
        return web.Response(status=self.status, content_type=PROBLEM,
                            text=json.dumps(doc.model_dump(exclude_none=True)))


def active_app(cfg: Any, name: str | None) -> AppEntry:
    """The app's routing entry; :class:`ReasonProblem` (409) when it is inactive."""
    entry = cfg.routing.apps.get(name) if name is not None else None
    if entry is None:  # the door let its key in: the config was reloaded without the app
        raise Problem(404, "Unknown app", f"app {name!r} is not configured")
    if not entry.active:
        assert entry.inactive_reason is not None
        raise ReasonProblem(409, "App inactive", entry.inactive_detail(), entry.inactive_reason)
    return entry
