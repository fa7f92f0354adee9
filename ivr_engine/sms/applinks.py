"""App-link SMS and the links the engine serves in place of Firebase Dynamic Links (shut
down): pure. An "install" or "open" SMS carries ``<base_url>/l/<app>/install|open``; a phone
with the app installed opens ``/l/<app>/open`` in the app (Universal Links / App Links, from
the two documents below); otherwise the browser gets it and is sent to its platform's store
by its user agent."""

from __future__ import annotations

import re
from typing import Any, Literal

Kind = Literal["install", "open"]
_IOS = re.compile(r"iPhone|iPad|iPod", re.I)
_ANDROID = re.compile(r"Android", re.I)


class LinkError(ValueError):
    """Why an app-link SMS cannot be sent (the app is unknown, inactive, links off, ...)."""


def linked_apps(cfg: Any) -> list[str]:
    return [n for n, a in cfg.model.apps.items() if a.sms_links.enabled]


def choose_app(cfg: Any, app: str | None) -> str:
    """The app an app-link SMS is for: the one named, or the only one with links on."""
    if app is None:
        apps = linked_apps(cfg)
        if len(apps) != 1:
            raise LinkError("several apps have sms_links on: choose one of "
                            f"{', '.join(apps)}" if apps else "no app has sms_links on")
        app = apps[0]
    spec = cfg.model.apps.get(app)
    if spec is None:
        raise LinkError(f"app {app!r} is not configured")
    if not spec.sms_links.enabled:
        raise LinkError(f"app {app!r} has sms_links off")
    entry = cfg.routing.apps.get(app)
    if entry is None or not entry.active:
        raise LinkError(f"app {app!r} is inactive (no mobile-app access point)")
    if spec.sms_links.base_url is None:
        raise LinkError(f"app {app!r}: sms_links.base_url is not set (where the engine "
                        "serves its links)")
    return app


def link_text(cfg: Any, app: str, kind: Kind) -> str:
    links = cfg.model.apps[app].sms_links
    link = f"{links.base_url.rstrip('/')}/l/{app}/{kind}"
    template = links.install_text if kind == "install" else links.open_text
    return template.replace("{app}", app).replace("{link}", link)


def store_for(links: Any, user_agent: str) -> str | None:
    """The store a browser on this user agent is sent to; None when neither fits (the
    page then lists both)."""
    if _IOS.search(user_agent or ""):
        return links.app_store_url
    if _ANDROID.search(user_agent or ""):
        return links.play_store_url
    return None


def apple_app_site_association(cfg: Any) -> dict[str, Any]:
    details = [{"appIDs": [f"{a.sms_links.apple_team_id}.{a.ios_id}"],
                "components": [{"/": f"/l/{name}/*"}]}
               for name, a in cfg.model.apps.items()
               if a.sms_links.enabled and a.sms_links.apple_team_id and a.ios_id]
    return {"applinks": {"details": details}}


def asset_links(cfg: Any) -> list[dict[str, Any]]:
    return [{"relation": ["delegate_permission/common.handle_all_urls"],
             "target": {"namespace": "android_app", "package_name": a.android_id,
                        "sha256_cert_fingerprints": list(a.sms_links.android_cert_sha256)}}
            for a in cfg.model.apps.values()
            if a.sms_links.enabled and a.android_id and a.sms_links.android_cert_sha256]
