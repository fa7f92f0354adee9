"""RFC 8599 push parameters in a REGISTER's Contact URI. Pure.

A SIP app may announce its push binding in the Contact it registers::

    <sip:alice@192.0.2.1:5070;pn-provider=apns;pn-prid=<device token>;
         pn-param=TEAMID.com.example.app.voip>

Asterisk keeps the URI and reports it in ContactStatusChange events; the engine stores the
token as that user's device, exactly as if the app had called ``POST /v1/devices``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

#: contact states in which a registration can be rung
AVAILABLE = frozenset({"Created", "Reachable", "NonQualified", "Updated"})


@dataclass(frozen=True, slots=True)
class PushBinding:
    provider: str  # apns | fcm
    prid: str  # the device (push) token
    param: str | None
    platform: str  # ios | android
    voip: bool  # an APNs VoIP (PushKit) token


def _params(uri: str) -> dict[str, str]:
    inner = uri.strip().strip("<>")
    inner = inner.split("?", 1)[0]
    parts = inner.split(";")[1:]
    out: dict[str, str] = {}
    for part in parts:
        key, _, value = part.partition("=")
        out[key.strip().lower()] = unquote(value.strip())
    return out


def parse_push_params(contact_uri: str) -> PushBinding | None:
    """The RFC 8599 binding in ``contact_uri``, or None (absent, unknown provider, bad)."""
    p = _params(contact_uri)
    provider, prid = p.get("pn-provider", "").lower(), p.get("pn-prid", "")
    if not provider or not prid or not re.fullmatch(r"[A-Za-z0-9:_\-.]{8,4096}", prid):
        return None
    param = p.get("pn-param") or None
    if provider == "apns":
        return PushBinding("apns", prid, param, "ios", bool(param and param.endswith(".voip")))
    if provider == "fcm":
        return PushBinding("fcm", prid, param, "android", False)
    return None


def aor_of(contact_aor: str) -> str:
    """ARI reports the AOR id (``alice``); tolerate a URI form too."""
    aor = contact_aor.strip()
    if aor.startswith("sip:"):
        aor = aor[4:].split("@", 1)[0]
    return aor
