"""The web widget's routes in process (tests/unit/test_api_harness.py: a real config, store and
aiohttp server), the customer app with its widget enabled: the page in the visitor's
language with its CSP, anonymous deep-linked call plans, CORS, the assets; and the NAT
include the sandbox writes for Asterisk (ivr_engine/edge/natconf.py)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from ivr_engine.config import parse_config
from ivr_engine.edge.natconf import NatError, nat_conf
from ivr_engine.edge.page import accept_language

from .test_api_harness import ENV, FIXTURE, USERS, api_fixture, assert_problem  # noqa: F401

SHOP = "https://shop.example"
WIDGET = f"""    widget:
      enabled: true
      sip_wss_url: wss://pbx.example:8443/ws
      sip_domain: pbx.example
      ice_servers: ["stun:stun.example:3478"]
      frame_ancestors: ["{SHOP}"]
      cors_origins: ["{SHOP}"]
"""


def widget_config(label: str = "Service client"):
    """apps.yaml with the customer app's widget on and labels on its top menu."""
    text = FIXTURE.read_text() + USERS
    text = text.replace("    languages: [en, fr]\n", "    languages: [en, fr]\n" + WIDGET, 1)
    text = text.replace("  cust:\n    prompt: m-cust\n",
                        "  cust:\n    prompt: m-cust\n"
                        f"    label: {{en: \"Customer service\", fr: {label!r}}}\n"
                        "    option_labels: {\"1\": {label: {en: Sales, fr: Ventes}}}\n", 1)
    return parse_config(text, str(FIXTURE), ENV)


@pytest.fixture
async def widget_api(api):
    cfg = widget_config()
    await api.rebuild(config=lambda: cfg)
    return api


async def test_a_widget_not_enabled_is_not_found(api):
    for method, target in (("GET", "/w/customer"), ("GET", "/w/customer/menu"),
                           ("POST", "/w/customer/calls"), ("GET", "/w/nobody"),
                           ("OPTIONS", "/w/customer/calls")):
        body = b'{"target": "cust"}' if method == "POST" else None
        r = await api.raw(method, target, [("Content-Type", b"application/json")], body)
        assert_problem(r, 404)


async def test_the_page_shows_the_apps_tree_in_the_visitors_language(widget_api):
    r = await widget_api.raw("GET", "/w/customer", [("Accept-Language", b"fr-CA,fr;q=0.9")])
    assert r.status == 200, r.body
    html = r.body.decode()
    assert '<html lang="fr-CA">' in html  # labels: fr_CA falls back to the app's fr
    assert "Service client" in html and "Ventes" in html and "Customer service" not in html
    nodes = re.findall(r'data-target="([^"]+)"', html)
    assert nodes == ["cust", "cust.1", "cust-sub", "cust-sub.1"]  # the app's tree only
    assert "staff" not in html and 'data-target="top"' not in html
    # no inline script: only scripts of this origin, the settings a JSON data block
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'src="/w-static/' in tag or 'type="application/json"' in tag, tag
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self' wss://pbx.example:8443;" in csp
    assert f"frame-ancestors 'self' {SHOP};" in csp and "default-src 'none'" in csp
    english = (await widget_api.raw("GET", "/w/customer?lang=en")).body.decode()
    assert "<h1>Customer service</h1>" in english and "Sales" in english


async def test_labels_are_escaped(api):
    cfg = widget_config(label="<img src=x onerror=alert(1)></script>")
    await api.rebuild(config=lambda: cfg)
    html = (await api.raw("GET", "/w/customer?lang=fr")).body.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.count("</script>") == 3  # the settings block, two scripts: none injected


async def test_a_click_gets_an_anonymous_plan_deep_linked_to_the_node(widget_api):
    r = await widget_api.post("/w/customer/calls", {"target": "cust-sub", "language": "fr"})
    assert r.status == 201, r.body
    plan = r.json()
    assert plan["target"] == "cust-sub" and plan["language"] == "fr"
    assert plan["sip"] == {"wss_url": "wss://pbx.example:8443/ws",
                           "uri": "sip:app-customer@pbx.example",
                           "from_uri": "sip:webvisitor@pbx.example",
                           "headers": {"X-IVR-Token": plan["token"]},
                           "ice_servers": ["stun:stun.example:3478"]}
    intent = await widget_api.parts.store.intents.consume_token(
        "customer", plan["token"], dt.datetime.now(dt.timezone.utc), "ch-web")
    assert intent.target == "cust-sub" and intent.user is None and not intent.verified
    assert intent.custom_data == {}


async def test_targets_outside_the_apps_tree_are_refused(widget_api):
    for target in ("top", "staff", "staff.1", "cust.9"):
        r = await widget_api.post("/w/customer/calls", {"target": target})
        assert_problem(r, 422)
        assert r.json()["field"] == "target"
    r = await widget_api.post("/w/customer/calls", {})
    assert_problem(r, 422)


async def test_cors_and_origins(widget_api):
    body = b'{"target": "cust"}'
    json_type = ("Content-Type", b"application/json")
    r = await widget_api.raw("POST", "/w/customer/calls", [json_type, ("Origin", SHOP.encode())],
                             body)
    assert r.status == 201 and r.headers["access-control-allow-origin"] == SHOP
    r = await widget_api.raw("POST", "/w/customer/calls",
                             [json_type, ("Origin", b"https://evil.example")], body)
    assert_problem(r, 403)
    r = await widget_api.raw("POST", "/w/customer/calls",
                             [json_type, ("Origin", b"http://127.0.0.1")], body)
    assert r.status == 201  # the page's own origin
    pre = await widget_api.raw("OPTIONS", "/w/customer/calls", [("Origin", SHOP.encode())])
    assert pre.status == 204 and pre.headers["access-control-allow-origin"] == SHOP
    assert pre.headers["access-control-allow-methods"] == "POST"
    pre = await widget_api.raw("OPTIONS", "/w/customer/calls",
                               [("Origin", b"https://evil.example")])
    assert pre.status == 204 and "access-control-allow-origin" not in pre.headers
    menu = await widget_api.raw("GET", "/w/customer/menu?lang=fr", [("Origin", SHOP.encode())])
    assert menu.status == 200 and menu.json()["root"]["label"] == "Service client"
    assert menu.headers["access-control-allow-origin"] == SHOP


async def test_assets(widget_api):
    r = await widget_api.raw("GET", "/w-static/widget.js")
    assert r.status == 200 and r.headers["content-type"].startswith("text/javascript")
    assert b"sendDTMF" in r.body and b"RFC2833" in r.body
    r = await widget_api.raw("GET", "/w-static/widget.css")
    assert r.status == 200 and r.headers["content-type"].startswith("text/css")
    for name in ("nope.js", "..%2Fhttp.js", "widget.css.js"):
        assert_problem(await widget_api.raw("GET", f"/w-static/{name}"), 404)


def test_accept_language():
    assert accept_language("fr-CA,fr;q=0.9,en;q=0.8") == "fr_CA"
    assert accept_language("en;q=0.5, de") == "de"
    assert accept_language("*") is None and accept_language("") is None
    assert accept_language("x<script>,pt-BR;q=0.3") == "pt_BR"


def test_nat_include():
    assert nat_conf({}) == ""
    text = nat_conf({"IVR_EXTERNAL_SIGNALING_ADDRESS": "203.0.113.7",
                     "IVR_LOCAL_NET": "10.0.0.0/8, 192.168.1.7/24"})
    for transport in ("transport-udp", "transport-tls"):
        block = text.split(f"[{transport}](+)\n")[1].split("[")[0]
        assert block.splitlines() == [
            "external_signaling_address = 203.0.113.7", "external_media_address = 203.0.113.7",
            "local_net = 127.0.0.0/8", "local_net = 10.0.0.0/8", "local_net = 192.168.1.0/24"]
    text = nat_conf({"IVR_EXTERNAL_SIGNALING_ADDRESS": "pbx.example.com",
                     "IVR_EXTERNAL_MEDIA_ADDRESS": "203.0.113.8"})
    assert "external_media_address = 203.0.113.8" in text
    for env, word in (({"IVR_EXTERNAL_SIGNALING_ADDRESS": "1.2.3"}, "SIGNALING"),
                      ({"IVR_EXTERNAL_MEDIA_ADDRESS": "a b"}, "MEDIA"),
                      ({"IVR_EXTERNAL_SIGNALING_ADDRESS": "1.2.3.4", "IVR_LOCAL_NET": "10/33"},
                       "LOCAL_NET"),
                      ({"IVR_LOCAL_NET": "10.0.0.0/8"}, "LOCAL_NET")):
        with pytest.raises(NatError, match=word):
            nat_conf(env)
