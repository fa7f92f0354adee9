"""Hostile or broken config files: each is a `file:line: message` (or `file: message`) issue,
found fast, never a traceback — the engine reads these files again on SIGHUP while it runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ivr_engine.config import ConfigError, load_config, parse_config, yamlsrc
from ivr_engine.config.yamlsrc import MAX_BYTES, MAX_DEPTH, load_source

ROOT = Path(__file__).resolve().parents[2]


def billion_laughs(levels: int = 8, width: int = 9) -> bytes:
    """The classic alias bomb: each line holds `width` aliases to the line above."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"a: &a [{','.join(['lol'] * width)}]"]
    for prev, name in zip(names, names[1:levels]):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * width)}]")
    return ("\n".join(lines) + "\n").encode()


# name -> (file contents, the single issue expected, with {f} standing for the file name)
BAD_INPUTS: dict[str, tuple[bytes, str]] = {
    "latin-1": ("engine:\n  ari:\n    password: caf\u00e9\n".encode("latin-1"),
                "{f}:3: not valid UTF-8: byte 0xe9 at column 18 (save the file as UTF-8)"),
    "deep-flow": (b"engine: " + b"[" * 5000 + b"]" * 5000 + b"\n",
                  f"{{f}}:1: nesting deeper than {MAX_DEPTH} levels"),
    "deep-block": (b"engine:\n  ari:\n    " + b"- " * 5000 + b"x\n",
                   f"{{f}}:3: nesting deeper than {MAX_DEPTH} levels"),
    "alias-bomb": (billion_laughs(),
                   "{f}:6: document too large after alias expansion (YAML aliases): more than "
                   "100000 repeated nodes"),
    "too-large": (b"# " + b"x" * MAX_BYTES + b"\n",
                  "{f}: file too large: over the 2 MiB limit"),
}


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path, {})
    return [str(i) for i in exc.value.issues]


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_file_is_one_issue_found_fast(tmp_path, name):
    data, expected = BAD_INPUTS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    start = time.perf_counter()
    issues = issues_of(path)
    elapsed = time.perf_counter() - start
    assert issues == [expected.format(f=path)]
    # ~0.3 s on a quiet 2-core machine, 2.3 s seen under load: the bound catches a parser
    # that walks the whole bomb (minutes), not scheduling noise
    assert elapsed < 10.0, f"{name}: {elapsed:.2f} s"


def test_the_bomb_is_small():
    assert 250 < len(billion_laughs()) < 350


def test_nesting_limit_is_exact():
    def depth_issues(levels: int) -> list[str]:  # the root mapping is the first level
        text = "a: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"
        return [i.message for i in load_source(text, "t.yaml", {}).issues]

    assert depth_issues(MAX_DEPTH) == []
    assert depth_issues(MAX_DEPTH + 1) == [f"nesting deeper than {MAX_DEPTH} levels"]


def test_alias_budget_counts_what_aliases_add(monkeypatch):
    monkeypatch.setattr(yamlsrc, "MAX_ALIAS_NODES", 22)
    text = "a: &x [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: *x\nc: *x\n"  # each alias adds 11 nodes
    src = load_source(text, "t.yaml", {})
    assert src.issues == [] and src.data["c"] == list(range(1, 11))
    src = load_source(text + "d: *x\n", "t.yaml", {})
    assert [str(i) for i in src.issues] == [
        "t.yaml:4: document too large after alias expansion (YAML aliases): more than 22 "
        "repeated nodes"]


def test_ordinary_aliases_still_work():
    text = """\
engine:
  ari: {password: secret}
messages:
  hello: &greeting {en: hello-world}
  again: *greeting
menus:
  main: {prompt: again}
access_points:
  - {type: phone-number, numbers: &nums ["+15551230000"], menu: main}
"""
    cfg = parse_config(text, "t.yaml", {})
    assert cfg.model.messages["again"] == cfg.model.messages["hello"]


def test_recursive_alias_is_refused():
    src = load_source("a: &x [1, *x]\n", "t.yaml", {})
    assert [str(i) for i in src.issues] == [
        "t.yaml:1: alias *x is inside the node it refers to (recursive alias)"]


@pytest.mark.parametrize("text, expected", [
    ("a:\n  b: !foo x\n",
     "t.yaml:2: a.b: cannot read this value: could not determine a constructor for the tag "
     "'!foo'"),
    ("a:\n  closed: [2026-13-01]\n",
     "t.yaml:2: a.closed.0: cannot read this value: month must be in 1..12"),
    ("a:\n  ? {[1]: 1}\n  : x\n", "t.yaml:2: a.{...}: keys must be strings"),
])
def test_values_yaml_cannot_build_are_issues_on_their_line(text, expected):
    assert [str(i) for i in load_source(text, "t.yaml", {}).issues] == [expected]


def test_unexpected_error_while_parsing_is_a_file_issue(tmp_path, monkeypatch):
    def explode(self):  # noqa: ANN001, ANN202
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(yamlsrc._BoundedLoader, "get_single_node", explode)
    path = tmp_path / "c.yaml"
    path.write_text("engine: {}\n")
    assert issues_of(path) == [
        f"{path}: cannot read the YAML (RecursionError: maximum recursion depth exceeded)"]


def test_endless_file_is_read_only_up_to_the_limit():
    assert issues_of(Path("/dev/zero")) == [
        "/dev/zero: file too large: over the 2 MiB limit"]


@pytest.mark.parametrize("path", sorted(
    [ROOT / "config" / "example.yaml", *(ROOT / "tests" / "fixtures").glob("*.yaml"),
     *(ROOT / "bench").glob("*.yaml")]), ids=lambda p: p.name)
def test_shipped_configs_pass_the_limits(path):
    src = load_source(path.read_text(encoding="utf-8"), str(path), {"IVR_ARI_PASSWORD": "x"})
    assert src.issues == []
