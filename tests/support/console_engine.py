"""The console's live tests and benchmark run the real engine on the README's example config
(``config/example.yaml``: its menus are what the pages must show), with what a test run
needs on top: the API on free loopback ports with the admin routes and the console on an
admin listener of their own, an admin token, AMI (queues), and one SMS dialer (its provider
on a closed local port: nothing is sent, the tests only switch it)."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"
ADMIN_TOKEN = "console-admin-token-0000000000000000000000"
SMS = {
    "default_region": "US",
    "providers": [{"name": "gateway", "type": "url-post", "url": "http://127.0.0.1:9/gw",
                   "params": {"to": "{to_digits}", "text": "{text}"}, "default": True}],
    "dialers": {"bulk": {"provider": "gateway", "spacing_ms": 100},
                "night": {"provider": "gateway", "schedule": "office-hours"}},
    "campaigns": {"promo": {"dialer": "bulk"}, "reminders": {"dialer": "night"}},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def console_config(workdir: Path) -> Path:
    """The example config with the test run's API, admin listener, token and SMS dialers."""
    data = yaml.safe_load(EXAMPLE.read_text())
    api = data["engine"]["api"]
    api["listen"] = "${IVR_API_LISTEN}"
    api["admin_listen"] = "${IVR_ADMIN_LISTEN}"
    api["admin_token"] = "${IVR_ADMIN_TOKEN}"
    # the admin pages are asked for often by one client: no 429 in the middle of a test
    api["rate_limit"]["per_address"] = {"rate": 1000, "burst": 2000}
    data["engine"]["watchdog"]["sounds_dir"] = None  # lengths learned from plays
    data["sms"] = SMS
    path = workdir / "console.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def console_env(sandbox, admin_port: int) -> dict[str, str]:
    return {"IVR_ADMIN_LISTEN": f"127.0.0.1:{admin_port}", "IVR_ADMIN_TOKEN": ADMIN_TOKEN,
            "IVR_AMI_USERNAME": sandbox.ami_username, "IVR_AMI_PASSWORD": sandbox.ami_password}
