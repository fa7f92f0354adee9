"""GSM-7 / UCS-2 choice and segment counting over a table of tricky strings; E.164
normalisation, the provider's regexp, the dial string's rotation and the default provider."""

from __future__ import annotations

import itertools
import re
from types import SimpleNamespace

import pytest

from ivr_engine.sms.encoding import EncodingError, encode, gsm_septets
from ivr_engine.sms.numbers import (
    NumberError,
    check_regexp,
    default_provider,
    parse_channels,
    rotation,
    to_e164,
)

GSM160 = "a" * 160
EMOJI = "\U0001F600"  # 😀: a surrogate pair in UTF-16

CASES = [
    # text, choice, encoding, units, segments
    ("hello", "auto", "gsm7", 5, 1),
    ("€{}[]~^|\\", "auto", "gsm7", 18, 1),  # every extension character: 2 septets each
    ("\x0c", "auto", "gsm7", 2, 1),  # form feed is in the extension table
    ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./", "auto", "gsm7", 45, 1),
    (GSM160, "auto", "gsm7", 160, 1),  # exactly 160: one message
    (GSM160 + "a", "auto", "gsm7", 161, 2),  # 161: two parts of 153 + 8
    ("a" * 153 * 2, "auto", "gsm7", 306, 2),
    ("a" * 153 * 2 + "a", "auto", "gsm7", 307, 3),
    ("€" * 80, "auto", "gsm7", 160, 1),  # 80 escapes = 160 septets: still one
    ("€" * 81, "auto", "gsm7", 162, 2),
    ("привет", "auto", "ucs2", 6, 1),  # Cyrillic
    ("я" * 70, "auto", "ucs2", 70, 1),  # exactly 70 UCS-2
    ("я" * 71, "auto", "ucs2", 71, 2),  # 71: two parts of 67 + 4
    ("я" * 134, "auto", "ucs2", 134, 2),
    ("я" * 135, "auto", "ucs2", 135, 3),
    (EMOJI, "auto", "ucs2", 2, 1),
    (EMOJI * 35, "auto", "ucs2", 70, 1),
    (EMOJI * 36, "auto", "ucs2", 72, 2),
    ("hello", "ucs2", "ucs2", 5, 1),  # forced
    ("ç", "auto", "ucs2", 1, 1),  # lower-case ç is not GSM-7 (only Ç)
    ("`", "auto", "ucs2", 1, 1),
]


@pytest.mark.parametrize("text,choice,encoding,units,segments", CASES)
def test_encoding_and_segments(text, choice, encoding, units, segments):
    e = encode(text, choice)
    assert (e.encoding, e.units, e.segments) == (encoding, units, segments)
    assert "".join(e.parts) == text


def test_an_escape_is_never_split_between_parts():
    text = "a" * 152 + "€" + "b" * 10  # the escape would take septets 153 and 154
    e = encode(text)
    assert e.encoding == "gsm7" and e.segments == 2
    assert e.parts[0] == "a" * 152 and e.parts[1].startswith("€")
    assert all(sum(gsm_septets(c) for c in p) <= 153 for p in e.parts)


def test_a_surrogate_pair_is_never_split_between_parts():
    text = "я" * 66 + EMOJI + "я" * 10  # the pair would take units 67 and 68
    e = encode(text)
    assert e.segments == 2 and e.parts[0] == "я" * 66 and e.parts[1].startswith(EMOJI)
    for part in e.parts:
        assert len(part.encode("utf-16-le")) // 2 <= 67


def test_forced_gsm7_refuses_a_character_outside_it():
    with pytest.raises(EncodingError, match=r"character 'я' at position 4 is not in GSM-7"):
        encode("ok я", "gsm7")
    with pytest.raises(EncodingError, match="empty"):
        encode("")


@pytest.mark.parametrize("raw,region,want", [
    ("099 635 199", "UY", "+59899635199"),
    ("+598 99 635 199", None, "+59899635199"),
    ("0059899635199", None, "+59899635199"),
    ("(555) 123-0000", "US", "+15551230000"),
    ("06 12 34 56 78", "FR", "+33612345678"),
])
def test_numbers_are_normalised_to_e164(raw, region, want):
    assert to_e164(raw, region) == want


@pytest.mark.parametrize("raw,region,why", [
    ("", "UY", "empty"), ("hello", "UY", "not a phone number"),
    ("099635199", None, "needs sms.default_region"), ("+59899", None, "not a possible number"),
])
def test_bad_numbers_are_refused_with_the_reason(raw, region, why):
    with pytest.raises(NumberError, match=why):
        to_e164(raw, region)


def test_the_regexp_runs_on_the_e164_number():
    check_regexp(to_e164("099635199", "UY"), re.compile(r"^\+5989\d{7}$"), "p")
    with pytest.raises(NumberError, match=r"\+33612345678 does not match the number_regexp .* of provider 'p'"):
        check_regexp("+33612345678", re.compile(r"^\+598"), "p")
    check_regexp("+33612345678", None, "p")


def test_dial_string_rotation():
    assert parse_channels("0-3") == (0, 1, 2, 3)
    assert parse_channels("1-2, 7") == (1, 2, 7)
    assert parse_channels(None) == parse_channels(" ") == ()
    assert list(itertools.islice(rotation(parse_channels("0-3")), 6)) == [0, 1, 2, 3, 0, 1]
    assert list(itertools.islice(rotation(()), 2)) == [None, None]
    for bad in ("3-1", "a", "0-5000"):
        with pytest.raises(ValueError):
            parse_channels(bad)


def P(name, default=False):
    return SimpleNamespace(name=name, default=default)


def test_default_provider_rules():
    assert default_provider([P("a"), P("b", True), P("c")]).name == "b"
    assert default_provider([P("a"), P("c")]).name == "a"  # none marked: the first
    # the default deleted: the first of the rest
    assert default_provider([p for p in [P("a"), P("b", True)] if p.name != "b"]).name == "a"
    assert default_provider([]) is None
