"""Transfer rules. Pure.

A call keeps the structure it entered (an app's tree for app calls, the access point's tree
otherwise) for its whole life: every transfer, including follow-on ones by agents, is checked
against that origin, not against where the call is now.
- to a queue: only a queue used somewhere in the origin structure (for an app's call, the
  app's tree it entered: its IVR tree, or its in-app tree when it was deep-linked there);
- to an endpoint (an agent): anywhere, agents of no queue of that structure included.
``transfer_targets`` lists what ``check_transfer`` allows (``GET
/v1/calls/<id>/transfer-targets``): the same set, so the list and the check cannot differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..ivr.destinations import Destination

TRANSFER_KINDS = ("queue", "endpoint")


class TransferRefused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TransferTargets:
    """Where agents may send a call: these queues, and any agent (endpoint)."""

    root_menu: str  # the structure the call entered
    app: str | None
    queues: tuple[str, ...]  # sorted


def allowed_queues(queues_by_root: Mapping[str, frozenset[str]],
                   root_menu: str) -> frozenset[str]:
    """The queues of the structure under ``root_menu`` (none when a reload removed it)."""
    return queues_by_root.get(root_menu, frozenset())


def transfer_targets(queues_by_root: Mapping[str, frozenset[str]], root_menu: str,
                     app: str | None) -> TransferTargets:
    return TransferTargets(root_menu, app,
                           tuple(sorted(allowed_queues(queues_by_root, root_menu))))


def check_transfer(queues_by_root: Mapping[str, frozenset[str]], root_menu: str,
                   app: str | None, dest: Destination) -> None:
    if dest.kind not in TRANSFER_KINDS:
        raise TransferRefused(422, f"a call can be transferred to queue:<name> or "
                                   f"endpoint:<name>, not {dest.kind}")
    if dest.kind == "endpoint":
        return
    allowed = allowed_queues(queues_by_root, root_menu)
    if dest.target not in allowed:
        owner = f"app {app!r}'s tree (menu {root_menu!r})" if app else f"menu {root_menu!r}'s tree"
        listed = ", ".join(sorted(allowed)) or "none"
        raise TransferRefused(403, f"queue {dest.target!r} is outside {owner}, where the call "
                                   f"entered; queues allowed: {listed}")
