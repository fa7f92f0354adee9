"""The guard on what fallback callers present (issue 16, apps/guard.py): a try is counted
before its lookup (parallel calls cannot pass a limit), limits apply to short tokens only,
and an app under attack hardens — plans get long tokens, which with offline codes are always
looked up — for as long as short tokens keep coming."""

from __future__ import annotations

from ivr_engine.apps.guard import Attempt, GuessLimits, Kind, TokenGuard

TOKEN, LONG, CODE = Kind.TOKEN, Kind.LONG, Kind.CODE


def test_per_caller_then_the_window_slides():
    g, lim = TokenGuard(), GuessLimits(per_caller=2, per_app=100, window_seconds=60)
    for t in (0, 10):
        g.failed(g.admit("app", "+1555", TOKEN, lim, t))
    assert "2 tries from +1555" in g.admit("app", "+1555", TOKEN, lim, 20)
    assert isinstance(g.admit("app", "+1666", TOKEN, lim, 20), Attempt)  # another caller
    assert isinstance(g.admit("other", "+1555", TOKEN, lim, 20), Attempt)  # per app
    assert isinstance(g.admit("app", "+1555", TOKEN, lim, 61), Attempt)  # first one left
    assert g.refused == 1


def test_parallel_tries_are_counted_before_their_lookup():
    """Issue 16: the guard was checked, the lookup awaited, and only then the failure
    counted: 60 calls at once from 60 numbers all reached the lookup (per-app limit 30), and
    15 at once from one number all did (per-caller limit 3)."""
    g, lim = TokenGuard(), GuessLimits(per_caller=3, per_app=30, window_seconds=600)
    admitted = [g.admit("app", f"+1{i:03d}", TOKEN, lim, 1.0) for i in range(60)]
    assert sum(isinstance(a, Attempt) for a in admitted) == 30  # before any lookup ended
    g2 = TokenGuard()
    one = [g2.admit("app", "+1555", TOKEN, lim, 1.0) for _ in range(15)]
    assert sum(isinstance(a, Attempt) for a in one) == 3


def test_a_users_own_call_gives_its_try_back():
    g, lim = TokenGuard(), GuessLimits(per_caller=1, per_app=2, window_seconds=60)
    for t in range(10):  # the same user calls ten times with good tokens
        a = g.admit("app", "+1555", TOKEN, lim, t)
        assert isinstance(a, Attempt)
        g.succeeded(a)
    assert len(g) == 0


def test_an_attack_hardens_the_app_and_costs_the_users_nothing_but_short_tokens():
    g, lim = TokenGuard(), GuessLimits(per_caller=3, per_app=5, window_seconds=60)
    for i in range(5):
        g.failed(g.admit("app", f"+1{i}", TOKEN, lim, i))
    assert not g.hardened("app", 5)
    refusal = g.admit("app", "+1new", TOKEN, lim, 10)
    assert isinstance(refusal, str) and "hardens" in refusal
    assert g.hardened("app", 10)
    # long tokens and offline codes are always looked up, whoever presents them
    for kind in (LONG, CODE):
        a = g.admit("app", "+1new", kind, lim, 11)
        assert isinstance(a, Attempt)
        g.succeeded(a)
    # the attack goes on with short tokens: the app stays hardened past the first window
    for t in (50, 100, 150):
        assert isinstance(g.admit("app", "+1x", TOKEN, lim, t), str)
        assert g.hardened("app", t + 59)
    assert not g.hardened("app", 150 + 61)  # quiet for a window: short tokens again
    assert isinstance(g.admit("app", "+1ok", TOKEN, lim, 220), Attempt)


def test_memory_stays_bounded_by_the_window():
    g, lim = TokenGuard(), GuessLimits(per_caller=3, per_app=10, window_seconds=60)
    for i in range(10_000):  # a flood of refused tries adds nothing
        r = g.admit("app", f"+1{i}", TOKEN, lim, float(i) / 1000)
        if isinstance(r, Attempt):
            g.failed(r)
    assert len(g) <= 10 + 1 + 1


def test_a_spoofed_number_only_costs_its_owner_short_tokens():
    """3 wrong calls with a user's number used to lock the user out for the window; now the
    plan the user's app makes for that number is a long token, which is always looked up."""
    g, lim = TokenGuard(), GuessLimits(per_caller=3, per_app=30, window_seconds=60)
    for t in range(3):
        g.failed(g.admit("app", "+15550001", TOKEN, lim, t))
    assert g.caller_limited("app", "+15550001", lim, 10)
    assert not g.caller_limited("app", "+15550002", lim, 10)
    assert isinstance(g.admit("app", "+15550001", LONG, lim, 11), Attempt)
    assert not g.caller_limited("app", "+15550001", lim, 70)  # the window slid
