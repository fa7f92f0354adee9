"""Whole-document rules of the ``sms:`` section: unique provider names, at most one default,
references to providers, dialers and schedules, credentials each provider type needs."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from .yamlsrc import Issue, Source

if TYPE_CHECKING:
    from .model import ConfigModel

TEMPLATE_FIELDS = ("to", "to_digits", "text", "from", "channel", "id", "encoding")
NEEDS = {"twilio": ("user", "password"), "vonage": ("user", "password"),
         "infobip": ("url", "password"), "url-get": ("url",), "url-post": ("url",),
         "url-get-auth": ("url", "user", "password"),
         "url-post-auth": ("url", "user", "password")}


def check_sms(model: ConfigModel, src: Source) -> list[Issue]:
    issues: list[Issue] = []
    sms = model.sms
    at = ("sms",)

    def err(path: tuple, msg: str) -> None:
        issues.append(src.issue(at + path, msg))

    names: set[str] = set()
    defaults: list[str] = []
    for i, p in enumerate(sms.providers):
        if p.name in names:
            err(("providers", i, "name"), f"provider {p.name!r} is defined twice")
        names.add(p.name)
        if p.default:
            defaults.append(p.name)
            if len(defaults) > 1:
                err(("providers", i, "default"), f"only one provider can be the default "
                    f"({defaults[0]!r} already is)")
        for key in NEEDS[p.type]:
            if getattr(p, key) is None:
                err(("providers", i), f"a {p.type} provider needs {key}")
        if p.type.startswith("url-") and not p.params:
            err(("providers", i), "params is required: the fields sent, with {to} and {text}")
        for key, template in p.params.items():
            try:
                used = {n for _, n, _, _ in string.Formatter().parse(template) if n is not None}
            except ValueError as exc:
                err(("providers", i, "params", key), f"not a template: {exc}")
                continue
            if used - set(TEMPLATE_FIELDS):
                err(("providers", i, "params", key), f"unknown field(s) "
                    f"{', '.join(sorted(used - set(TEMPLATE_FIELDS)))}; known: "
                    f"{', '.join(TEMPLATE_FIELDS)}")
        if p.match_on == "national" and p.number_regexp and not sms.default_region:
            err(("providers", i, "match_on"), "match_on: national reads numbers as dialled "
                "in sms.default_region: set it")
        if p.status_callback_url and p.callback_token is None:
            err(("providers", i, "callback_token"), "status_callback_url is set: a "
                "callback_token is required (delivery reports are refused without it)")

    def need_provider(path: tuple, name: str | None) -> None:
        if name is not None and name not in names:
            err(path, f"provider {name!r} is not defined under sms.providers")

    need_provider(("single_provider",), sms.single_provider)
    for name, d in sms.dialers.items():
        need_provider(("dialers", name, "provider"), d.provider)
        if d.provider is None and not sms.providers:
            err(("dialers", name), "no provider: define one under sms.providers")
        if d.schedule is not None and d.schedule not in model.schedules:
            err(("dialers", name, "schedule"), f"schedule {d.schedule!r} is not defined under "
                "schedules")
    for name, c in sms.campaigns.items():
        if c.dialer not in sms.dialers:
            err(("campaigns", name, "dialer"), f"dialer {c.dialer!r} is not defined under "
                "sms.dialers")
    return issues
