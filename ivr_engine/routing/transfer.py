"""Transfer rules. Pure.

A call keeps the structure it entered (an app's tree for app calls, the access point's tree
otherwise) for its whole life: every transfer, including follow-on ones by agents, is checked
against that origin, not against where the call is now.
- to a queue: only a queue used somewhere in the origin structure;
- to an endpoint (an agent): anywhere.
"""

from __future__ import annotations

from typing import Mapping

from ..ivr.destinations import Destination

TRANSFER_KINDS = ("queue", "endpoint")


class TransferRefused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def check_transfer(queues_by_root: Mapping[str, frozenset[str]], root_menu: str,
                   app: str | None, dest: Destination) -> None:
    if dest.kind not in TRANSFER_KINDS:
        raise TransferRefused(422, f"a call can be transferred to queue:<name> or "
                                   f"endpoint:<name>, not {dest.kind}")
    if dest.kind == "endpoint":
        return
    allowed = queues_by_root.get(root_menu, frozenset())
    if dest.target not in allowed:
        owner = f"app {app!r}'s tree (menu {root_menu!r})" if app else f"menu {root_menu!r}'s tree"
        listed = ", ".join(sorted(allowed)) or "none"
        raise TransferRefused(403, f"queue {dest.target!r} is outside {owner}, where the call "
                                   f"entered; queues allowed: {listed}")
