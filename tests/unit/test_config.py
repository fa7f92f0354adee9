"""Config validation: every rule gives `file:line: key.path: message` at the right line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivr_engine.config import ConfigError, load_config, parse_config

FIXTURE = Path(__file__).parent.parent / "fixtures" / "ivr.yaml"
EXAMPLE = Path(__file__).parent.parent.parent / "config" / "example.yaml"

BASE = """\
engine:
  ari:
    password: secret
messages:
  hello: {en: hello-world}
menus:
  main:
    prompt: hello
    options:
      "1": queue:support
access_points:
  - type: phone-number
    numbers: ["+15551230000"]
    menu: main
"""


def errors(text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(textwrap.dedent(text), "t.yaml", env or {})
    return [str(i) for i in exc.value.issues if i.severity == "error"]


def test_fixture_and_example_are_valid():
    env = {"IVR_ARI_PASSWORD": "x"}
    assert load_config(FIXTURE, env).tree.menus["b"].root == "top"
    cfg = load_config(EXAMPLE, env)
    assert cfg.tree.menus["billing"].parent == "sales"
    # the demo ships no push credentials nor assertion secrets: only those are reported
    assert [w.path for w in cfg.warnings] == [
        "apps.customer.push.apns.key_file", "apps.customer.push.fcm.service_account_file",
        "apps.customer.user_assertion.secret", "apps.staff.push.fcm.service_account_file",
        "apps.staff.user_assertion.secret"]
    secrets = {"CUSTOMER_ASSERTION_SECRET": "c" * 32, "STAFF_ASSERTION_SECRET": "s" * 32}
    assert len(load_config(EXAMPLE, {**env, **secrets}).warnings) == 3


def test_base_is_valid_and_immutable():
    cfg = parse_config(BASE, "t.yaml", {})
    with pytest.raises(Exception):
        cfg.model.engine.default_language = "fr"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.tree.menus["x"] = None  # type: ignore[index]


def test_unknown_key_reports_its_line():
    text = BASE.replace("    prompt: hello\n", "    prompt: hello\n    promt: typo\n")
    assert errors(text) == ["t.yaml:9: menus.main.promt: unknown key (check the spelling; "
                            "`ivr-engine schema` lists every key)"]


def test_missing_password_and_several_errors_at_once():
    text = BASE.replace("    password: secret\n", "    username: x\n").replace(
        "queue:support", "'queue:'").replace('"1"', '"0"')
    errs = errors(text)
    assert "t.yaml:2: engine.ari.password: required key is missing" in errs
    assert any(e.startswith("t.yaml:10: menus.main.options.0: key '0' is reserved") for e in errs)
    assert any(e.startswith("t.yaml:10: menus.main.options") and "needs a target" in e
               for e in errs)


def test_env_substitution_and_missing_env():
    text = BASE.replace("password: secret", "password: ${ARI_PW}")
    cfg = parse_config(text, "t.yaml", {"ARI_PW": "s3cret"})
    assert cfg.engine.ari.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg.model)
    assert errors(text) == ["t.yaml:3: engine.ari.password: environment variable ARI_PW is not set"]
    text2 = BASE.replace("password: secret", "password: ${ARI_PW:-dflt}")
    assert parse_config(text2, "t.yaml", {}).engine.ari.password.get_secret_value() == "dflt"


def test_unknown_menu_message_and_schedule():
    text = BASE.replace("access_points:", textwrap.indent(textwrap.dedent("""\
        other:
          prompt: nope
          options:
            "1": menu:ghost
          schedule: ghost-hours
          after_hours: {destination: hangup}
        """), "  ") + "access_points:")
    errs = errors(text)
    assert "t.yaml:12: menus.other.prompt: message 'nope' is not defined under messages" in errs
    assert "t.yaml:14: menus.other.options.1: menu 'ghost' is not defined under menus" in errs
    assert ("t.yaml:15: menus.other.schedule: schedule 'ghost-hours' is not defined under "
            "schedules") in errs


def test_message_needs_default_language_and_valid_media():
    text = BASE.replace("  hello: {en: hello-world}",
                        "  hello: {en: hello-world}\n  fr-only: {fr: bonjour}\n"
                        "  bad: {en: 'video:clip'}")
    errs = errors(text)
    # schema errors come first; whole-document rules run once the schema holds
    assert errs == ["t.yaml:7: messages.bad.en: 'video:clip': unknown media scheme 'video' "
                    "(use sound, recording, number, digits, characters, tone)"]
    errs = errors(text.replace("  bad: {en: 'video:clip'}", ""))
    assert any(e.startswith("t.yaml:6: messages.fr-only: no entry for the default language 'en'")
               for e in errs)


def test_subject_menu_with_two_parents_and_cycles():
    menus = textwrap.dedent("""\
      x:
        prompt: hello
        options: {"1": menu:shared}
      y:
        prompt: hello
        options: {"1": menu:shared}
      shared:
        prompt: hello
      c1:
        prompt: hello
        options: {"1": menu:c2}
      c2:
        prompt: hello
        options: {"1": menu:c1}
    """)
    text = BASE.replace("access_points:", textwrap.indent(menus, "  ") + "access_points:")
    errs = errors(text)
    assert any("menus.y.options.1: menu 'shared' is already a sub-menu of 'x'" in e for e in errs)
    assert any("menus.c1: menus c1 -> c2 -> c1 form a cycle" in e for e in errs)


def test_access_point_must_enter_top_level_menu_and_numbers_unique():
    menus = textwrap.dedent("""\
      sub:
        prompt: hello
    """)
    text = BASE.replace('      "1": queue:support', '      "1": queue:support\n      "2": menu:sub')
    text = text.replace("access_points:", textwrap.indent(menus, "  ") + "access_points:")
    text += '  - {type: phone-number, numbers: ["+15551230000"], menu: sub}\n'
    errs = errors(text)
    assert any("access_points.1.menu: menu 'sub' is a sub-menu of 'main'" in e for e in errs)
    assert any("access_points.1.numbers.0: number +15551230000 is already used by "
               "access_points[0]" in e for e in errs)


def test_jump_out_of_structure_is_refused():
    menus = textwrap.dedent("""\
      other:
        prompt: hello
    """)
    text = BASE.replace('      "1": queue:support', '      "1": queue:support\n    on_timeout: menu:other')
    text = text.replace("access_points:", textwrap.indent(menus, "  ") + "access_points:")
    text += "  - {type: phone-number, numbers: ['+15550000001'], menu: other}\n"
    errs = errors(text)
    assert any("menus.main.on_timeout: jumps to 'other'" in e and "stay inside one structure" in e
               for e in errs)


def test_schedule_rules():
    sched = textwrap.dedent("""\
    schedules:
      s:
        weekly:
          mon-fri: ["09:00-12:00", "11:00-13:00"]
          fri: ["08:00-09:00"]
          sun: ["18:00-08:00"]
        closed: [2026-12-25, "2026-13-01"]
        open:
          2026-12-25: ["10:00-11:00"]
    """)
    text = sched + BASE
    errs = errors(text)
    assert any(e.startswith("t.yaml:4: schedules.s.weekly.mon-fri: ranges 09:00-12:00 and "
                            "11:00-13:00 overlap") for e in errs)
    assert any("schedules.s.weekly.sun" in e and "start must be before end" in e for e in errs)
    assert any("schedules.s.closed" in e and "'2026-13-01' is not a date" in e for e in errs)


def test_schedule_weekly_repeat_and_closed_open_conflict():
    sched = textwrap.dedent("""\
    schedules:
      s:
        weekly:
          mon-fri: ["09:00-12:00"]
          fri: ["08:00-09:00"]
    """)
    errs = errors(sched + BASE)
    assert errs == ["t.yaml:3: schedules.s.weekly: 'fri' repeats a day already given by 'mon-fri'"]
    sched = textwrap.dedent("""\
    schedules:
      t:
        closed: [2026-12-25]
        open:
          2026-12-25: ["10:00-11:00"]
    """)
    errs = errors(sched + BASE)
    assert any(e.startswith("t.yaml:5: schedules.t.open.2026-12-25: this date is also listed "
                            "under closed") for e in errs)


def test_schedule_needs_after_hours_and_bad_dial0_and_timezone():
    text = BASE.replace("    prompt: hello\n", "    prompt: hello\n    schedule: s\n"
                        "    dial0: operator\n")
    text = "schedules:\n  s:\n    timezone: Mars/Olympus\n" + text
    errs = errors(text)
    assert any("schedules.s.timezone: 'Mars/Olympus' is not an IANA timezone" in e for e in errs)
    assert any("menus.main.dial0: unknown dial-0 policy 'operator'" in e for e in errs)


def test_yaml_syntax_error_and_duplicate_keys():
    assert errors("engine: [\n")[0].startswith("t.yaml:2: YAML syntax error")
    text = BASE.replace("menus:\n", "menus:\n  main:\n    prompt: hello\n")
    errs = errors(text)
    assert any(e.startswith("t.yaml:9: menus.main: duplicate key (first at line 7)") for e in errs)


def test_unreachable_top_level_menu_is_a_warning():
    text = BASE.replace("access_points:", "  lonely:\n    prompt: hello\naccess_points:")
    cfg = parse_config(text, "t.yaml", {})
    assert [str(w) for w in cfg.warnings] == [
        "t.yaml:11: menus.lonely: warning: top-level menu is not used by any access point "
        "(unreachable)"]
