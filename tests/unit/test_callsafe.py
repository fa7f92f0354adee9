"""Issue 17, the pure and unit parts: the watchdog follows the prompt's real length (from the
sound files or learned), transfer requests survive a requester that gives up, what a call
held is forgotten when it ends, lost hand-offs are reconciled, the call records are drained
at shutdown, hand-off names never collide with Asterisk's special extensions."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
import wave
from pathlib import Path

import pytest

from ivr_engine.ari import ChannelDispatcher
from ivr_engine.calls.manager import Calls
from ivr_engine.calls.phase import TransferRequest
from ivr_engine.calls.registry import CallInfo, CallRegistry
from ivr_engine.calls.session import CallServices
from ivr_engine.calls.sounds import SoundLengths
from ivr_engine.config import ConfigError, load_config
from ivr_engine.ivr.actions import Play, SetVariables
from ivr_engine.ivr.destinations import Destination, parse_destination, parse_dial0
from ivr_engine.ivr.runtime import WATCHDOG_VARIABLE, IvrRuntime, Watchdog
from ivr_engine.wakeup.watcher import ContactWatcher

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
T0 = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def armed(actions) -> list[str]:
    return [v for a in actions if isinstance(a, SetVariables) for n, v in a.variables
            if n == WATCHDOG_VARIABLE]


def one(actions, kind):
    [found] = [a for a in actions if isinstance(a, kind)]
    return found


@pytest.fixture(scope="module")
def cfg():
    return load_config(FIXTURES / "callsafe.yaml", {})


# ------------------------------------------------------------------ the watchdog (pure)

def lengths(table: dict[str, float]):
    def length(media: tuple[str, ...], language: str) -> float | None:
        parts = [table.get(m) for m in media]
        return None if None in parts else sum(parts)  # type: ignore[arg-type]
    return length


def test_a_prompt_of_known_length_arms_its_length_plus_the_grace(cfg):
    wd = Watchdog(3, 120, lengths({"sound:digits/1": 0.6}))
    s = IvrRuntime(cfg.tree, "top", "en", "did:300", "+1555", watchdog=wd)
    acts = s.start(T0)
    assert armed(acts) == ["3.6"]  # not 120: the caller of a dead engine waits 3 s, not 119
    assert acts.index(one(acts, Play)) > max(i for i, a in enumerate(acts)
                                             if isinstance(a, SetVariables))  # variable first
    wait = s.playback_finished(one(acts, Play).token, at(0.6))
    assert armed(wait) == ["23"]  # the menu's 20 s wait + 3 s, as before


def test_unknown_lengths_keep_prompt_seconds_and_its_half_rule(cfg):
    s = IvrRuntime(cfg.tree, "talks", "en", "did:301", "+1555",
                   watchdog=Watchdog(3, 120, lengths({})))
    assert armed(s.start(T0)) == ["120"]
    assert armed(s.digit("#", at(30))) == []  # 90 s left: no request
    assert armed(s.digit("#", at(61))) == ["120"]


def test_a_deadline_already_within_the_grace_costs_no_request(cfg):
    wd = Watchdog(3, 120, lengths({"sound:digits/1": 10.0}))
    s = IvrRuntime(cfg.tree, "top", "en", "did:300", "+1555", watchdog=wd)
    p = one(s.start(T0), Play)  # armed 13 s: until 13
    assert armed(s.playback_finished(p.token, at(10))) == ["23"]  # the wait: until 33
    assert armed(s.digit("#", at(17))) == []  # the prompt again needs 30: 33 is near enough


def test_a_barge_in_into_a_shorter_prompt_costs_no_request(cfg):
    media = {"sound:digits/1": 10.0, "recording:ivr-callsafe-no-such-recording": 2.0}
    s = IvrRuntime(cfg.tree, "top", "en", "did:300", "+1555", watchdog=Watchdog(
        3, 120, lengths(media)))
    s.start(T0)  # armed until 13
    acts = s.digit("5", at(1))  # stops top's prompt: menu broken's 2 s prompt needs 6 s
    assert armed(acts) == [] and one(acts, Play)  # the key costs stop + play, as before


def test_a_barge_in_rearms_when_the_deadline_would_cut_the_prompt(cfg):
    wd = Watchdog(3, 120, lengths({"sound:digits/1": 10.0}))
    s = IvrRuntime(cfg.tree, "top", "en", "did:300", "+1555", watchdog=wd)
    s.start(T0)  # armed until 13
    assert armed(s.digit("#", at(5))) == ["13"]  # the prompt again needs 18: re-armed


def test_the_watchdog_window_rules():
    wd = Watchdog(3, 120, lengths({"m": 10.0}))
    assert wd.prompt(T0, None, ("m",), "en") == 13
    assert wd.prompt(T0, at(13), ("m",), "en") is None  # exactly what is needed
    assert wd.prompt(T0, at(16), ("m",), "en") is None  # up to the grace later: kept
    assert wd.prompt(T0, at(16.5), ("m",), "en") == 13  # later than that: shortened
    assert wd.prompt(T0, at(12.9), ("m",), "en") == 13  # would cut the prompt: extended
    # a barge-in keeps any later deadline (no request on the key's way); never a shorter one
    assert wd.prompt(T0, at(40), ("m",), "en", barge_in=True) is None
    assert wd.prompt(T0, at(12.9), ("m",), "en", barge_in=True) == 13
    assert wd.prompt(T0, at(61), ("x",), "en") is None  # unknown: more than half of 120 left
    assert wd.prompt(T0, at(59), ("x",), "en") == 120
    assert wd.wait(5) == 8


# ------------------------------------------------------------------ prompt lengths (shell)

def _sounds(tmp_path: Path) -> Path:
    root = tmp_path / "sounds"
    (root / "en" / "digits").mkdir(parents=True)
    (root / "fr" / "digits").mkdir(parents=True)
    (root / "en" / "digits" / "1.gsm").write_bytes(b"\0" * 33 * 50)  # 1 s of GSM
    (root / "en" / "digits" / "2.ulaw").write_bytes(b"\0" * 4000)  # 0.5 s of mu-law
    (root / "fr" / "digits" / "1.sln16").write_bytes(b"\0" * 64000)  # 2 s at 16 kHz
    with wave.open(str(root / "en" / "hello.wav"), "wb") as w:  # 1.5 s of 8 kHz PCM
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<h", 0) * 12000)
    (root / "en" / "hello.gsm").write_bytes(b"\0" * 33 * 75)
    return root


def test_lengths_from_the_sound_files(tmp_path):
    root = str(_sounds(tmp_path))
    s = SoundLengths()
    assert s.length(("sound:digits/1",), "en", root) == pytest.approx(1.0)
    assert s.length(("sound:digits/1", "sound:digits/2"), "en", root) == pytest.approx(1.5)
    assert s.length(("digits:121",), "en", root) == pytest.approx(2.5)
    assert s.length(("sound:hello",), "en", root) == pytest.approx(1.5)  # the wav, its header
    # Asterisk's language fallback: fr, then fr's base, then en
    assert s.length(("sound:digits/1",), "fr_CA", root) == pytest.approx(2.0)
    assert s.length(("sound:digits/2",), "fr", root) == pytest.approx(0.5)
    # anything unknown makes the whole prompt unknown
    assert s.length(("sound:digits/1", "sound:nope"), "en", root) is None
    assert s.length(("number:12",), "en", root) is None
    assert s.length(("sound:../../etc/passwd",), "en", root) is None
    assert s.length(("sound:digits/1",), "en", None) is None  # no directory: learned only


def test_lengths_learned_from_plays_the_longest_kept(tmp_path):
    s = SoundLengths()
    media = ("tone:ring;tonezone=fr", "number:12")
    assert s.length(media, "en") is None
    s.learn(media, "en", 4.2)
    s.learn(media, "en", 3.9)
    assert s.length(media, "en") == 4.2
    assert s.length(media, "fr") is None
    # a file that can be read wins over what was learned
    root = str(_sounds(tmp_path))
    s.learn(("sound:digits/1",), "en", 9.0)
    assert s.length(("sound:digits/1",), "en", root) == pytest.approx(1.0)


def test_links_are_followed_inside_asterisks_root(tmp_path):
    """Debian's sounds/en is an absolute link (/etc/alternatives/...): from outside a chroot
    it must be followed inside the chroot, never on the engine's own filesystem."""
    root = tmp_path / "chroot"
    real = root / "usr/share/asterisk/sounds/en_US_f_Allison/digits"
    real.mkdir(parents=True)
    (real / "1.gsm").write_bytes(b"\0" * 33 * 50)
    (root / "etc/alternatives").mkdir(parents=True)
    (root / "etc/alternatives/asterisk-prompt-en").symlink_to(
        "/usr/share/asterisk/sounds/en_US_f_Allison")
    (root / "usr/share/asterisk/sounds/en").symlink_to("/etc/alternatives/asterisk-prompt-en")
    (root / "usr/share/asterisk/sounds/fr").symlink_to("en_US_f_Allison")  # relative
    s = SoundLengths()
    media = ("sound:digits/1",)
    assert s.length(media, "en", "/usr/share/asterisk/sounds", str(root)) == pytest.approx(1)
    assert s.length(media, "fr", "/usr/share/asterisk/sounds", str(root)) == pytest.approx(1)
    assert s.length(media, "en", str(root / "usr/share/asterisk/sounds")) is None  # outside
    (root / "loop").symlink_to("/loop")
    assert s.length(("sound:/loop/x",), "en", "/usr/share/asterisk/sounds", str(root)) is None


def test_the_sandbox_sounds_give_the_long_prompts_length():
    root = Path("/var/cache/ivr-engine/asterisk-sid")
    if not (root / "usr/share/asterisk/sounds").exists():
        pytest.skip("the sandbox Asterisk is not built here")
    cfg = load_config(FIXTURES / "callsafe.yaml", {})
    media = cfg.tree.messages.resolve("long", "en", None).media
    seconds = SoundLengths().length(media, "en", "/usr/share/asterisk/sounds", str(root))
    assert seconds is not None and 8 < seconds < 20, seconds


# ------------------------------------------------------------------ transfer requests

async def test_a_request_given_up_before_it_is_claimed_is_never_acted_on():
    req = TransferRequest(Destination("queue", "billing"))
    assert req.withdraw()
    assert not req.claim()  # the call skips it


async def test_a_claimed_request_cannot_be_withdrawn_and_settles_once():
    req = TransferRequest(Destination("queue", "billing"))
    assert req.claim() and not req.claim()
    assert not req.withdraw()
    req.settle("moved")
    req.settle("ended")  # later answers never raise, never overwrite
    assert req.outcome is not None and req.outcome.moved and req.settled.is_set()


async def test_a_requester_that_stops_waiting_breaks_nothing():
    req = TransferRequest(Destination("queue", "billing"))
    waiter = asyncio.ensure_future(asyncio.wait_for(req.settled.wait(), 0.01))
    with pytest.raises(TimeoutError):
        await waiter  # the requester gave up: the event is still usable
    req.claim()
    req.settle("moved")  # the old code's future.set_result raised InvalidStateError here
    assert req.outcome is not None and req.outcome.moved


# ------------------------------------------------------------------ nothing held

def test_the_dispatcher_forgets_every_channel_of_a_call():
    d = ChannelDispatcher(lambda ev: None)
    q = d.register("call")
    d.attach("call-uc1", q)
    d.attach("call-mobile2", q)
    other = d.register("other")
    assert sorted(d.forget(q)) == ["call", "call-mobile2", "call-uc1"]
    assert len(d) == 1 and d.register("other") is other


class _Ari:
    on_connected = on_disconnected = None


def test_the_contact_watcher_forgets_every_wait_of_a_call():
    w = ContactWatcher(_Ari(), None, lambda: None)  # type: ignore[arg-type]
    posts: list = []
    post, other = posts.append, (lambda ev: None)
    w.watch("alice", post)
    w.watch("carol", post)
    w.watch("alice", other)
    assert w.forget(post) == 2
    assert w.waiting() == 1


def _info(cid: str, state: str) -> CallInfo:
    return CallInfo(id=cid, channel_name=f"PJSIP/{cid}", caller="+1", entry="did:300",
                    via="did", app=None, root_menu="top", language="en", state=state)


class _Node:
    name = "asterisk"


def test_reconcile_ends_the_handed_off_calls_asterisk_no_longer_has(cfg):
    registry = CallRegistry()
    calls = Calls(lambda: cfg, CallServices(registry=registry))
    for cid, state in [("gone", "handed-off"), ("queued", "handed-off"), ("done", "ended")]:
        registry.add(_info(cid, state))
    assert calls.reconcile(_Node(), {"queued", "unrelated"}) == ["gone"]  # type: ignore
    assert [i.id for i in registry.live()] == ["queued"]
    assert calls.reconcile(_Node(), {"queued"}) == []  # type: ignore[arg-type]


# ------------------------------------------------------------------ records at shutdown

class _LockedRecords:
    """A call-records store that is locked for its first ``locked`` writes."""

    def __init__(self, locked: int):
        self.locked = locked
        self.saved: dict[str, CallInfo] = {}

    async def save(self, infos):
        if self.locked > 0:
            self.locked -= 1
            raise RuntimeError("database is locked")
        for i in infos:
            self.saved[i.id] = i

    async def mark_ended(self, call_ids, now):
        pass

    async def get(self, call_id):
        return self.saved.get(call_id)

    async def purge(self, before):
        return 0


async def test_close_retries_a_locked_database_until_every_change_is_written():
    repo = _LockedRecords(locked=3)
    registry = CallRegistry(repo)  # type: ignore[arg-type]
    for n in range(15):
        registry.add(_info(f"c{n}", "handed-off"))
    await registry.close(budget_seconds=5, retry_seconds=0.01)
    assert sorted(repo.saved) == sorted(f"c{n}" for n in range(15))


async def test_close_gives_up_after_its_budget(caplog):
    repo = _LockedRecords(locked=10**6)
    registry = CallRegistry(repo)  # type: ignore[arg-type]
    registry.add(_info("c0", "handed-off"))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await registry.close(budget_seconds=0.2, retry_seconds=0.02)
    assert 0.2 <= loop.time() - t0 < 1.0
    assert "1 changes not written at shutdown" in caplog.text


# ------------------------------------------------------------------ hand-off names

@pytest.mark.parametrize("name", list("aehiostT"))
def test_special_extensions_are_not_queue_or_endpoint_names(name):
    for text in (f"queue:{name}", f"endpoint:{name}"):
        with pytest.raises(ValueError, match="special extensions"):
            parse_destination(text)
    with pytest.raises(ValueError, match="special extensions"):
        parse_dial0(f"queue:{name}")
    assert parse_destination(f"menu:{name}").target == name  # menus never reach Asterisk


@pytest.mark.parametrize("name", ["b", "Q", "7", "hh", "h1", "support"])
def test_other_names_still_are(name):
    assert parse_destination(f"queue:{name}").target == name


def test_a_config_naming_a_queue_h_is_refused_with_its_line(tmp_path):
    text = (FIXTURES / "callsafe.yaml").read_text().replace('"1": queue:support\n      "2"',
                                                             '"1": queue:h\n      "2"')
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(bad, {})
    assert any("special extensions" in str(i) and "menus.top.options.1" in str(i)
               for i in err.value.issues), err.value.issues


def test_dialplan_hand_off_patterns_never_match_a_special_extension():
    """The patterns of the hand-off contexts, matched the way Asterisk does."""
    conf = (Path(__file__).resolve().parents[2] / "dialplan" /
            "extensions_ivr_engine.conf").read_text()
    for context in ("ivr-engine-queue", "ivr-engine-endpoint"):
        body = conf.split(f"[{context}]")[1].split("\n[")[0]
        patterns = [line.split("=>")[1].split(",")[0].strip() for line in body.splitlines()
                    if line.startswith("exten =>")]
        assert patterns, context
        for special in "aehiostT":
            assert not any(_asterisk_match(p, special) for p in patterns), (context, special)
        for name in ("support", "b", "Q", "7", "hh", "h1", "bob.desk"):
            assert any(_asterisk_match(p, name) for p in patterns), (context, name)


def _asterisk_match(pattern: str, exten: str) -> bool:
    """Asterisk's extension pattern language, as far as the hand-off contexts use it."""
    import re

    if not pattern.startswith("_"):
        return pattern == exten
    rx, i, p = "", 0, pattern[1:]
    while i < len(p):
        c = p[i]
        if c == "[":
            j = p.index("]", i)
            rx += "[" + p[i + 1:j] + "]"
            i = j + 1
            continue
        rx += {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(
            c, re.escape(c))
        i += 1
    return re.fullmatch(rx, exten) is not None


# ------------------------------------------------------------------ the transfer route's answers

class _Session:
    """A call's side of a transfer request, scripted: ``claim`` and ``reason`` (None: the
    call never gets that far)."""

    channel_id = "c1"

    def __init__(self, claim: bool, reason: str | None):
        self.claim, self.reason = claim, reason
        self.offered: list[TransferRequest] = []

    def offer(self, req: TransferRequest) -> None:
        self.offered.append(req)
        if self.claim:
            assert req.claim()
            if self.reason is not None:
                req.settle(self.reason)


class _Calls:
    def __init__(self, session):
        self.session = session

    def get(self, call_id):
        return self.session


@pytest.mark.parametrize("claim,reason,status,why", [
    (False, None, 503, "busy"), (True, None, 409, "in-progress"), (True, "token", 409, "token"),
    (True, "bridged", 409, "bridged"), (True, "ending", 409, "ending"),
    (True, "ended", 409, "ended"), (True, "failed", 502, "failed"),
    (True, "handed-off", 503, "no-ami")])
async def test_every_outcome_of_a_transfer_is_an_answer_with_its_reason(
        cfg, monkeypatch, claim, reason, status, why):
    from ivr_engine.calls import transfer

    monkeypatch.setattr(transfer, "PICKUP_SECONDS", 0.05)
    monkeypatch.setattr(transfer, "DONE_SECONDS", 0.1)
    session = _Session(claim, reason)
    with pytest.raises(transfer.TransferProblem) as err:
        await transfer.transfer_call(_info("c1", "ivr"), "queue:support", calls=_Calls(session),
                                     registry=CallRegistry(), nodes=[], config=lambda: cfg)
    assert (err.value.status, err.value.reason) == (status, why)
    if why == "busy":
        [req] = session.offered
        assert not req.claim()  # withdrawn: the call will skip it
        assert err.value.headers["Retry-After"]


async def test_a_call_still_in_stasis_without_a_session_is_never_redirected(cfg):
    from ivr_engine.calls import transfer

    with pytest.raises(transfer.TransferProblem) as err:
        await transfer.transfer_call(_info("c1", "ivr"), "queue:support", calls=_Calls(None),
                                     registry=CallRegistry(), nodes=[object()],
                                     config=lambda: cfg)
    assert (err.value.status, err.value.reason) == (503, "not-driven")


def test_a_transfer_problem_is_a_problem_document_with_its_reason():
    import json

    from aiohttp.test_utils import make_mocked_request

    from ivr_engine.calls.transfer import TransferProblem

    problem = TransferProblem(503, "Transfer unavailable", "busy", "busy",
                              headers={"Retry-After": "2"})
    resp = problem.response(make_mocked_request("POST", "/v1/calls/c1/transfer"))
    assert resp.status == 503 and resp.content_type == "application/problem+json"
    assert resp.headers["Retry-After"] == "2"
    body = json.loads(resp.text)
    assert body == {"type": "about:blank", "title": "Transfer unavailable", "status": 503,
                    "detail": "busy", "instance": "/v1/calls/c1/transfer", "reason": "busy"}


class _Ami:
    def __init__(self):
        self.redirects = []

    async def redirect(self, channel, context, variables, exten):
        self.redirects.append((channel, context, exten))


class _ListedNode:
    def __init__(self, name):
        self.name = self.system_name = name
        self.ami = _Ami()


async def test_a_handed_off_call_is_redirected_on_its_own_node_only(cfg):
    """Engines on one database see each other's call records: an AMI redirect goes to the
    node the channel is on (its id starts with the node's system name), and a call on a node
    this engine does not drive is neither redirected elsewhere nor marked ended."""
    from ivr_engine.calls import transfer

    a, b = _ListedNode("node-a"), _ListedNode("node-b")
    registry = CallRegistry()
    info = registry.add(_info("node-b-1700000000.7", "handed-off"))
    result = await transfer.transfer_call(info, "queue:support", calls=_Calls(None),
                                          registry=registry, nodes=[a, b], config=lambda: cfg)
    assert result.via == "ami"
    assert (a.ami.redirects, [r[2] for r in b.ami.redirects]) == ([], ["support"])
    other = registry.add(_info("node-c-1700000000.9", "handed-off"))
    with pytest.raises(transfer.TransferProblem) as err:
        await transfer.transfer_call(other, "queue:support", calls=_Calls(None),
                                     registry=registry, nodes=[a], config=lambda: cfg)
    assert (err.value.status, err.value.reason) == (503, "other-node")
    assert a.ami.redirects == [] and registry.get(other.id).state == "handed-off"


def test_every_entry_into_the_engine_arms_the_entry_watchdog_first():
    """A caller whose StasisStart reached an engine that died before arming its own watchdog
    is taken out by the dialplan's: every Stasis(ivr-engine,…) comes right after
    Set(TIMEOUT(absolute)=${IVR_ENTRY_WATCHDOG}), a global of 15 s."""
    conf = (Path(__file__).resolve().parents[2] / "dialplan" /
            "extensions_ivr_engine.conf").read_text()
    globals_ = conf.split("\n[globals]\n", 1)[1].split("\n[", 1)[0]
    assert "IVR_ENTRY_WATCHDOG = 15" in globals_.splitlines()
    entries = 0
    for context in ("from-pstn", "from-app", "from-web", "ivr-engine-resume"):
        body = conf.split(f"\n[{context}]\n", 1)[1].split("\n[", 1)[0]
        lines = [ln for ln in body.splitlines() if "=>" in ln and not ln.startswith(";")]
        for i, line in enumerate(lines):
            if "Stasis(ivr-engine," in line:
                entries += 1
                assert lines[i - 1].rstrip().endswith(
                    "Set(TIMEOUT(absolute)=${IVR_ENTRY_WATCHDOG})"), (context, lines[i - 1])
    assert entries == 4
