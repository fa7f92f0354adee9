"""App-link SMS: the app chosen (or refused with the reason: links off, inactive, several
apps and none named), the text with the engine's own link sent through the single lane; the
links redirect by user agent; the Universal Links and App Links documents."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr_engine.config import parse_config
from ivr_engine.sms.dialer import SmsService
from ivr_engine.repositories import Store
from ivr_engine.server import ApiParts, build_app
from tests.support.sms_providers import INFOBIP_KEY, LocalProviders, start

APPS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "apps.yaml"
AUTH = {"Authorization": "Bearer links-admin-000000000000000000000000"}
LINKS = """    sms_links:
      enabled: true
      app_store_url: https://apps.apple.com/app/id123456789
      play_store_url: https://play.google.com/store/apps/details?id=com.acme.customer
      base_url: https://links.example.com
      apple_team_id: ABCDE12345
      android_cert_sha256: ["14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64"]
"""
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0 Mobile Safari/537.36")


def config(db_url: str, provider_url: str):
    text = APPS.read_text()
    text = text.replace("    api_key: ${IVR_CUSTOMER_API_KEY:-customer-key-000000000000000000000000000}\n",
                        "    api_key: ${IVR_CUSTOMER_API_KEY:-customer-key-000000000000000000000000000}\n" + LINKS, 1)
    text = text.replace("    api_key: ${IVR_LEGACY_API_KEY:-legacy-key-00000000000000000000000000000}\n",
                        "    api_key: ${IVR_LEGACY_API_KEY:-legacy-key-00000000000000000000000000000}\n"
                        + LINKS.replace("com.acme.customer", "com.acme.legacy"), 1)
    text += f"""
sms:
  default_region: UY
  providers:
    - {{name: infobip, type: infobip, url: "{provider_url}", password: {INFOBIP_KEY}}}
"""
    return parse_config(text, "apps.yaml", {"IVR_DATABASE_URL": db_url,
                                            "IVR_ADMIN_TOKEN": "links-admin-000000000000000000000000",
                                            "IVR_ARI_PASSWORD": "x"})


@pytest.fixture
async def api(db_url):
    providers = LocalProviders()
    runner, url = await start(providers)
    cfg = config(db_url, url)
    store = await Store.open(db_url)
    async with SmsService(lambda: cfg, store.sms, worker="links") as svc, \
            asyncio.TaskGroup() as tg:
        lane = tg.create_task(svc.run_single())
        parts = ApiParts(config=lambda: cfg, store=store, sms=svc)
        client = TestClient(TestServer(build_app(parts)))
        await client.start_server()
        try:
            yield client, providers
        finally:
            await client.close()
            lane.cancel()
    await store.close()
    await runner.cleanup()


async def test_app_link_sms(api):
    client, providers = api
    for body, reason in [
        ({}, "several apps have sms_links on: choose one of customer, legacy"),
        ({"app": "staff"}, "app 'staff' has sms_links off"),
        ({"app": "legacy"}, "app 'legacy' is inactive (no mobile-app access point)"),
        ({"app": "ghost"}, "app 'ghost' is not configured"),
    ]:
        r = await client.post("/v1/sms/app-links", headers=AUTH, json={
            "destination": "099635199", "kind": "install", **body})
        doc = await r.json()
        assert (r.status, doc["field"], doc["detail"]) == (409, "app", reason)
    r = await client.post("/v1/sms/app-links", headers=AUTH, json={
        "destination": "099635199", "kind": "open", "app": "customer", "wait_seconds": 5})
    got = await r.json()
    assert r.status == 200 and got["status"] == "sent", got
    assert providers.requests[-1].json["messages"][0]["text"] == \
        "Open customer: https://links.example.com/l/customer/open"
    assert (await client.post("/v1/sms/app-links", json={})).status == 401


async def test_links_and_documents(api):
    client, _ = api
    for path in ("/l/customer/install", "/l/customer/open"):
        r = await client.get(path, headers={"User-Agent": IPHONE}, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (302,
                                                      "https://apps.apple.com/app/id123456789")
        r = await client.get(path, headers={"User-Agent": ANDROID}, allow_redirects=False)
        assert r.headers["Location"].startswith("https://play.google.com/")
        r = await client.get(path, headers={"User-Agent": "curl/8"}, allow_redirects=False)
        page = await r.text()
        assert r.status == 200 and "App Store" in page and "Google Play" in page
    assert (await client.get("/l/staff/install")).status == 404
    assert (await client.get("/l/nope/open")).status == 404
    aasa = await (await client.get("/.well-known/apple-app-site-association")).json()
    assert aasa == {"applinks": {"details": [
        {"appIDs": ["ABCDE12345.com.acme.customer"], "components": [{"/": "/l/customer/*"}]}]}}
    links = await (await client.get("/.well-known/assetlinks.json")).json()
    assert [x["target"]["package_name"] for x in links] == ["com.acme.customer",
                                                             "com.acme.legacy"]
    assert links[0]["relation"] == ["delegate_permission/common.handle_all_urls"]
    assert links[0]["target"]["sha256_cert_fingerprints"] == [
        "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64"]


async def test_app_link_from_the_cli(db_url, tmp_path):
    import json
    import os
    import sys

    providers = LocalProviders()
    runner, url = await start(providers)
    try:
        cfg = config(db_url, url)
        path = tmp_path / "apps.yaml"
        text = APPS.read_text()
        text = text.replace("    api_key: ${IVR_CUSTOMER_API_KEY:-customer-key-000000000000000000000000000}\n",
                            "    api_key: ${IVR_CUSTOMER_API_KEY:-customer-key-000000000000000000000000000}\n" + LINKS, 1)
        text += (f"\nsms:\n  default_region: UY\n  providers:\n    - {{name: infobip, type: "
                 f"infobip, url: \"{url}\", password: {INFOBIP_KEY}}}\n")
        path.write_text(text)
        assert cfg.model.apps["customer"].sms_links.enabled
        env = {**os.environ, "IVR_DATABASE_URL": db_url, "IVR_ARI_PASSWORD": "x"}

        async def run(*args):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ivr_engine.cli", "sms", "app-link", "-c", str(path),
                *args, env=env, cwd=APPS.parents[2], stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
            return proc.returncode, out.decode(), err.decode()

        code, out, err = await run("--to", "099635199", "--kind", "install", "--now")
        assert code == 0 and json.loads(out)["status"] == "sent", err
        assert providers.requests[-1].json["messages"][0]["text"] == \
            "Install customer: https://links.example.com/l/customer/install"
        code, _, err = await run("--to", "099635199", "--kind", "open", "--app", "staff")
        assert code == 2 and "app 'staff' has sms_links off" in err
    finally:
        await runner.cleanup()
