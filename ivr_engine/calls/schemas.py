"""Request and response models of the calls' routes: call context, transfers, live calls."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ..api.schemas import RequestModel, ResponseModel, Timestamp
from ..livedata.schemas import CallQueue

CallState = Literal["ivr", "handed-off", "bridged", "ended"]


class CallContext(ResponseModel):
    """What the engine knows of a call, for screen pops."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="the caller's ARI channel id")
    channel_name: str
    caller: str
    entry: str = Field(description="the access point it entered by, e.g. did:+15551230000")
    via: str = Field(description="how the entry was chosen (did, app, token, caller, ...)")
    app: str | None = Field(description="the mobile app the call belongs to")
    root_menu: str = Field(description="the structure it entered: transfers to queues stay in it")
    language: str
    custom_data: dict[str, str] = Field(description="what the app's SDK sent with the plan: "
                                        "the app's word, trustworthy only as far as `verified`")
    user: str | None = Field(None, description="the app's user the call carries: set when a "
                             "user's session made the plan, or an offline code matched")
    verified: bool = Field(False, description="true: `user` was proven by the customer's "
                           "backend (a signed assertion at login, then the session); false: "
                           "an anonymous call — an app's key proves the app, never a user")
    path: list[str] = Field(description="menus visited (known once the call left the IVR)")
    destination: str | None
    state: CallState
    transfers: list[str]
    started_at: Timestamp
    updated_at: Timestamp
    node: str | None = Field(None, description="the Asterisk node the call is on")
    engine: str | None = Field(None, description="the engine driving it; another engine's "
                               "API forwards this call's requests there")
    queue: CallQueue | None = Field(None, description="while the call waits in a queue: its "
                                    "position and estimated wait (needs AMI)")


class TransferBody(RequestModel):
    """Where to move the call."""

    to: str = Field(description="`queue:<name>` (a queue of the structure the call entered) "
                    "or `endpoint:<name>` (anywhere)", examples=["queue:billing",
                                                                "endpoint:alice"])


class TransferResult(ResponseModel):
    """The call is on its way."""

    status: Literal["transferred"]
    to: str
    via: Literal["ivr", "ami"] = Field(description="ivr: moved over ARI from a menu; ami: "
                                       "redirected after it had left the IVR")


class TransferTargets(ResponseModel):
    """Where an agent may transfer this call (README "Mobile apps", Transfers)."""

    call_id: str
    app: str | None = Field(description="the mobile app the call belongs to")
    root_menu: str = Field(description="the structure the call entered (an app's call: its "
                           "app's tree); every transfer of the call, follow-on ones "
                           "included, is checked against it")
    queues: list[str] = Field(description="the queues of that structure, sorted: transfer "
                              "with `{\"to\": \"queue:<name>\"}`; no other queue is allowed")
    agents: Literal["unrestricted"] = Field(description="any agent: `{\"to\": "
                                            "\"endpoint:<name>\"}`, agents of no queue of this "
                                            "structure included")


class LiveCall(ResponseModel):
    """A call the engine is driving now."""

    id: str
    app: str | None
    entry: str
    caller: str
    language: str
    user: str | None = None
    verified: bool = False
    phase: str = Field(description="what the call is doing: ivr, ringing, bridged, "
                       "token (reading an app token), starting")
    path: list[str] = Field(description="menus entered so far")
    waiting_since: Timestamp = Field(description="when the call reached the engine")
    waiting_seconds: float = Field(ge=0)
    node: str | None = Field(None, description="the Asterisk node the call is on")
    engine: str | None = Field(None, description="the engine driving it")


class LiveCalls(ResponseModel):
    """Every call in the engine right now, longest waiting first."""

    count: int = Field(ge=0)
    calls: list[LiveCall]
    unreachable: list[str] = Field([], description="engines on the same database whose calls "
                                   "are missing: they did not answer (docs/cluster.md)")
