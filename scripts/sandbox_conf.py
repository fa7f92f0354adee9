"""Writes the sandbox Asterisk's configuration (scripts/asterisk-sandbox runs it): every file of
asterisk-conf/ and dialplan/*.conf, @IVR_*@ placeholders substituted from the environment.

    python3 scripts/sandbox_conf.py ETC_DIR                 # the single node (127.0.0.1)
    python3 scripts/sandbox_conf.py ETC_DIR --node a        # cluster node a (127.0.0.2)

A cluster node (scripts/cluster) is generated from the same files, never copied by hand, so
whatever is added to asterisk-conf/ (a transport, a listener) follows on every node:

* every address 127.0.0.1 the configs bind or announce (``bind``, ``bindaddr``,
  ``media_address``, a TLS listener ...) becomes the node's address; access lists (``permit``,
  ``deny``, ``match``, ``allowed_origins`` and any address with a mask) keep theirs: the engine
  and the tests still connect from 127.0.0.1;
* asterisk.conf: the run, log, spool, database and cache directories and the configuration
  directory get the node's suffix (``/var/run/asterisk-node-a`` ...); ``systemname =
  node-<n>`` (channel ids are ``<systemname>-<epoch>.<seq>``: unique across nodes) and an
  explicit ``entityid`` (by default it comes from the host's MAC: two nodes on one host
  would share it);
* asterisk-conf/node/<file> is appended to <file> (``@IVR_NODE_*@`` substituted): what only
  a node behind Kamailio has (the carrier trunk identified by Kamailio's address too).

Only the Python standard library: it runs before the engine's virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
SECRETS = ("IVR_ARI_PASSWORD", "IVR_AMI_PASSWORD", "IVR_SIP_PASSWORD")
SINGLE_ADDRESS = "127.0.0.1"
KAMAILIO_ADDRESS = "127.0.0.20"
#: Kamailio's app side (phone apps register there; the nodes ring the apps through it)
KAMAILIO_APPS = "127.0.0.21"
#: the cluster's nodes: name -> (address, entity id)
NODES = {"a": ("127.0.0.2", "02:00:00:00:00:0a"), "b": ("127.0.0.3", "02:00:00:00:00:0b")}
#: keys whose addresses say who may connect, not where Asterisk listens: never rewritten
ACL_KEYS = frozenset({"permit", "deny", "match", "allowed_origins", "contact_permit",
                      "contact_deny", "local_net", "contact_acl", "acl"})
#: asterisk.conf [directories] entries that are the node's own (the others are shared:
#: modules, sounds, keys, agi scripts, the read-only parts of /var/lib/asterisk)
OWN_DIRS = ("astetcdir", "astrundir", "astlogdir", "astspooldir", "astdbdir", "astcachedir")
_ADDRESS = re.compile(r"(?<![\d.])127\.0\.0\.1(?![\d/])")
_KEY = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*=>?")


def node_name(node: str) -> str:
    return f"node-{node}"


def rebind(text: str, address: str) -> str:
    """127.0.0.1 -> ``address`` on every line but access lists (see the module doc)."""
    out = []
    for line in text.splitlines(keepends=True):
        key = _KEY.match(line)
        if key is None or key.group(1).lower() not in ACL_KEYS:
            line = _ADDRESS.sub(address, line)
        out.append(line)
    return "".join(out)


def set_options(text: str, section: str, values: dict[str, str]) -> str:
    """``key = value`` for each of ``values`` in ``[section]``: the line replaced where the key
    is, else added at the end of the section (the section must exist)."""
    lines = text.splitlines(keepends=True)
    left = dict(values)
    out: list[str] = []
    current = None
    for line in lines:
        head = re.match(r"^\s*\[([^\]]+)\]", line)
        if head:
            if current == section:
                out.extend(f"{k} = {v}\n" for k, v in left.items())
                left = {}
            current = head.group(1)
        elif current == section:
            key = _KEY.match(line)
            if key and key.group(1) in left:
                name = key.group(1)
                arrow = "=>" if "=>" in line.split(";")[0] else "="
                line = f"{name} {arrow} {left.pop(name)}\n"
        out.append(line)
    if current == section and left:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.extend(f"{k} = {v}\n" for k, v in left.items())
        left = {}
    if left:
        raise ValueError(f"no [{section}] section to set {', '.join(left)} in")
    return "".join(out)


def _directories(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        head = re.match(r"^\s*\[([^\]]+)\]", line)
        if head:
            current = head.group(1)
            continue
        m = re.match(r"^\s*(\w+)\s*=>?\s*([^;\s]+)", line)
        if current == "directories" and m:
            found[m.group(1)] = m.group(2)
    return found


def node_asterisk_conf(text: str, node: str) -> str:
    """asterisk.conf of a node: its own directories, system name and entity id."""
    _, entity = NODES[node]
    dirs = _directories(text)
    missing = [d for d in OWN_DIRS if d not in dirs]
    if missing:
        raise ValueError(f"asterisk.conf [directories] lacks {', '.join(missing)}")
    own = {d: f"{dirs[d].rstrip('/')}-{node_name(node)}" for d in OWN_DIRS}
    text = set_options(text, "directories", own)
    return set_options(text, "options", {"systemname": node_name(node), "entityid": entity})


def substitute(text: str, values: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"unknown placeholder @{m.group(1)}@")
        return values[m.group(1)]
    return re.sub(r"@(IVR_[A-Z_]+)@", one, text)


def render(node: str | None, conf_dir: pathlib.Path = REPO / "asterisk-conf",
           dialplan_dir: pathlib.Path = REPO / "dialplan",
           env: dict[str, str] | os._Environ = os.environ) -> dict[str, str]:
    """{file name: text} of the single node (``node`` None) or of cluster node ``node``."""
    values = {k: env[k] for k in SECRETS}
    files = sorted(p for p in conf_dir.iterdir() if p.is_file())
    files += sorted(dialplan_dir.glob("*.conf"))
    out = {src.name: substitute(src.read_text(), values) for src in files}
    if node is None:
        return out
    address, _ = NODES[node]
    values.update(IVR_NODE_NAME=node_name(node), IVR_NODE_ADDRESS=address,
                  IVR_KAMAILIO_ADDRESS=KAMAILIO_ADDRESS, IVR_KAMAILIO_APPS=KAMAILIO_APPS)
    out = {name: rebind(text, address) for name, text in out.items()}
    out["asterisk.conf"] = node_asterisk_conf(out["asterisk.conf"], node)
    overlay = conf_dir / "node"
    for extra in sorted(overlay.glob("*.conf")) if overlay.is_dir() else ():
        base = out.get(extra.name, "")
        if base and not base.endswith("\n"):
            base += "\n"
        out[extra.name] = base + substitute(extra.read_text(), values)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("etc", type=pathlib.Path)
    parser.add_argument("--node", choices=sorted(NODES))
    args = parser.parse_args(argv)
    try:
        files = render(args.node)
    except (KeyError, ValueError) as exc:
        print(f"sandbox_conf: {exc}", file=sys.stderr)
        return 1
    args.etc.mkdir(parents=True, exist_ok=True)
    for old in args.etc.iterdir():  # only our files
        if old.is_file() or old.is_symlink():
            old.unlink()
    for name, text in files.items():
        fd = os.open(args.etc / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
