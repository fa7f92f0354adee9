"""The lifecycle's refusals, as RFC 9457 problem documents (raised from any depth; the API's
middleware answers them)."""

from __future__ import annotations

import json

from aiohttp import web

from ..api.problems import PROBLEM, Problem
from ..api.routes import Reply
from .schemas import UpdateRequiredProblem

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ivr-engine", error="invalid_token"'}


class UpdateRequired(Problem):
    """403: the device's version is below a mandatory release: login, calls and call plans
    are refused until it reports a version at or above ``minimum_version``."""

    def __init__(self, *, platform: str, version: str, minimum_version: str, store_url: str):
        super().__init__(403, "Update required",
                         f"version {version} of this app on {platform} is below the mandatory "
                         f"version {minimum_version}: update it from the store")
        self.platform, self.minimum_version, self.store_url = platform, minimum_version, store_url

    def response(self, request: web.Request) -> web.Response:
        doc = UpdateRequiredProblem(
            title=self.title, status=self.status, detail=self.detail, instance=request.path,
            reason="mandatory_update", minimum_version=self.minimum_version,
            store_url=self.store_url, platform=self.platform)
        return web.Response(status=self.status, content_type=PROBLEM,
                            text=json.dumps(doc.model_dump(exclude_none=True)))


def session_ended(reason: str) -> Problem:
    """401 for a session token whose session has ended (logout, replaced, expired)."""
    return Problem(401, "Unauthorized", f"this session has ended ({reason}): log in again",
                   headers=_CHALLENGE)


UPDATE_REQUIRED = Reply(UpdateRequiredProblem, "the device's app version is below a "
                        "mandatory release: `minimum_version` and `store_url` say what to "
                        "install")
