"""How app versions compare (lifecycle/versions.py): dotted numbers as integers, pre-releases
before their release, build numbers ignored, anything else refused."""

from __future__ import annotations

import pytest

from ivr_engine.lifecycle.versions import VersionError, is_older, older_or_unknown, parse_version


@pytest.mark.parametrize("older, newer", [
    ("2.17.60", "2.17.100"),  # integers, not strings
    ("2.9", "2.10"),
    ("2.17", "2.17.1"),
    ("1.99.99", "2"),
    ("2.18.0-beta", "2.18.0"),  # a pre-release sorts before its release
    ("2.18.0-alpha", "2.18.0-beta"),
    ("2.18.0-beta.2", "2.18.0-beta.11"),  # numeric identifiers as integers
    ("2.18.0-beta", "2.18.0-beta.1"),  # shorter first
    ("2.18.0-1", "2.18.0-alpha"),  # numeric below alphanumeric
    ("2.17.60", "2.18.0-rc.1"),
    ("v2.17.60", "2.17.61"),
])
def test_older_versions_sort_first(older, newer):
    assert is_older(older, newer)
    assert not is_older(newer, older)
    assert parse_version(older) < parse_version(newer)


@pytest.mark.parametrize("a, b", [
    ("2.17", "2.17.0"),
    ("2.17.60", "2.17.60+62740"),  # build metadata ignored
    ("2.17.60", "2.17.60 (2.62740)"),  # the platforms' "(build)" form
    ("2.017.60", "2.17.60"),
    ("v2.17.60", "2.17.60"),
])
def test_equal_versions(a, b):
    assert parse_version(a) == parse_version(b)
    assert not is_older(a, b) and not is_older(b, a)


@pytest.mark.parametrize("text", ["", " ", "latest", "2..1", "2.x", "2.17.", ".2", "2.17-",
                                  "1.2.3.4.5.6.7.8.9", "1234567890.1", "2.17 beta", "2,17",
                                  "x" * 65, "2.17.60 (build", "-1.2"])
def test_unparseable_versions_are_refused(text):
    with pytest.raises(VersionError):
        parse_version(text)


def test_not_a_string():
    with pytest.raises(VersionError):
        parse_version(2.17)


def test_unknown_installed_version_is_not_older():
    release = parse_version("3.0")
    assert older_or_unknown("2.9", release) is True
    assert older_or_unknown("3.0.0", release) is False
    assert older_or_unknown(None, release) is None
    assert older_or_unknown("", release) is None
    assert older_or_unknown("garbage", release) is None
