"""Database users, the pure parts (issue 19): a user's validation against the config, the
JSON merge patch, the CSV's lines with their numbers, and the spool's limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_engine.config import parse_config
from ivr_engine.ivr.destinations import Destination
from ivr_engine.users.csvrows import LineError, parse_header, user_line
from ivr_engine.users.csvspool import TooLarge, UserCsvSpool
from ivr_engine.users.records import UserInvalid, check_against, parse_user, patched

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "wakeup.yaml"


@pytest.fixture(scope="module")
def cfg():
    return parse_config(FIXTURE.read_text(), str(FIXTURE), {})


def refused(fn, *args) -> UserInvalid:
    with pytest.raises(UserInvalid) as exc:
        fn(*args)
    return exc.value


def test_a_user_is_read_by_the_configs_own_model(cfg):
    rec = parse_user("dana", {"ringing_device": "uc+mobile", "mobile_endpoint": "dana-m",
                              "uc_endpoint": "dana", "app": "mobileapp",
                              "no_answer": "queue:support",
                              "wakeup": {"uc_mobile_loops": "2", "interval_seconds": 1.5}})
    assert rec.no_answer == Destination("queue", "support")
    assert rec.overrides == {"uc_mobile_loops": 2, "interval_seconds": 1.5}
    check_against(cfg.model, rec)
    spec = rec.compile(cfg.model).spec
    assert (spec.wake.uc_mobile_loops, spec.wake.mobile_loops, spec.wake.ring_seconds) == \
        (2, 2, 10)  # the override, then the config's wakeup:
    assert rec.compile(cfg.model).no_answer == Destination("queue", "support")
    assert parse_user("erin", {"ringing_device": "uc", "uc_endpoint": "x"}).compile(
        cfg.model).no_answer == Destination("voicemail", "erin@default")


@pytest.mark.parametrize("name, values, field, words", [
    ("-bad", {}, "name", "is not a valid name"),
    ("x" * 129, {}, "name", "longer than 128"),
    ("dana", {"ringing_device": "fax"}, "ringing_device", "'mobile', 'uc' or 'uc+mobile'"),
    ("dana", {"mobile_endpoint": "a b"}, "mobile_endpoint", "is not a valid name"),
    ("dana", {"colour": "red"}, "colour", "not a key of a user"),
    ("dana", {"no_answer": "teleport:x"}, "no_answer", "teleport"),
    ("dana", {"wakeup": {"mobile_loops": 0}}, "wakeup.mobile_loops", "greater than or equal"),
    ("dana", {"wakeup": {"hold": "silence"}}, "wakeup.hold", "'moh' or 'ringback'"),
])
def test_bad_values_name_their_key(name, values, field, words):
    err = refused(parse_user, name, values)
    assert err.field == field and words in err.message, (err.field, err.message)


@pytest.mark.parametrize("values, field, words", [
    ({"mobile_endpoint": "d"}, None, "needs app"),
    ({"app": "mobileapp"}, None, "needs mobile_endpoint"),
    ({"ringing_device": "uc+mobile", "mobile_endpoint": "d", "app": "mobileapp"}, None,
     "needs uc_endpoint"),
    ({"mobile_endpoint": "d", "app": "nope"}, "app", "app 'nope' is not defined"),
    ({"ringing_device": "uc", "uc_endpoint": "d", "wakeup": {"message": "nope"}},
     "wakeup.message", "message 'nope' is not defined"),
    ({"ringing_device": "uc", "uc_endpoint": "d", "no_answer": "menu:top"}, "no_answer",
     "no_answer cannot be menu"),
    ({"ringing_device": "uc", "uc_endpoint": "d", "no_answer": "message-then-hangup:x"},
     "no_answer", "message 'x' is not defined"),
    ({"mobile_endpoint": "alice", "app": "mobileapp"}, "mobile_endpoint",
     "is the mobile endpoint of user 'alice' under users:"),
])
def test_the_configs_rules_apply_to_database_users(cfg, values, field, words):
    err = refused(check_against, cfg.model, parse_user("dana", values))
    assert err.field == field and words in err.message, (err.field, err.message)


def test_a_user_of_the_file_may_keep_its_own_endpoint_in_the_database(cfg):
    check_against(cfg.model, parse_user("alice", {"mobile_endpoint": "alice",
                                                  "app": "mobileapp"}))


def test_patch_is_a_json_merge_patch(cfg):
    rec = parse_user("dana", {"ringing_device": "uc+mobile", "mobile_endpoint": "m",
                              "uc_endpoint": "u", "app": "mobileapp",
                              "wakeup": {"mobile_loops": 4, "hold": "ringback"}})
    out = patched(rec, {"ringing_device": "mobile", "uc_endpoint": None,
                        "wakeup": {"hold": None, "ring_seconds": 20}})
    assert (out.ringing_device, out.uc_endpoint, out.mobile_endpoint) == ("mobile", None, "m")
    assert out.overrides == {"mobile_loops": 4, "ring_seconds": 20}
    assert patched(out, {"wakeup": None}).overrides == {}
    assert refused(patched, rec, {"wakeup": {"ring_seconds": 1}}).field == \
        "wakeup.ring_seconds"


# ---------------------------------------------------------------------------- the CSV

HEADER = "name,ringing_device,mobile_endpoint,uc_endpoint,app,no_answer,ring_seconds"


def row(cfg, text: str, header: str = HEADER, n: int = 2):
    h = parse_header(header)
    assert not isinstance(h, LineError), h
    return user_line(n, text, h, cfg.model, {"alice": "alice", "carol": "bob"})


def test_a_good_row(cfg):
    rec = row(cfg, 'dana,uc+mobile,dana-m,dana,mobileapp,"queue:support",20\r\n')
    assert not isinstance(rec, LineError), rec
    assert (rec.name, rec.ringing_device, rec.uc_endpoint, rec.overrides) == \
        ("dana", "uc+mobile", "dana", {"ring_seconds": 20})
    rec = row(cfg, "erin;uc;erin", header="name;ringing_device;uc_endpoint")
    assert not isinstance(rec, LineError) and rec.uc_endpoint == "erin"
    rec = row(cfg, "fay,,,fay,,,", header=HEADER.replace("ringing_device", "RINGING_DEVICE"))
    assert isinstance(rec, LineError) and "needs mobile_endpoint" in rec.reason  # default


@pytest.mark.parametrize("text, words", [
    ("dana,uc", "2 columns; the first line names 7"),
    ("dana,fax,,d,,,", "ringing_device: input should be 'mobile', 'uc' or 'uc+mobile'"),
    (",uc,,d,,,", "name: a user name is required"),
    ("dana,uc,,d,,,4", "ring_seconds: input should be greater than or equal to 5"),
    ("dana,mobile,alice,,mobileapp,,", "is the mobile endpoint of user 'alice'"),
    ('dana,uc,,"d,,,', "unexpected end of data"),
])
def test_bad_rows_say_why_with_their_line(cfg, text, words):
    err = row(cfg, text, n=17)
    assert isinstance(err, LineError) and err.line == 17
    assert words in err.reason and "wakeup." not in err.reason, err.reason  # its column
    assert str(err).startswith("line 17: ")


@pytest.mark.parametrize("header, words", [
    ("name,colour", "unknown column 'colour'"),
    ("ringing_device,app", "`name` among them"),
    ("name,app,app", "column 'app' is named twice"),
])
def test_bad_headers(header, words):
    err = parse_header(header)
    assert isinstance(err, LineError) and err.line == 1 and words in err.reason


def spool(cfg, data: bytes, chunk: int = 7, **limits):
    model = cfg.model.model_copy(update={"user_directory": cfg.model.user_directory.model_copy(
        update={"imports": cfg.model.user_directory.imports.model_copy(update=limits)})})
    sp = UserCsvSpool(model)
    for i in range(0, len(data), chunk):
        sp.feed(data[i:i + chunk])
    result = sp.finish()
    return sp, result


def test_the_spool_keeps_good_users_and_lists_every_bad_line(cfg):
    data = (f"\ufeff{HEADER}\n"
            "dana,uc,,dana,,,\n"
            "\n"
            "erin,uc,,erin,,,\n").encode()
    sp, result = spool(cfg, data)
    assert result.ok and result.rows == 2 and result.names == {"dana", "erin"}
    assert [r.name for batch in sp.batches() for r in batch] == ["dana", "erin"]
    sp.close()
    bad = (f"{HEADER}\n"
           "dana,uc,,dana,,,\n"
           "dana,uc,,dana2,,,\n"            # line 3: the same name
           "gus,mobile,gm,,mobileapp,,\n"
           "hal,mobile,gm,,mobileapp,,\n"   # line 5: gus's endpoint
           "ivy,uc\n"                       # line 6
           "jo,uc,,\xff,,,\n").encode("latin-1")  # line 7: not UTF-8
    sp, result = spool(cfg, bad, chunk=5)
    assert not result.ok and result.bad_lines == 4
    assert [(e.line, e.reason.split(":")[0]) for e in result.errors] == [
        (3, "user 'dana' is already on an earlier line"), (5, "mobile_endpoint"),
        (6, "2 columns; the first line names 7"), (7, "not UTF-8 (byte 8)")]
    assert list(sp.batches()) == []  # nothing is kept once a line is bad
    sp.close()


def test_the_spool_limits(cfg):
    header = f"{HEADER}\n".encode()
    with pytest.raises(TooLarge, match="max_bytes"):
        spool(cfg, header + b"dana,uc,,dana,,,\n" * 100, max_bytes=1024)
    with pytest.raises(TooLarge, match="more than 2 users"):
        spool(cfg, header + b"a,uc,,a,,,\nb,uc,,b,,,\nc,uc,,c,,,\n", max_rows=2)
    sp, result = spool(cfg, header + b"a," + b"x" * 300 + b"\nb,uc,,b,,,\n",
                       max_line_bytes=256)
    assert [(e.line, "longer than 256 bytes" in e.reason) for e in result.errors] == \
        [(2, True)]
    sp.close()
    sp, result = spool(cfg, b"")
    assert [e.reason for e in result.errors] == [
        "the file is empty: the first line names the columns, `name` among them"]
    sp.close()
    sp, result = spool(cfg, b"nom,app\ndana,x\n")
    assert sp.unreadable and [e.line for e in result.errors] == [1]
    sp.close()
