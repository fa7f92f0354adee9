"""The tree as a graph (pure DOT builder, ``console/dot.py``), its drawing by Graphviz
(``console/graphviz.py``: off the loop, bounded, cached per config generation), the "try it"
walk and ``ivr-engine graph``."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest

from ivr_engine.cli import main
from ivr_engine.config import load_config, parse_config
from ivr_engine.console.dot import Scope, ScopeError, scopes, tree_dot
from ivr_engine.console.graphviz import GraphCache, dot_path, render_svg
from ivr_engine.console.trees import walk

EXAMPLE = "config/example.yaml"
PARIS = ZoneInfo("Europe/Paris")
MONDAY_MORNING = dt.datetime(2026, 11, 23, 10, 15, tzinfo=PARIS)  # office-hours open
SUNDAY = dt.datetime(2026, 11, 22, 10, 15, tzinfo=PARIS)  # closed
needs_dot = pytest.mark.skipif(dot_path() is None, reason="Graphviz dot (scripts/install)")


@pytest.fixture(scope="module")
def cfg():
    import os
    os.environ.setdefault("IVR_ARI_PASSWORD", "unused")
    return load_config(EXAMPLE)


def nodes(text: str, cls: str) -> set[str]:
    return set(re.findall(rf'"([^"]+)" \[id="[^"]+", [^\n]*class="{cls}"', text))


def test_a_node_per_menu_and_per_entry(cfg):
    text = tree_dot(cfg, Scope(), MONDAY_MORNING)
    assert nodes(text, "menu") == {f"m-{m}" for m in cfg.tree.menus}
    assert len(nodes(text, "entry")) == len(cfg.model.access_points)
    assert '"m-main" -> "m-sales"' in text and 'label=" 1 "' in text
    # dial-0: a queue leaves the menu (dashed); parent/top go back (dashed, no rank)
    assert re.search(r'"m-main" -> "d-queue-operator" \[[^\]]*label=" 0 ", style="dashed"', text)
    assert re.search(r'"m-billing" -> "m-main" \[[^\]]*label=" 0 ", style="dashed", '
                     r'constraint="false"', text)
    assert "* back to sales · # repeats · 0 → main" in text  # billing's keys, as text
    # after the last invalid key / silence; after hours; a user's no-answer
    assert re.search(r'"m-main" -> "d-queue-operator" \[[^\]]*style="dotted", label=" 3 '
                     r'invalid /\\n3 silences "', text)
    assert re.search(r'"m-sales" -> "d-voicemail-1000@default" \[[^\]]*after hours', text)
    assert re.search(r'"d-user-alice" -> "d-voicemail-1000@default" \[[^\]]*no answer', text)
    for kind in ("queue", "voicemail", "endpoint", "user", "callback", "message-then-hangup"):
        assert f'class="dest {kind}"' in text, kind


def test_the_open_now_state_follows_the_time(cfg):
    assert "office-hours: OPEN now" in tree_dot(cfg, Scope(), MONDAY_MORNING)
    closed = tree_dot(cfg, Scope(), SUNDAY)
    assert "office-hours: CLOSED now" in closed and 'fillcolor="#e5e7eb"' in closed


def test_scopes_show_one_entry_or_one_app(cfg):
    assert [str(s) for s in scopes(cfg)] == [
        "all entries", "entry +15551230000", "entry +33140000000", "entry +15551239999",
        "app customer", "app staff"]
    hotline = tree_dot(cfg, Scope("entry", "+15551239999"), MONDAY_MORNING)
    assert nodes(hotline, "menu") == {"m-hotline"}
    main = tree_dot(cfg, Scope("entry", "15551230000"), MONDAY_MORNING)  # without the +
    assert nodes(main, "menu") == {"m-main", "m-sales", "m-billing", "m-support"}
    app = tree_dot(cfg, Scope("app", "customer"), MONDAY_MORNING)
    # both of the app's structures (IVR and in-app), never main's
    assert nodes(app, "menu") == {"m-customer", "m-customer-billing", "m-customer-app"}
    fallback = tree_dot(cfg, Scope("entry", "+17144505656"), MONDAY_MORNING)  # app fallback
    assert nodes(fallback, "menu") == {"m-customer", "m-customer-billing"}
    for bad in (Scope("entry", "+999"), Scope("app", "nope"), Scope("x", "y")):
        with pytest.raises(ScopeError):
            tree_dot(cfg, bad, MONDAY_MORNING)


@needs_dot
async def test_hostile_labels_are_escaped_for_dot_and_svg():
    text = open(EXAMPLE).read().replace("name: Hotline", 'name: "Hot\\"line\\\\ <script>"')
    cfg = parse_config(text, EXAMPLE, {"IVR_ARI_PASSWORD": "x"})
    svg = (await render_svg(tree_dot(cfg, Scope(), MONDAY_MORNING))).decode()
    assert svg.startswith("<svg") and "<script" not in svg
    assert "Hot&quot;line\\ &lt;script&gt;" in svg or 'Hot"line\\ &lt;script&gt;' in svg


def test_the_walk_is_the_simulator_with_its_ids(cfg):
    w = walk(cfg, "+15551230000", "1 2 1", "2026-11-23T10:15", MONDAY_MORNING)
    assert w["path"] == ["main", "sales", "billing"]
    assert w["destination"] == {"type": "queue", "target": "billing"}
    assert w["ids"] == ["m-main", "m-sales", "m-billing", "d-queue-billing"]
    closed = walk(cfg, "+15551230000", "1", "2026-11-22T10:15", MONDAY_MORNING)
    assert closed["destination"] == {"type": "voicemail", "target": "1000@default"}
    app = walk(cfg, "app:customer", "2", None, MONDAY_MORNING)
    assert app["path"] == ["customer", "customer-billing"]
    with pytest.raises(ValueError, match="invalid keys"):
        walk(cfg, "+15551230000", "1 x", None, MONDAY_MORNING)
    with pytest.raises(ValueError, match="ISO 8601"):
        walk(cfg, "+15551230000", "1", "tuesday", MONDAY_MORNING)


async def test_drawings_are_cached_per_generation_and_drawn_once_at_a_time():
    running = []

    async def slow_render(text: str) -> bytes:
        running.append(1)
        assert len(running) == 1  # never two dot processes at once
        await asyncio.sleep(0.05)
        running.pop()
        return f"<svg>{len(text)}</svg>".encode()

    cache, cfg1, cfg2 = GraphCache(slow_render), object(), object()
    got = await asyncio.gather(*(cache.svg(cfg1, "all", lambda: "x") for _ in range(5)))
    assert set(got) == {b"<svg>1</svg>"} and cache.drawn == 1
    await cache.svg(cfg1, "app:customer", lambda: "yy")
    assert cache.drawn == 2
    assert await cache.svg(cfg2, "all", lambda: "zzz") == b"<svg>3</svg>"  # a reload
    assert cache.drawn == 3
    assert cache.generation(cfg1) != cache.generation(cfg2)


@needs_dot
async def test_dot_past_its_time_is_killed():
    text = "digraph g {\n" + "\n".join(f"n{i} -> n{i * 7 % 3001};" for i in range(3000)) + "}"
    with pytest.raises(TimeoutError):
        await render_svg(text, timeout=0.01)


@needs_dot
def test_the_graph_command(cfg, tmp_path, capsys):
    out = tmp_path / "tree.svg"
    assert main(["graph", EXAMPLE, "--app", "customer", "-o", str(out)]) == 0
    svg = out.read_text()
    ids = {e.get("id") for e in ElementTree.fromstring(svg).iter() if e.get("id")}
    assert svg.startswith("<?xml") and "m-customer" in ids and "m-main" not in ids
    assert main(["graph", EXAMPLE, "--entry", "+15551239999", "-o", str(tmp_path / "t.dot")
                 ]) == 0
    assert (tmp_path / "t.dot").read_text().startswith("digraph ivr {")
    assert main(["graph", EXAMPLE, "--entry", "+999", "-o", str(out)]) == 2
    assert "no access point takes the number '+999'" in capsys.readouterr().err
