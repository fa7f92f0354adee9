"""In-app texts per app × language (issue 19 item 3): validated like the audio messages
(file:line for a missing default-language text, a language nobody is shown, an unknown key),
resolved with the messages' fallback, served with the app's menu and in its OpenAPI schema;
``closed_by`` tells the app which text a closed node calls for."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ivr_engine.config import ConfigError, load_config, parse_config
from ivr_engine.livedata.texts import app_texts
from ivr_engine.livedata.tree import export_tree

from .test_api_harness import (  # noqa: F401 - api_fixture: the api fixture
    ENV,
    FIXTURE,
    KEYS,
    USERS,
    api_fixture,
)

HERE = str(Path(__file__).resolve())

BASE = f"""\
engine:
  ari: {{password: secret}}
  default_language: en
messages:
  hello: {{en: hello-world}}
texts:
  after_hours: {{en: Closed now., fr: Fermé.}}
  queue_full: {{en: Busy.}}
menus:
  a-top:
    prompt: hello
    options: {{"1": queue:a-q}}
  b-top:
    prompt: hello
    options: {{"1": queue:b-q}}
apps:
  a:
    android_id: com.acme.a
    push: {{fcm: {{service_account_file: "{HERE}"}}}}
    languages: [fr, en, pt_BR]
    texts:
      after_hours: {{pt: Fechado.}}
      outside_app: {{fr: Depuis l'app.}}
  b:
    android_id: com.acme.b
    push: {{fcm: {{service_account_file: "{HERE}"}}}}
access_points:
  - {{type: mobile-app, app: a, menu: a-top}}
  - {{type: mobile-app, app: a, menu: a-top, surface: in-app}}
  - {{type: mobile-app, app: b, menu: b-top}}
  - {{type: mobile-app, app: b, menu: b-top, surface: in-app}}
"""


def parse(text: str):
    return parse_config(text, "t.yaml", {})


def sub(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def line(text: str, snippet: str) -> int:
    return next(i for i, t in enumerate(text.splitlines(), 1) if snippet in t)


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(text)
    return [str(i) for i in exc.value.issues if i.severity == "error"]


# ---------------------------------------------------------------- validation


def test_base_is_valid_without_warnings():
    assert parse(BASE).warnings == ()


def test_an_engine_text_needs_the_default_language():
    text = sub(BASE, "  queue_full: {en: Busy.}", "  queue_full: {fr: Complet.}")
    assert errors(text) == [
        f"t.yaml:{line(text, 'queue_full: {fr')}: texts.queue_full: no text for the default "
        "language 'en' (engine.default_language); it is the fallback for every other language"]


def test_an_app_text_needs_the_apps_default_language_unless_it_overrides_the_engines():
    # outside_app: the engine has none, so app a's needs fr (its first language): it has it
    assert parse(BASE).model.texts.outside_app == {}
    text = sub(BASE, "outside_app: {fr: Depuis l'app.}", "outside_app: {en: From the app.}")
    assert errors(text) == [
        f"t.yaml:{line(text, 'outside_app: {en')}: apps.a.texts.outside_app: the engine has no "
        "outside_app text (texts.outside_app), so this one needs the app's default language "
        "'fr'"]
    # after_hours overrides the engine's: pt alone is fine (the engine's ends the chain)
    assert parse(BASE).model.apps["a"].texts.after_hours == {"pt": "Fechado."}


def test_a_language_nobody_is_shown_is_an_error_at_its_line():
    text = sub(BASE, "      after_hours: {pt: Fechado.}", "      after_hours: {de: Zu.}")
    text = sub(text, "  queue_full: {en: Busy.}", "  queue_full: {en: Busy., fe: Plein.}")
    assert errors(text) == [
        f"t.yaml:{line(text, 'fe: Plein')}: texts.queue_full.fe: language 'fe' is neither "
        "engine.default_language nor a language of any app (en, fr, pt, pt_BR): no app is "
        "ever shown this text",
        f"t.yaml:{line(text, 'de: Zu')}: apps.a.texts.after_hours.de: language 'de' is not one "
        "of app 'a''s languages (fr, en, pt_BR): the app is never shown this text"]
    # app b lists no languages: the engine's default is its only one
    text = sub(BASE, "    push: {fcm: {service_account_file: \"" + HERE + "\"}}\naccess_points",
               "    push: {fcm: {service_account_file: \"" + HERE + "\"}}\n"
               "    texts: {closed: {fr: Fermé.}}\naccess_points")
    assert errors(text) == [
        f"t.yaml:{line(text, 'texts: {closed')}: apps.b.texts.closed: the engine has no closed "
        "text (texts.closed), so this one needs the app's default language 'en'",
        f"t.yaml:{line(text, 'texts: {closed')}: apps.b.texts.closed.fr: language 'fr' is not "
        "one of app 'b''s languages (en): the app is never shown this text"]


def test_unknown_keys_and_bad_texts_are_refused_at_their_line():
    text = sub(BASE, "  queue_full: {en: Busy.}", "  queue_ful: {en: Busy.}")
    assert errors(text) == [f"t.yaml:{line(text, 'queue_ful:')}: texts.queue_ful: unknown key "
                            "(check the spelling; `ivr-engine schema` lists every key)"]
    text = sub(BASE, "      outside_app:", "      closed_now: {fr: x}\n      outside_app:")
    assert errors(text) == [f"t.yaml:{line(text, 'closed_now')}: apps.a.texts.closed_now: "
                            "unknown key (check the spelling; `ivr-engine schema` lists every "
                            "key)"]
    text = sub(BASE, "  queue_full: {en: Busy.}", f"  queue_full: {{en: {'x' * 501}}}")
    assert errors(text) == [f"t.yaml:{line(text, 'queue_full')}: texts.queue_full.en: String "
                            "should have at most 500 characters"]
    text = sub(BASE, "  queue_full: {en: Busy.}", '  queue_full: {en: "Busy.\\tNow."}')
    assert [e.split(": ", 2)[1] for e in errors(text)] == ["texts.queue_full.en"]
    text = sub(BASE, "  queue_full: {en: Busy.}", "  queue_full: {english: Busy.}")
    assert "texts.queue_full.english: 'english' is not a language code" in errors(text)[0]


def test_a_line_break_is_allowed_in_a_text():
    text = sub(BASE, "  queue_full: {en: Busy.}", '  queue_full: {en: "Busy.\\nTry later."}')
    assert parse(text).model.texts.queue_full == {"en": "Busy.\nTry later."}


def test_fixture_and_example_carry_texts_and_stay_clean():
    cfg = load_config(FIXTURE, ENV)
    assert cfg.model.apps["customer"].texts.outside_app["fr"] == "Appelez-nous depuis l'app."
    example = load_config(Path(__file__).resolve().parents[2] / "config" / "example.yaml",
                          {"IVR_ARI_PASSWORD": "x"})
    for key in ("after_hours", "closed", "outside_app", "queue_full"):
        assert "en" in getattr(example.model.texts, key)
        assert "fr" in getattr(example.model.apps["customer"].texts, key)
    assert not [w for w in example.warnings if "texts" in w.path]


# ---------------------------------------------------------------- resolution


def test_texts_follow_the_messages_fallback():
    cfg = parse(BASE)
    a, b = cfg.routing.apps["a"], cfg.routing.apps["b"]
    got = lambda app, lang: {k: (v["text"], v["language"]) if v else None  # noqa: E731
                             for k, v in app_texts(cfg.model, app, lang).items()}
    assert got(a, "fr") == {"after_hours": ("Fermé.", "fr"),  # the engine's, in fr
                            "closed": None, "outside_app": ("Depuis l'app.", "fr"),
                            "queue_full": ("Busy.", "en")}  # the engine's default
    # pt_BR: the app's text in the base language pt comes before the engine's
    assert got(a, "pt_BR")["after_hours"] == ("Fechado.", "pt")
    # en: the app has no en text, but the app's default language (fr) comes first
    assert got(a, "en")["outside_app"] == ("Depuis l'app.", "fr")
    assert got(a, "en")["after_hours"] == ("Closed now.", "en")
    # a language the app does not speak: its calls would use its default (fr)
    assert got(a, "de") == got(a, "fr") == got(a, None)
    # app b (no languages: the engine's default) never sees app a's texts
    assert got(b, "fr") == {"after_hours": ("Closed now.", "en"), "closed": None,
                            "outside_app": None, "queue_full": ("Busy.", "en")}


# ---------------------------------------------------------------- closed_by


SCHEDULED = sub(BASE, "menus:\n", """\
schedules:
  shop:
    timezone: Europe/Paris
    weekly: {mon-sat: "09:00-18:00"}
    closed: [2026-12-25]
menus:
  a-shop:
    prompt: hello
    schedule: shop
    after_hours: {destination: hangup}
    options: {"1": queue:a-shop-q, "2": menu:a-shop-sub}
  a-shop-sub:
    prompt: hello
    options: {"1": queue:a-sub-q}
""").replace('options: {"1": queue:a-q}', 'options: {"1": queue:a-q, "2": menu:a-shop}')


def test_closed_by_says_which_text_a_closed_node_calls_for():
    cfg = parse(SCHEDULED)

    def state(now):
        root = export_tree(cfg.model, cfg.tree, "a", "a-top", "fr", now)["root"]
        shop = root["children"][1]
        sub_menu = shop["children"][1]
        return [(n["id"], n["open"], n["closed_by"]) for n in
                (root, shop, shop["children"][0], sub_menu, sub_menu["children"][0])]

    utc = dt.timezone.utc
    assert state(dt.datetime(2026, 12, 1, 12, 0, tzinfo=utc)) == [
        ("a-top", True, None), ("a-shop", True, None), ("a-shop.1", True, None),
        ("a-shop-sub", True, None), ("a-shop-sub.1", True, None)]
    # 18:00 in Paris (UTC+1): outside the hours, under the closed menu too
    assert state(dt.datetime(2026, 12, 1, 17, 0, tzinfo=utc)) == [
        ("a-top", True, None), ("a-shop", False, "hours"), ("a-shop.1", False, "hours"),
        ("a-shop-sub", False, "hours"), ("a-shop-sub.1", False, "hours")]
    # Christmas (a Friday, within the weekly hours): a closed date
    assert state(dt.datetime(2026, 12, 25, 12, 0, tzinfo=utc))[1:] == [
        ("a-shop", False, "date"), ("a-shop.1", False, "date"), ("a-shop-sub", False, "date"),
        ("a-shop-sub.1", False, "date")]
    # Paris's date, not UTC's: 23:30 UTC on the 24th is already the 25th in Paris
    assert state(dt.datetime(2026, 12, 24, 23, 30, tzinfo=utc))[1][2] == "date"


# ---------------------------------------------------------------- served with the menu


def bearer(key: str) -> list[tuple[str, bytes]]:
    return [("Authorization", b"Bearer " + key.encode())]


async def test_the_menu_serves_the_apps_texts_in_the_calls_language(api):
    for surface in ("ivr", "in-app"):
        r = await api.raw("GET", f"/v1/apps/customer/menu?surface={surface}&lang=fr",
                          bearer(KEYS["customer"]))
        assert r.status == 200, r.body
        assert r.json()["texts"] == {
            "after_hours": {"text": "Le service client est fermé.", "language": "fr"},
            "closed": None,
            "outside_app": {"text": "Appelez-nous depuis l'app.", "language": "fr"},
            "queue_full": {"text": "All our agents are busy.", "language": "en"}}
    r = await api.raw("GET", "/v1/apps/customer/menu?lang=en", bearer(KEYS["customer"]))
    assert r.json()["texts"]["after_hours"] == {"text": "We are closed now.", "language": "en"}
    # staff (en only) gets the engine's texts; never the customer app's
    r = await api.raw("GET", "/v1/apps/staff/menu?lang=fr", bearer(KEYS["staff"]))
    assert r.json()["texts"] == {
        "after_hours": {"text": "We are closed now.", "language": "en"}, "closed": None,
        "outside_app": None, "queue_full": {"text": "All our agents are busy.",
                                            "language": "en"}}


async def test_a_changed_text_changes_the_etag(api):
    r = await api.raw("GET", "/v1/apps/customer/menu?lang=fr", bearer(KEYS["customer"]))
    etag = r.headers["etag"]
    cfg = parse_config(FIXTURE.read_text().replace("Le service client est fermé.",
                                                   "Fermé pour l'instant.") + USERS,
                       str(FIXTURE), ENV)
    await api.rebuild(config=lambda: cfg)
    r = await api.raw("GET", "/v1/apps/customer/menu?lang=fr",
                      bearer(KEYS["customer"]) + [("If-None-Match", etag.encode())])
    assert r.status == 200 and r.headers["etag"] != etag
    assert r.json()["texts"]["after_hours"]["text"] == "Fermé pour l'instant."


async def test_the_openapi_document_describes_the_texts(api):
    doc = (await api.raw("GET", "/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    tree = schemas["MenuTree"]
    assert "texts" in tree["required"]
    assert set(schemas["MenuTexts"]["properties"]) == {"after_hours", "closed", "outside_app",
                                                       "queue_full"}
    assert set(schemas["ShownText"]["required"]) == {"text", "language"}
    closed_by = schemas["MenuNode"]["properties"]["closed_by"]
    assert {"enum": ["hours", "date"], "type": "string"} in closed_by["anyOf"]

