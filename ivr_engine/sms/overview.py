"""The dialers monitor: per campaign, what uContact's dashboard shows (processed, not
processed, other, blocked) plus failed and the send rates; per dialer, enabled, running and
inside its schedule (a dialer disabled in the configuration is not running, whatever its
start/stop switch says). Pure: it reads counts the repository made."""

from __future__ import annotations

from typing import Any

from .models import BLOCKED, FAILED, NONE, OTHER, SENDING, SENT, TO_PROCESS

DISABLED = ("dialer {name!r} is disabled (sms.dialers.{name}.enabled: false): enable it in the "
            "configuration and reload before starting it")


def campaign_report(name: str, counts: dict[str, Any]) -> dict[str, Any]:
    st = counts.get("states", {})
    msgs, segs = counts.get("rate", (0.0, 0.0))
    return {"campaign": name, "processed": st.get(SENT, 0),
            "not_processed": st.get(TO_PROCESS, 0) + st.get(SENDING, 0) + st.get(NONE, 0),
            "in_flight": st.get(SENDING, 0), "other": st.get(OTHER, 0),
            "blocked": st.get(BLOCKED, 0), "failed": st.get(FAILED, 0),
            "messages_per_second": round(msgs, 3), "segments_per_second": round(segs, 3)}


def report(sms: Any, counts: dict[str, dict[str, Any]], running: dict[str, bool],
           open_now: dict[str, bool]) -> dict[str, Any]:
    names = list(sms.campaigns) + sorted(set(counts) - set(sms.campaigns))
    return {
        "dialers": [{"name": n, "enabled": d.enabled,
                     "running": d.enabled and running.get(n, True),
                     "in_schedule": open_now.get(n, True), "provider": d.provider,
                     "spacing_ms": d.spacing_ms} for n, d in sms.dialers.items()],
        "campaigns": [campaign_report(n, counts.get(n, {})) for n in names],
    }
