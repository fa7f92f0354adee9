"""Asterisk nodes in the config: ``engine.nodes`` (a list of {name, ari, ami}) and the one-node
shorthand ``engine.ari`` / ``engine.ami`` every config before it used; what a node must say it
is (``node.identity_problem``); the generated configs of the cluster (scripts/)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from ivr_engine.config import ConfigError, load_config, parse_config
from ivr_engine.config.model_nodes import SHORTHAND_NODE, node_configs
from ivr_engine.node import identity_problem

REPO = Path(__file__).resolve().parents[2]
FIXTURES = sorted((REPO / "tests" / "fixtures").glob("*.yaml")) + [REPO / "config" /
                                                                   "example.yaml"]

TREE = """\
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

TWO_NODES = """\
engine:
  nodes:
    - name: node-a
      ari: {url: "http://127.0.0.2:8088", password: pa}
      ami: {host: 127.0.0.2, password: ma}
    - name: node-b
      ari:
        url: http://127.0.0.3:8088
        password: pb
        app: other-app
""" + TREE


def _script(name: str):
    path = REPO / "scripts" / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"_scripts_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(textwrap.dedent(text), "t.yaml", {})
    return [str(i) for i in exc.value.issues if i.severity == "error"]


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_shipped_config_keeps_its_one_node(path):
    env = {"IVR_ARI_PASSWORD": "x", "IVR_API_LISTEN": "127.0.0.1:1"}
    (node,) = node_configs(load_config(path, env).engine)
    assert node.name == SHORTHAND_NODE and node.system_name is None
    assert node.ari.password.get_secret_value() in ("x", "unused-by-the-sms-tests")


def test_shorthand_is_one_unchecked_node_with_its_ami():
    cfg = parse_config("engine:\n  ari: {password: s, url: 'http://10.0.0.5:8088/'}\n"
                       "  ami: {host: 10.0.0.5, password: m}\n" + TREE, "t.yaml", {})
    (node,) = node_configs(cfg.engine)
    assert (node.name, node.system_name, node.ari.url) == ("asterisk", None,
                                                           "http://10.0.0.5:8088")
    assert (node.ami.host, node.ami.password.get_secret_value()) == ("10.0.0.5", "m")
    no_ami = parse_config("engine:\n  ari: {password: s}\n" + TREE, "t.yaml", {})
    assert node_configs(no_ami.engine)[0].ami.password is None  # no AMI, as before


def test_node_list_names_each_node_by_its_system_name():
    a, b = node_configs(parse_config(TWO_NODES, "t.yaml", {}).engine)
    assert (a.name, a.system_name, a.ari.url, a.ari.app) == ("node-a", "node-a",
                                                            "http://127.0.0.2:8088", "ivr-engine")
    assert a.ami.host == "127.0.0.2" and a.ami.password.get_secret_value() == "ma"
    assert (b.name, b.ari.app, b.ami.password) == ("node-b", "other-app", None)


def test_both_forms_at_once_are_refused_at_their_lines():
    text = TWO_NODES.replace("engine:\n", "engine:\n  ari: {password: x}\n  ami: {port: 5039}\n")
    assert errors(text) == [
        "t.yaml:2: engine.ari: engine.ari is the one-node shorthand of engine.nodes: use one "
        "or the other (move it into a node of engine.nodes)",
        "t.yaml:3: engine.ami: with engine.nodes each node has its own ami: move it into its "
        "node"]


def test_no_asterisk_at_all_is_refused():
    assert errors("engine:\n  timezone: UTC\n" + TREE) == [
        "t.yaml:1: engine: no Asterisk: set engine.ari (one node) or engine.nodes (a list of "
        "{name, ari, ami})"]
    assert errors("engine:\n  nodes: []\n" + TREE)[0].startswith("t.yaml:1: engine: no Asterisk")


def test_duplicate_names_urls_and_amis_name_their_line():
    text = TWO_NODES.replace("name: node-b", "name: node-a").replace(
        "url: http://127.0.0.3:8088", "url: http://127.0.0.2:8088").replace(
        "        app: other-app\n", "      ami: {host: 127.0.0.2, password: mb}\n")
    assert errors(text) == [
        "t.yaml:6: engine.nodes.1.name: node 'node-a' is already node 0; each node's name is "
        "its own system name",
        "t.yaml:8: engine.nodes.1.ari.url: http://127.0.0.2:8088 is already the ARI of node 0; "
        "each node is its own Asterisk",
        "t.yaml:10: engine.nodes.1.ami: 127.0.0.2:5038 is already the AMI of node 0"]


def test_a_node_without_name_or_with_a_bad_one():
    assert errors(TWO_NODES.replace("    - name: node-a\n      ari:", "    - ari:")) == [
        "t.yaml:3: engine.nodes.0.name: required key is missing"]
    bad = errors(TWO_NODES.replace("name: node-b", "name: 'node b'"))
    assert bad == ["t.yaml:6: engine.nodes.1.name: 'node b' is not a valid name (letters, "
                   "digits and . _ + -, starting with a letter or digit)"]
    assert errors(TWO_NODES.replace("name: node-b", "name: node-b\n      sip: x")) == [
        "t.yaml:7: engine.nodes.1.sip: unknown key (check the spelling; `ivr-engine schema` "
        "lists every key)"]


# ------------------------------------------------------------------ a node's identity


def test_identity_of_a_listed_node():
    info = {"system": {"entity_id": "02:00:00:00:00:0a"}, "config": {"name": "node-a"}}
    assert identity_problem(info, "node-a") is None
    reason, message = identity_problem(info, "node-b")
    assert reason == "wrong-system-name"
    assert "'node-a', not 'node-b'" in message
    for nameless in ({"config": {"name": ""}}, {"config": {}}, {}, None):
        reason, message = identity_problem(nameless, "node-a")
        assert reason == "no-system-name" and "systemname = node-a" in message
    # the shorthand's node is whatever answers (a single Asterisk may have no system name)
    assert identity_problem({"config": {"name": ""}}, None) is None


# ------------------------------------------------------------------ generated cluster configs

SECRETS = {"IVR_ARI_PASSWORD": "ari", "IVR_AMI_PASSWORD": "ami", "IVR_SIP_PASSWORD": "sip"}


def test_single_node_config_is_the_files_with_their_secrets():
    conf = _script("sandbox_conf")
    files = conf.render(None, env=SECRETS)
    ours = REPO / "asterisk-conf"
    assert set(files) == {p.name for p in ours.iterdir() if p.is_file()} | {
        p.name for p in (REPO / "dialplan").glob("*.conf")}
    assert files["manager.conf"] == (ours / "manager.conf").read_text().replace(
        "@IVR_AMI_PASSWORD@", "ami")
    assert "127.0.0.2" not in "".join(files.values())
    assert "[kamailio]" not in files["pjsip.conf"]  # only a cluster node has it


def test_node_config_rebinds_addresses_and_keeps_access_lists(tmp_path):
    conf = _script("sandbox_conf")
    src = tmp_path / "asterisk-conf"
    shutil.copytree(REPO / "asterisk-conf", src)
    # another helper adds a listener: the node's copy must bind it on the node's address
    with (src / "pjsip.conf").open("a") as f:
        f.write("\n[transport-tls]\ntype = transport\nprotocol = tls\nbind = 127.0.0.1:5061\n")
    files = conf.render("b", conf_dir=src, dialplan_dir=REPO / "dialplan", env=SECRETS)
    pjsip = files["pjsip.conf"]
    assert "bind = 127.0.0.3:5060" in pjsip and "bind = 127.0.0.3:5061" in pjsip
    assert "media_address = 127.0.0.3" in pjsip
    assert not re.search(r"127\.0\.0\.1(?!\d)", pjsip)
    assert "match = 127.0.0.10\n" in pjsip  # the trunks' addresses are theirs
    assert "[carrier-via-kamailio]\ntype = identify\nendpoint = carrier\nmatch = 127.0.0.20" \
        in pjsip  # the overlay
    # the node rings the apps through Kamailio's app side (engine.registrar.dial)
    assert "[kamailio]\ntype = aor\ncontact = sip:127.0.0.21:5060" in pjsip
    assert "[kamailio]\ntype = endpoint" in pjsip
    assert "bindaddr = 127.0.0.3" in files["http.conf"]
    manager = files["manager.conf"]
    assert "bindaddr = 127.0.0.3" in manager
    assert "permit = 127.0.0.1/255.255.255.255" in manager  # who may connect: unchanged
    assert "http://127.0.0.1:8088" in files["ari.conf"]  # allowed_origins: unchanged
    ast = files["asterisk.conf"]
    for line in ("astetcdir => /etc/asterisk-node-b", "astrundir => /var/run/asterisk-node-b",
                 "astlogdir => /var/log/asterisk-node-b", "astdbdir => /var/lib/asterisk-node-b",
                 "astspooldir => /var/spool/asterisk-node-b", "systemname = node-b",
                 "entityid = 02:00:00:00:00:0b", "mindtmfduration = 0",
                 "astdatadir => /usr/share/asterisk", "astmoddir => "):
        assert line in ast, line
    assert "systemname = ivr-sandbox" not in ast


def test_kamailio_and_engine_configs_for_the_cluster(tmp_path):
    cluster = _script("cluster_conf")
    files = cluster.kamailio_files(tmp_path, ping_interval=5, app_password="s3cret-pw")
    assert not re.search("@IVR_[A-Z_]+@", files["kamailio.cfg"])
    # the app side: its own address, the apps' digest password, evapi to the engines
    assert "listen=udp:127.0.0.21:5060" in files["kamailio.cfg"]
    assert 'pv_www_authenticate("$td", "s3cret-pw", "0")' in files["kamailio.cfg"]
    assert 'modparam("evapi", "bind_addr", "127.0.0.20:8448")' in files["kamailio.cfg"]
    assert 'modparam("dispatcher", "ds_ping_interval", 5)' in files["kamailio.cfg"]
    assert "listen=udp:127.0.0.20:5060" in files["kamailio.cfg"]
    assert files["dispatcher.list"].splitlines()[1:] == [
        "1 sip:127.0.0.2:5060 0 0 duid=node-a", "1 sip:127.0.0.3:5060 0 0 duid=node-b"]
    import yaml

    source = yaml.safe_load((REPO / "config" / "example.yaml").read_text())
    doc = cluster.engine_config(source, "b", "127.0.0.1:8082", "postgresql://x@/db")
    out = tmp_path / "engine-b.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    cfg = load_config(out, {"IVR_ARI_PASSWORD": "p", "IVR_AMI_PASSWORD": "m"})
    (node,) = node_configs(cfg.engine)
    assert (node.name, node.system_name, node.ari.url, node.ami.host) == (
        "node-b", "node-b", "http://127.0.0.3:8088", "127.0.0.3")
    assert node.ari.password.get_secret_value() == "p"  # ${IVR_ARI_PASSWORD} kept for the engine
    assert cfg.engine.api.listen == "127.0.0.1:8082"
    assert cfg.engine.database_url == "postgresql://x@/db"
    r = cfg.engine.registrar
    assert (r.kind, r.events, r.rpc, r.dial) == ("kamailio", "127.0.0.20:8448",
                                                 "http://127.0.0.20:5081/RPC",
                                                 "PJSIP/{aor}@kamailio")
    original = load_config(REPO / "config" / "example.yaml", {"IVR_ARI_PASSWORD": "p"})
    assert cfg.model.model_dump(exclude={"engine"}) == original.model.model_dump(
        exclude={"engine"})  # the IVR, the apps, everything else: the same


def test_only_a_cluster_node_refuses_for_the_next_node():
    """A node whose engine is away refuses Kamailio's INVITEs marked "another node remains"
    (from-pstn -> ivr-engine-next-node, only when the global IVR_NEXT_NODE_FROM is set): the
    single sandbox has no such global, so its from-pstn goes to the fallback as before."""
    conf = _script("sandbox_conf")
    single = conf.render(None, env=SECRETS)
    assert "IVR_NEXT_NODE_FROM =" not in single["extensions.conf"]
    assert "IVR_NEXT_NODE_FROM" not in "".join(
        text for name, text in single.items() if name != "extensions_ivr_engine.conf")
    for node in ("a", "b"):
        ext = conf.render(node, env=SECRETS)["extensions.conf"]
        assert ext.rstrip().endswith("[globals]\nIVR_NEXT_NODE_FROM = 127.0.0.20"), ext
    dialplan = (REPO / "dialplan" / "extensions_ivr_engine.conf").read_text()
    entry = dialplan.split("[from-pstn]\n", 1)[1].split("\n\n", 1)[0]
    steps = [re.sub(r"^(exten => _\S+?,1|\s*same => n),", "", line)
             for line in entry.splitlines() if not line.startswith(";")]
    # Stasis first (after the entry watchdog): nothing is answered before a node may still
    # refuse the call
    assert steps[0].startswith("NoOp(")
    assert steps[1] == "Set(TIMEOUT(absolute)=${IVR_ENTRY_WATCHDOG})"
    assert steps[2].startswith("Stasis(ivr-engine,pstn,")
    assert '"${IVR_NEXT_NODE_FROM}" != ""]?ivr-engine-next-node,s,1)' in steps[3]
    assert steps[4] == 'GotoIf($["${STASISSTATUS}" != "SUCCESS"]?ivr-engine-fallback,s,1)'
    refuse = dialplan.split("[ivr-engine-next-node]\n", 1)[1].split("\n\n", 1)[0]
    assert "Answer" not in refuse and "Progress" not in refuse and "Playback" not in refuse
    assert refuse.rstrip().endswith("PJSIPHangup(503)")
    for guard in ('"${CHANNEL(state)}" = "Up"', '!= "${IVR_NEXT_NODE_FROM}"',
                  '"${PJSIP_HEADER(read,X-IVR-Next-Node)}" != "1"'):
        assert guard in refuse, guard


def test_kamailio_marks_an_invite_only_when_another_node_remains(tmp_path):
    cfg = _script("cluster_conf").kamailio_files(tmp_path, app_password="pw")["kamailio.cfg"]
    carrier = cfg.split('if (is_method("INVITE") && $si == "127.0.0.10") {', 1)[1]
    # a carrier cannot set the mark: removed before anything else
    assert carrier.index('remove_hf("X-IVR-Next-Node")') < carrier.index("route(DISPATCH)")
    branch = cfg.split("branch_route[NODE_BRANCH] {", 1)[1].split("\n}", 1)[0]
    assert "$xavp(_dsdst_[1]=>uri) != $null" in branch
    assert 'append_hf("X-IVR-Next-Node: 1\\r\\n")' in branch
    # armed for the first node and for each next one
    assert cfg.count('t_on_branch("NODE_BRANCH")') == 2
