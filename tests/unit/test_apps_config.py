"""Mobile apps and access points: every validation rule at its own line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_engine.config import ConfigError, parse_config

# an existing file, so that valid credentials give no "file not found" warning
HERE = str(Path(__file__).resolve())

# access_points last, so a test can append entries (the base has indices 0 to 4: an app is
# active with a mobile-app access point in the IVR and in the in-app structure)
BASE = f"""\
engine:
  ari:
    password: secret
messages:
  hello: {{en: hello-world}}
  bye: {{en: goodbye}}
menus:
  main:
    prompt: hello
    options: {{"1": queue:support}}
  amenu:
    prompt: hello
    options: {{"1": queue:sales, "2": menu:asub}}
  asub:
    prompt: hello
  bmenu:
    prompt: hello
apps:
  a:
    android_id: com.acme.a
    push:
      fcm: {{service_account_file: "{HERE}"}}
    fallback:
      number: "+17144505656"
      threshold: 0.5
  b:
    ios_id: com.acme.b
    push:
      apns: {{certificate_file: "{HERE}"}}
access_points:
  - type: phone-number
    numbers: ["+15551230000"]
    menu: main
  - type: mobile-app
    app: a
    menu: amenu
  - type: mobile-app
    app: b
    menu: bmenu
  - {{type: mobile-app, app: a, menu: amenu, surface: in-app}}
  - {{type: mobile-app, app: b, menu: bmenu, surface: in-app}}
"""

A_PUSH = f'''    push:
      fcm: {{service_account_file: "{HERE}"}}
'''
B_PUSH = f'''    push:
      apns: {{certificate_file: "{HERE}"}}
'''
A_FALLBACK = '''    fallback:
      number: "+17144505656"
      threshold: 0.5
'''


def sub(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not unique in the document"
    return text.replace(old, new)


def add_app(text: str, body: str) -> str:
    """Insert an app block (already indented at 2) at the end of ``apps``."""
    return sub(text, "access_points:\n", body + "access_points:\n")


def line(text: str, snippet: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` line containing ``snippet``."""
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if snippet in ln]
    assert len(hits) >= nth, f"{snippet!r} not found {nth} time(s)"
    return hits[nth - 1]


def parse(text: str):
    return parse_config(text, "t.yaml", {})


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse(text)
    return [str(i) for i in exc.value.issues if i.severity == "error"]


def warnings(text: str) -> list[str]:
    return [str(w) for w in parse(text).warnings]


def only(errs: list[str], needle: str) -> str:
    found = [e for e in errs if needle in e]
    assert len(found) == 1, errs
    return found[0]


# --------------------------------------------------------------------------- the base


def test_base_is_valid_without_warnings():
    cfg = parse(BASE)
    assert cfg.warnings == ()
    assert cfg.routing.apps["a"].menu == "amenu"
    assert cfg.routing.apps["b"].menu == "bmenu"
    assert cfg.routing.app_numbers == {"+17144505656": "a"}


# --------------------------------------------------------------------------- identifiers


def test_app_needs_ios_id_or_android_id():
    text = add_app(BASE, "  c:\n    languages: [en]\n")
    assert errors(text) == [f"t.yaml:{line(text, '  c:')}: apps.c: an app needs ios_id or "
                            "android_id (or both)"]


def test_same_identifier_in_two_apps_is_an_error():
    text = sub(BASE, "ios_id: com.acme.b", "ios_id: com.acme.a")
    assert errors(text) == [
        f"t.yaml:{line(text, 'ios_id: com.acme.a')}: apps.b.ios_id: identifier 'com.acme.a' is "
        "already used by app 'a' (android_id); an identifier may serve both platforms of one "
        "app only"]


def test_same_identifier_for_both_platforms_of_one_app_is_fine():
    text = sub(BASE, "    android_id: com.acme.a\n",
               "    android_id: com.acme.a\n    ios_id: com.acme.a\n")
    text = sub(text, A_PUSH, f'''    push:
      fcm: {{service_account_file: "{HERE}"}}
      apns: {{certificate_file: "{HERE}"}}
''')
    cfg = parse(text)
    assert cfg.model.apps["a"].ios_id == cfg.model.apps["a"].android_id == "com.acme.a"
    assert cfg.warnings == ()


@pytest.mark.parametrize("key, ident", [("ios_id", "com acme"), ("android_id", "noDots")])
def test_identifier_syntax_is_checked_by_the_schema(key, ident):
    old = "ios_id: com.acme.b" if key == "ios_id" else "android_id: com.acme.a"
    text = sub(BASE, old, f"{key}: {ident}")
    app = "b" if key == "ios_id" else "a"
    err = only(errors(text), f"apps.{app}.{key}")
    assert err.startswith(f"t.yaml:{line(text, ident)}: apps.{app}.{key}: String should match")


# --------------------------------------------------------------------------- push


def test_ios_id_requires_push_apns():
    text = sub(BASE, B_PUSH, "    push: {}\n")
    assert errors(text) == [
        f"t.yaml:{line(text, 'push: {}')}: apps.b.push: ios_id is set: push.apns is required "
        "(key_file + key_id + team_id, or certificate_file)"]
    # no push key at all: reported at the app itself
    text = sub(BASE, B_PUSH, "")
    assert errors(text) == [
        f"t.yaml:{line(text, '  b:')}: apps.b.push: ios_id is set: push.apns is required "
        "(key_file + key_id + team_id, or certificate_file)"]


def test_apns_certificate_and_key_file_together_is_an_error():
    text = sub(BASE, f'apns: {{certificate_file: "{HERE}"}}',
               f'apns: {{certificate_file: "{HERE}", key_file: "{HERE}", key_id: K1, team_id: T1}}')
    assert errors(text) == [f"t.yaml:{line(text, 'apns:')}: apps.b.push.apns: give either a .p8 "
                            "key_file or a certificate_file, not both"]


@pytest.mark.parametrize("given, missing", [
    ({"key_file": HERE}, ["key_id", "team_id"]),
    ({"key_id": "K1", "team_id": "T1"}, ["key_file"]),
    ({"key_file": HERE, "key_id": "K1"}, ["team_id"]),
    ({}, ["key_file", "key_id", "team_id"]),
])
def test_apns_token_auth_needs_key_file_key_id_and_team_id(given, missing):
    inline = ", ".join(f'{k}: "{v}"' for k, v in given.items())
    text = sub(BASE, f'apns: {{certificate_file: "{HERE}"}}', f"apns: {{{inline}}}")
    n = line(text, "apns:")
    assert errors(text) == [f"t.yaml:{n}: apps.b.push.apns: {k} is required for token (.p8) "
                            "authentication (or give certificate_file)" for k in missing]


def test_apns_token_auth_complete_is_valid():
    text = sub(BASE, f'apns: {{certificate_file: "{HERE}"}}',
               f'apns: {{key_file: "{HERE}", key_id: K1, team_id: T1}}')
    assert parse(text).warnings == ()


def test_android_id_requires_fcm_service_account_file():
    text = sub(BASE, A_PUSH, "    push:\n      fcm: {url: 'http://127.0.0.1:9'}\n")
    assert errors(text) == [f"t.yaml:{line(text, 'fcm:') - 1}: apps.a.push: android_id is set: "
                            "push.fcm.service_account_file is required"]
    text = sub(BASE, A_PUSH, "")
    assert errors(text) == [f"t.yaml:{line(text, '  a:')}: apps.a.push: android_id is set: "
                            "push.fcm.service_account_file is required"]


def test_missing_credentials_files_are_warnings_not_errors():
    text = sub(BASE, f'fcm: {{service_account_file: "{HERE}"}}',
               "fcm: {service_account_file: /nonexistent/sa.json}")
    text = sub(text, f'apns: {{certificate_file: "{HERE}"}}',
               "apns: {certificate_file: /nonexistent/cert.pem}")
    assert warnings(text) == [
        f"t.yaml:{line(text, 'sa.json')}: apps.a.push.fcm.service_account_file: warning: file "
        "'/nonexistent/sa.json' not found (push to this platform will fail until it exists)",
        f"t.yaml:{line(text, 'cert.pem')}: apps.b.push.apns.certificate_file: warning: file "
        "'/nonexistent/cert.pem' not found (push to this platform will fail until it exists)"]
    text = sub(BASE, f'apns: {{certificate_file: "{HERE}"}}',
               "apns: {key_file: /nonexistent/k.p8, key_id: K1, team_id: T1}")
    assert warnings(text) == [
        f"t.yaml:{line(text, 'k.p8')}: apps.b.push.apns.key_file: warning: file "
        "'/nonexistent/k.p8' not found (push to this platform will fail until it exists)"]


# --------------------------------------------------------------------------- sms links


def test_sms_links_need_the_store_url_of_each_platform_of_the_app():
    text = sub(BASE, A_PUSH, A_PUSH + "    sms_links: {enabled: true}\n")
    assert errors(text) == [
        f"t.yaml:{line(text, 'sms_links')}: apps.a.sms_links: sms_links is enabled and the app "
        "has android_id: play_store_url is required"]
    text = sub(BASE, B_PUSH, B_PUSH + "    sms_links:\n      enabled: true\n"
               "      play_store_url: https://play.google.com/store/apps/details?id=x\n")
    assert errors(text) == [
        f"t.yaml:{line(text, 'sms_links')}: apps.b.sms_links: sms_links is enabled and the app "
        "has ios_id: app_store_url is required"]


def test_sms_links_for_an_app_on_both_platforms_need_both_urls():
    text = sub(BASE, "    android_id: com.acme.a\n",
               "    android_id: com.acme.a\n    ios_id: com.acme.a\n")
    text = sub(text, A_PUSH, f'''    push:
      fcm: {{service_account_file: "{HERE}"}}
      apns: {{certificate_file: "{HERE}"}}
    sms_links: {{enabled: true}}
''')
    n = line(text, "sms_links")
    assert errors(text) == [
        f"t.yaml:{n}: apps.a.sms_links: sms_links is enabled and the app has ios_id: "
        "app_store_url is required",
        f"t.yaml:{n}: apps.a.sms_links: sms_links is enabled and the app has android_id: "
        "play_store_url is required"]


def test_sms_links_must_be_https():
    text = sub(BASE, A_PUSH, A_PUSH + "    sms_links:\n      enabled: true\n"
               "      play_store_url: http://play.google.com/x\n")
    assert errors(text) == [f"t.yaml:{line(text, 'play_store_url')}: "
                            "apps.a.sms_links.play_store_url: store links must be https:// URLs"]


def test_sms_links_disabled_need_nothing_and_https_links_are_valid():
    text = sub(BASE, A_PUSH, A_PUSH + "    sms_links: {enabled: false}\n")
    assert parse(text).warnings == ()
    text = sub(BASE, A_PUSH, A_PUSH + "    sms_links:\n      enabled: true\n"
               "      play_store_url: https://play.google.com/x\n")
    assert parse(text).model.apps["a"].sms_links.play_store_url == "https://play.google.com/x"


# --------------------------------------------------------------------------- fallback


@pytest.mark.parametrize("number", ["0612345678", "+0123", "+0612345678", "17144505656",
                                    "+1714450565612345678", "+1 714 450"])
def test_fallback_number_must_be_e164_with_country_code(number):
    text = sub(BASE, 'number: "+17144505656"', f'number: "{number}"')
    assert errors(text) == [f"t.yaml:{line(text, 'number:')}: apps.a.fallback.number: "
                            f"{number!r}: expected an E.164 number with its country code, "
                            "like +17144505656"]


def test_fallback_number_e164_accepted():
    text = sub(BASE, 'number: "+17144505656"', 'number: "+33612345678"')
    assert parse(text).routing.app_numbers == {"+33612345678": "a"}


def test_fallback_threshold_required_with_a_number():
    text = sub(BASE, "      threshold: 0.5\n", "")
    assert errors(text) == [f"t.yaml:{line(text, 'fallback:')}: apps.a.fallback: threshold (0..1) "
                            "is required when a fallback number is set"]


@pytest.mark.parametrize("value, words", [
    ("1.5", "Input should be less than or equal to 1"),
    ("-0.1", "Input should be greater than or equal to 0"),
])
def test_fallback_threshold_outside_0_1_is_rejected(value, words):
    text = sub(BASE, "threshold: 0.5", f"threshold: {value}")
    assert errors(text) == [f"t.yaml:{line(text, 'threshold')}: apps.a.fallback.threshold: {words}"]


@pytest.mark.parametrize("value", ["0", "1"])
def test_fallback_threshold_bounds_are_inclusive(value):
    text = sub(BASE, "threshold: 0.5", f"threshold: {value}")
    assert parse(text).routing.apps["a"].threshold == float(value)


def test_two_apps_with_the_same_fallback_number_is_an_error():
    text = sub(BASE, B_PUSH, B_PUSH + '    fallback: {number: "+17144505656", threshold: 0.2}\n')
    assert errors(text) == [
        f"t.yaml:{line(text, 'threshold: 0.2')}: apps.b.fallback.number: +17144505656 is "
        "already the fallback number of app 'a'"]


def test_threshold_without_number_is_a_warning():
    text = sub(BASE, B_PUSH, B_PUSH + "    fallback:\n      threshold: 0.3\n")
    assert warnings(text) == [f"t.yaml:{line(text, 'threshold: 0.3')}: apps.b.fallback.threshold: "
                              "warning: threshold has no effect without a fallback number"]


# --------------------------------------------------------------------------- blocking


def test_block_outside_calls_enabled_needs_a_message():
    text = sub(BASE, A_FALLBACK, A_FALLBACK + "    block_outside_calls: {enabled: true}\n")
    assert errors(text) == [f"t.yaml:{line(text, 'block_outside_calls')}: "
                            "apps.a.block_outside_calls: message is required when enabled"]


def test_block_outside_calls_message_must_be_defined():
    text = sub(BASE, A_FALLBACK, A_FALLBACK + "    block_outside_calls:\n      enabled: true\n"
               "      message: nope\n")
    assert errors(text) == [
        f"t.yaml:{line(text, 'message: nope')}: apps.a.block_outside_calls.message: message "
        "'nope' is defined neither in this app's messages nor under messages"]


@pytest.mark.parametrize("extra, message", [
    ("", "bye"),                                            # an engine message
    ("    messages:\n      blocked: {en: ss-noservice}\n", "blocked"),  # the app's own
])
def test_block_outside_calls_message_engine_or_app(extra, message):
    text = sub(BASE, A_FALLBACK, A_FALLBACK + extra + "    block_outside_calls:\n"
               f"      enabled: true\n      message: {message}\n")
    cfg = parse(text)
    assert cfg.warnings == ()
    app = cfg.routing.apps["a"]
    assert app.block_outside and app.block_message == message


def test_block_outside_calls_without_fallback_number_is_a_warning():
    text = sub(BASE, B_PUSH, B_PUSH + "    block_outside_calls: {enabled: true, message: bye}\n")
    assert warnings(text) == [
        f"t.yaml:{line(text, 'block_outside_calls')}: apps.b.block_outside_calls: warning: "
        "blocking applies to calls on the fallback number, and this app has none"]


def test_block_outside_calls_disabled_needs_nothing():
    text = sub(BASE, B_PUSH, B_PUSH + "    block_outside_calls: {enabled: false}\n")
    assert parse(text).warnings == ()


# --------------------------------------------------------------------------- languages


def test_app_language_code_is_validated():
    text = sub(BASE, A_FALLBACK, A_FALLBACK + "    languages: [en, english]\n")
    assert errors(text) == [f"t.yaml:{line(text, 'languages')}: apps.a.languages.1: 'english' is "
                            "not a language code like en, fr or pt_BR"]


def test_app_language_listed_twice_is_an_error():
    text = sub(BASE, A_FALLBACK, A_FALLBACK + "    languages:\n      - en\n      - fr\n"
               "      - en\n")
    assert errors(text) == [f"t.yaml:{line(text, '- en', 2)}: apps.a.languages.2: language 'en' "
                            "is listed twice"]


def test_app_only_message_needs_the_app_default_language():
    # first of `languages` is the app's default
    text = sub(BASE, A_FALLBACK, A_FALLBACK + "    languages: [fr, en]\n    messages:\n"
               "      own: {en: digits/1}\n")
    assert errors(text) == [f"t.yaml:{line(text, 'own:')}: apps.a.messages.own: not an override "
                            "of an engine message, so it needs the app's default language 'fr'"]
    # without languages the engine default applies
    text = sub(BASE, A_FALLBACK, A_FALLBACK + "    messages:\n      own: {fr: digits/1}\n")
    assert errors(text) == [f"t.yaml:{line(text, 'own:')}: apps.a.messages.own: not an override "
                            "of an engine message, so it needs the app's default language 'en'"]


def test_app_messages_valid_cases():
    # an override of an engine message may lack the app's default language
    text = sub(BASE, A_FALLBACK, A_FALLBACK + "    languages: [fr, en]\n    messages:\n"
               "      hello: {de: digits/1}\n      own: {fr: digits/2}\n")
    cfg = parse(text)
    assert cfg.warnings == ()
    assert cfg.routing.apps["a"].languages == ("fr", "en")


# --------------------------------------------------------------------------- mobile-app APs


def test_mobile_app_access_point_unknown_app_in_app_surface():
    text = BASE + "  - {type: mobile-app, app: ghost, menu: main, surface: in-app}\n"
    assert errors(text) == [f"t.yaml:{line(text, 'ghost')}: access_points.5.app: app 'ghost' is "
                            "not defined under apps"]


def test_mobile_app_access_point_unknown_app():
    text = BASE + "  - {type: mobile-app, app: ghost, menu: main}\n"
    assert errors(text) == [f"t.yaml:{line(text, 'ghost')}: access_points.5.app: app 'ghost' is "
                            "not defined under apps"]


def test_mobile_app_access_point_must_enter_a_top_level_menu():
    text = add_app(BASE, f'  c:\n    android_id: com.acme.c\n{A_PUSH}')
    text += "  - type: mobile-app\n    app: c\n    menu: asub\n"
    assert errors(text) == [f"t.yaml:{line(text, 'menu: asub')}: access_points.5.menu: menu "
                            "'asub' is a sub-menu of 'amenu'; an access point enters a top-level "
                            "menu"]


def test_same_app_twice_on_the_ivr_surface_is_an_error():
    text = BASE + "  - type: mobile-app\n    app: a\n    menu: main\n"
    assert errors(text) == [
        f"t.yaml:{line(text, 'app: a', 3)}: access_points.5.app: app 'a' already has a "
        "mobile-app access point in the IVR structure (access_points[1]); an app appears there "
        "once"]


def test_same_app_twice_on_the_in_app_surface_is_an_error():
    text = BASE + "  - {type: mobile-app, app: a, menu: main, surface: in-app}\n"
    assert errors(text) == [
        f"t.yaml:{line(text, 'menu: main, surface')}: access_points.5.app: app 'a' already has "
        "a mobile-app access point in the in-app structure (access_points[3]); an app appears "
        "there once"]


def test_app_once_on_ivr_and_once_in_app_is_fine():
    text = sub(BASE, "app: a, menu: amenu, surface: in-app", "app: a, menu: main, surface: in-app")
    cfg = parse(text)
    assert cfg.warnings == ()
    a = cfg.routing.apps["a"]
    assert (a.menu, a.in_app_menu, a.active) == ("amenu", "main", True)  # calls enter amenu


def test_two_apps_on_the_same_menu_is_an_error():
    text = add_app(BASE, f'  c:\n    android_id: com.acme.c\n{A_PUSH}')
    text += "  - type: mobile-app\n    app: c\n    menu: amenu\n"
    assert errors(text) == [
        f"t.yaml:{line(text, 'menu: amenu', 3)}: access_points.5.menu: menu 'amenu' is already "
        "the access point of app 'a' (access_points[1]); two apps cannot share a tree"]


INACTIVE = ("warning: app is inactive: {why}, so its SDK requests (call plans, menus, queue "
            "status) are refused, its fallback number is routed as an unknown number")
NO_IN_APP = "it has no mobile-app access point in the in-app structure (surface: in-app)"
NO_IVR = ("it has no mobile-app access point in the IVR structure (surface: ivr), where its "
          "calls enter")


def test_an_app_is_active_only_with_access_points_in_both_structures():
    text = add_app(BASE, f'  c:\n    android_id: com.acme.c\n{A_PUSH}')
    c = line(text, "  c:")
    assert warnings(text) == [f"t.yaml:{c}: apps.c: {INACTIVE.format(why=NO_IN_APP)}"]
    assert parse(text).routing.apps["c"].inactive_reason == "no-in-app-access-point"
    # the IVR access point alone (the rule before MMA) does not make it active
    ivr = text + "  - {type: mobile-app, app: c, menu: main}\n"
    assert warnings(ivr) == [f"t.yaml:{c}: apps.c: {INACTIVE.format(why=NO_IN_APP)}"]
    # nor does the in-app one alone: its calls would have nowhere to enter
    in_app = text + "  - {type: mobile-app, app: c, menu: main, surface: in-app}\n"
    assert warnings(in_app) == [f"t.yaml:{c}: apps.c: {INACTIVE.format(why=NO_IVR)}"]
    assert parse(in_app).routing.apps["c"].inactive_reason == "no-ivr-access-point"
    both = ivr + "  - {type: mobile-app, app: c, menu: main, surface: in-app}\n"
    assert warnings(both) == [] and parse(both).routing.apps["c"].active


def test_the_active_switch_off_makes_an_app_inactive_whatever_its_access_points():
    text = sub(BASE, "  b:\n", "  b:\n    active: false\n")
    assert warnings(text) == [f"t.yaml:{line(text, 'active: false')}: apps.b.active: "
                              + INACTIVE.format(why="its switch is off (active: false)")]
    b = parse(text).routing.apps["b"]
    assert (b.active, b.inactive_reason, b.menu, b.in_app_menu) == (
        False, "switched-off", "bmenu", "bmenu")
    assert parse(sub(BASE, "  b:\n", "  b:\n    active: true\n")).routing.apps["b"].active


def test_an_inactive_apps_warning_says_its_web_widget_is_gone_too():
    text = sub(BASE, "  b:\n", "  b:\n    active: false\n    widget: {enabled: true}\n")
    assert warnings(text) == [f"t.yaml:{line(text, 'active: false')}: apps.b.active: "
                              + INACTIVE.format(why="its switch is off (active: false)")
                              + " and its web widget answers 404"]


def test_an_app_tree_on_either_surface_is_never_another_apps():
    text = add_app(BASE, f'  c:\n    android_id: com.acme.c\n{A_PUSH}')
    text += ("  - {type: mobile-app, app: c, menu: main}\n"
             "  - {type: mobile-app, app: c, menu: amenu, surface: in-app}\n")
    assert errors(text) == [
        f"t.yaml:{line(text, 'app: c, menu: amenu')}: access_points.6.menu: menu 'amenu' is "
        "already the access point of app 'a' (access_points[1]); two apps cannot share a tree"]


# --------------------------------------------------------------------------- user segments

SEG_SCOPE = '    numbers: ["+15551230000"]\n    menu: main\n'


def test_user_segment_needs_callers_list_or_users():
    text = BASE + "  - type: user-segment\n" + SEG_SCOPE
    assert errors(text) == [f"t.yaml:{line(text, 'user-segment')}: access_points.5: a "
                            "user-segment access point needs callers, list or users"]


def test_a_segment_of_users_names_their_app():
    text = BASE + "  - type: user-segment\n    users: [alice]\n" + SEG_SCOPE
    assert errors(text) == [f"t.yaml:{line(text, 'user-segment')}: access_points.5.app: "
                            "users are an app's verified users: app must name an app under "
                            "apps"]


def test_user_segment_unknown_list():
    text = BASE + "  - type: user-segment\n    list: vip\n" + SEG_SCOPE
    assert errors(text) == [f"t.yaml:{line(text, 'list: vip')}: access_points.5.list: list 'vip' "
                            "is not defined under caller_lists"]


def test_user_segment_known_list_compiles_into_the_segment():
    text = BASE + "  - type: user-segment\n    list: vip\n" + SEG_SCOPE
    text = sub(text, "apps:\n", 'caller_lists:\n  vip: ["+15550001111", "33123456789"]\napps:\n')
    seg, = parse(text).routing.segments
    assert seg.matches("15550001111") and seg.matches("+33123456789")
    assert not seg.matches("+15550001112")
    assert seg.applies_to("15551230000") and not seg.applies_to("+17144505656")


def test_user_segment_caller_prefix_pattern_accepted():
    text = BASE + '  - type: user-segment\n    callers: ["+1555*", "+33123456789"]\n' + SEG_SCOPE
    seg, = parse(text).routing.segments
    assert seg.matches("+15559998888") and seg.matches("15550000000")
    assert not seg.matches("+16665550000")


@pytest.mark.parametrize("pattern", ["15*55", "*", "+1-555", "+1555**"])
def test_user_segment_caller_pattern_rejected(pattern):
    text = BASE + f'  - type: user-segment\n    callers: ["{pattern}"]\n' + SEG_SCOPE
    errs = errors(text)
    assert len(errs) == 1, errs
    assert "callers.0" in errs[0] and "expected a caller number or prefix pattern" in errs[0]


def test_user_segment_caller_pattern_error_at_its_key_path_and_line():
    text = BASE + '  - type: user-segment\n    callers: ["15*55"]\n' + SEG_SCOPE
    assert errors(text) == [f"t.yaml:{line(text, '15*55')}: access_points.5.callers.0: '15*55': "
                            "expected a caller number or prefix pattern like +1555* (digits, "
                            "optional leading +, optional trailing *)"]


def test_phone_number_syntax_error_at_its_key_path_with_the_friendly_message():
    text = BASE + '  - type: phone-number\n    numbers: ["12 34"]\n    menu: main\n'
    assert errors(text) == [f"t.yaml:{line(text, '12 34')}: access_points.5.numbers.0: '12 34': "
                            "expected a phone number of digits, optionally starting with +"]


# --------------------------------------------------------------------------- cross-app carry


def test_phone_number_on_app_fallback_number_into_other_app_tree_is_an_error():
    text = BASE + ('  - type: phone-number\n    numbers:\n      - "+15550009999"\n'
                   '      - "17144505656"\n    menu: bmenu\n')
    n = line(text, '- "17144505656"')
    assert errors(text) == [
        f"t.yaml:{n}: access_points.5.numbers.1: 17144505656 is "
        "app 'a''s fallback number; phone-number access points are matched before mobile-app "
        "ones, so app 'a''s callers would land in app 'b''s tree"]


def test_phone_number_on_app_fallback_number_into_a_non_app_tree_is_an_error():
    text = BASE + '  - {type: phone-number, numbers: ["+17144505656"], menu: main}\n'
    err = only(errors(text), "access_points.5.numbers.0")
    n = line(text, 'numbers: ["+17144505656"]')
    assert err.startswith(f"t.yaml:{n}: ")
    assert err.endswith("app 'a''s callers would land in the tree of menu 'main'")


def test_unscoped_user_segment_is_an_error():
    text = BASE + '  - type: user-segment\n    callers: ["+1999*"]\n    menu: main\n'
    assert errors(text) == [
        f"t.yaml:{line(text, 'user-segment')}: access_points.5: user-segment access points are "
        "matched first and this one applies to every number: app 'a''s callers on its fallback "
        "number +17144505656 who match it would land in the tree of menu 'main'"]


def test_user_segment_scoped_to_the_app_number_is_an_error():
    text = BASE + ('  - type: user-segment\n    callers: ["+1999*"]\n'
                   '    numbers: ["17144505656"]\n    menu: bmenu\n')
    assert errors(text) == [
        f"t.yaml:{line(text, 'user-segment')}: access_points.5: user-segment access points are "
        "matched first and this one applies to +17144505656: app 'a''s callers on its fallback "
        "number +17144505656 who match it would land in app 'b''s tree"]


def test_user_segment_scoped_to_other_numbers_is_fine():
    text = BASE + ('  - type: user-segment\n    callers: ["+1999*"]\n'
                   '    numbers: ["+15551230000"]\n    menu: main\n')
    assert parse(text).warnings == ()


def test_access_points_into_the_app_own_tree_are_fine():
    text = BASE + ('  - {type: phone-number, numbers: ["+17144505656"], menu: amenu}\n'
                   '  - {type: user-segment, callers: ["+1999*"], menu: amenu}\n')
    cfg = parse(text)
    # no cross-app finding; but the number is matched before the app: tokens are never read
    assert [(w.path, w.severity) for w in cfg.warnings] == [("access_points.5.numbers.0",
                                                             "warning")]
    assert "tokens are never read" in cfg.warnings[0].message
    assert cfg.routing.numbers["+17144505656"].menu == "amenu"


def test_option_reaching_another_tree_is_reported():
    # 'shared' belongs to main's tree; amenu also points at it (second parent: an error),
    # and the walk from app a's menu reports that it carries a's callers out of a's tree
    text = sub(BASE, '    options: {"1": queue:support}\n',
               '    options: {"1": queue:support, "2": menu:shared}\n')
    text = sub(text, '"2": menu:asub}', '"2": menu:asub, "3": menu:shared}')
    text = sub(text, "  bmenu:\n", "  shared:\n    prompt: hello\n  bmenu:\n")
    errs = errors(text)
    assert only(errs, "menus.amenu.options.3").endswith(
        "menu 'shared' is already a sub-menu of 'main'; a sub-menu has exactly one parent "
        "(copy it under another name)")
    assert f"t.yaml:{line(text, '  amenu:')}: menus.amenu: can carry app 'a''s callers into " \
           "the tree of menu 'main'" in errs


def test_cross_app_downgraded_to_warnings():
    findings = ('  - {type: phone-number, numbers: ["+17144505656"], menu: bmenu}\n'
                '  - {type: user-segment, callers: ["+1999*"], menu: main}\n')
    text = BASE + findings
    errs = errors(text)
    assert [e.split(": ", 2)[1] for e in errs] == ["access_points.5.numbers.0", "access_points.6"]
    text = sub(BASE, "apps:\n", "checks: {cross_app: warning}\napps:\n") + findings
    cfg = parse(text)
    assert [str(w) for w in cfg.warnings] == [
        f"t.yaml:{line(text, 'menu: bmenu}')}: access_points.5.numbers.0: warning: +17144505656 "
        "is app 'a''s fallback number; phone-number access points are matched before "
        "mobile-app ones, so app 'a''s callers would land in app 'b''s tree",
        f"t.yaml:{line(text, 'user-segment')}: access_points.6: warning: user-segment access "
        "points are matched first and this one applies to every number: app 'a''s callers on "
        "its fallback number +17144505656 who match it would land in the tree of menu 'main'"]
    # the config loads, and routing does what the warnings say
    assert cfg.routing.numbers["+17144505656"].menu == "bmenu"


def test_cross_app_key_rejects_other_values():
    text = sub(BASE, "apps:\n", "checks: {cross_app: ignore}\napps:\n")
    err = only(errors(text), "checks.cross_app")
    assert err.startswith(f"t.yaml:{line(text, 'cross_app')}: checks.cross_app: Input should be "
                          "'error' or 'warning'")


# --------------------------------------------------------------------------- all at once


def test_several_app_errors_are_reported_at_once():
    text = add_app(BASE, f'  c:\n    android_id: com.acme.a\n{A_PUSH}'
                   '    fallback: {number: "+17144505656", threshold: 0.4}\n'
                   "    block_outside_calls: {enabled: true, message: nope}\n"
                   "    languages: [en, en]\n")
    text = sub(text, B_PUSH, "")
    text += ("  - {type: mobile-app, app: c, menu: main}\n"
             "  - {type: mobile-app, app: zz, menu: main, surface: in-app}\n")
    errs = errors(text)
    c = line(text, "  c:")
    assert errs == [
        f"t.yaml:{line(text, '  b:')}: apps.b.push: ios_id is set: push.apns is required "
        "(key_file + key_id + team_id, or certificate_file)",
        f"t.yaml:{c + 1}: apps.c.android_id: identifier 'com.acme.a' is already used by app 'a' "
        "(android_id); an identifier may serve both platforms of one app only",
        f"t.yaml:{c + 4}: apps.c.fallback.number: +17144505656 is already the fallback number "
        "of app 'a'",
        f"t.yaml:{c + 5}: apps.c.block_outside_calls.message: message 'nope' is defined neither "
        "in this app's messages nor under messages",
        f"t.yaml:{c + 6}: apps.c.languages.1: language 'en' is listed twice",
        f"t.yaml:{line(text, 'app: zz')}: access_points.6.app: app 'zz' is not defined under "
        "apps",
    ]
