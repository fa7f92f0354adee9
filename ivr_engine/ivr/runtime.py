"""The IVR runtime: the state machine of one call in the menus. Pure: events in, actions out.

One ``IvrRuntime`` per call. The shell feeds it ``start``, ``digit``, ``timer_fired`` and
``playback_finished`` (each with the current time, which schedules read) and executes the
returned actions in order. Stale tokens (a timer or playback the session no longer waits for)
are ignored, so the shell never has to worry about races between a key and a timer.

Menu behaviour:
- entering a menu checks its schedule; closed → after-hours message (not interruptible), then
  the after-hours destination;
- the prompt plays with barge-in; when it ends the menu waits ``timeout`` seconds for a key;
- an option key goes to its destination; ``*`` goes to the parent (repeats at top level);
  ``#`` repeats; ``0`` follows the menu's dial-0 policy; anything else is invalid;
- invalid keys and timeouts have separate counters; the Nth (max) one sends the caller to
  ``on_invalid`` / ``on_timeout``, earlier ones play the optional invalid/timeout message and
  the prompt again. Counters reset when the caller enters another menu.

The watchdog (when a :class:`Watchdog` policy is given, ``watchdog.py``; ``Armed`` holds the
deadline the channel carries): the runtime keeps Asterisk's own ``TIMEOUT(absolute)`` armed
on the channel so that, if the engine dies and never comes back, Asterisk takes the caller out of Stasis to the dialplan's ``T`` extension
(which re-enters the engine, or the fallback when the engine is away). A menu that waits
arms it for its timeout plus a grace; a prompt for its length plus the grace when the
length is known, else for ``prompt_seconds`` (re-armed when less than half is left). The
hand-off contexts of the dialplan disarm it.

Play tokens are ``p<seq>.<k>``: the k-th playback since the menu wait number ``seq`` (the
number published in ``IVR_AWAITING``). An engine that takes over a call after a crash can
therefore name, and stop, the prompt that may still be playing, and numbers its own from
``seq + 1`` (:meth:`IvrRuntime.after_takeover`), which the dead engine never reached.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .actions import (
    Action,
    Answer,
    CancelTimer,
    Collect,
    HandOff,
    Hangup,
    Play,
    RecordCallback,
    RingUser,
    SetVariables,
    StopPlayback,
)
from .destinations import HANDOFF_KINDS, Destination
from .tree import IvrTree, MenuNode
from .watchdog import WATCHDOG_VARIABLE, Armed, Watchdog

__all__ = ["IvrRuntime", "MAX_HOPS", "WATCHDOG_VARIABLE", "Watchdog"]

#: transitions without caller input before we decide the config loops (after-hours chains)
MAX_HOPS = 16


@dataclass
class _Playing:
    token: str
    interruptible: bool
    then: tuple  # ("collect",) | ("dest", Destination) | ("handoff", Destination) | ("hangup",)


@dataclass
class IvrRuntime:
    tree: IvrTree
    entry_menu: str
    language: str
    entry_label: str = ""
    caller: str = ""
    app: str | None = None  # the mobile app the call belongs to (its messages apply)
    watchdog: Watchdog | None = None  # None: no TIMEOUT(absolute) (simulate, unit tests)

    # observable results
    path: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    destination: Destination | None = None
    finished: bool = False
    # why the call went to ``destination``: option, dial0, invalid, timeout, after-hours,
    # no-answer (a user did not answer), transfer (the API), entry (routing), deep-link,
    # config-loop
    reason: str = ""

    # internal state
    _menu: MenuNode | None = None
    _playing: _Playing | None = None
    _collecting: str | None = None
    _invalid: int = 0
    _timeouts: int = 0
    _seq: int = 0
    _plays: int = 0  # playbacks since the last menu wait (the k of "p<seq>.<k>")
    _hops: int = 0
    _ids: int = 0
    _ringing: str | None = None
    _published_path: str = ""
    _now: dt.datetime | None = None
    _armed: Armed = field(default_factory=Armed)  # the watchdog deadline the channel carries

    # ------------------------------------------------------------------ events

    def _start_actions(self) -> list[Action]:
        """Answer, then what the call carries from the start (set once, read by the dialplan,
        CDRs and agents): its entry point, language and app."""
        variables = [("IVR_ENTRY", self.entry_label), ("IVR_LANGUAGE", self.language)]
        if self.app:
            variables.append(("IVR_APP", self.app))
        return [Answer(), SetVariables(tuple(variables))]

    def start(self, now: dt.datetime) -> list[Action]:
        self._now = now
        out = self._start_actions()
        self._enter(self.entry_menu, now, out)
        return out

    def start_at(self, destination: Destination, now: dt.datetime) -> list[Action]:
        """Start a call that goes straight to a destination (e.g. routing.unknown_number)."""
        self._now = now
        out = self._start_actions()
        self._go(destination, now, out, "entry")
        return out

    def after_takeover(self, seq: int) -> None:
        """Another engine process drove this call up to its menu wait number ``seq``: number
        this runtime's playbacks after it, so none reuses the id of one still playing."""
        self._seq = seq + 1

    @property
    def play_scope(self) -> str:
        """The ``p<seq>`` prefix of playback ids until the next menu wait (the shell names
        the ringer's playbacks in it too)."""
        return f"p{self._seq}"

    def resume(self, menu: str, path: list[str], now: dt.datetime) -> list[Action]:
        """Take over a call another engine process drove: the caller was last waiting in
        ``menu`` having visited ``path``. The menu is entered again (its schedule checked,
        its prompt played). Call :meth:`after_takeover` first."""
        self._now = now
        self._published_path = "/".join(path)  # what the channel already carries
        self.path = list(path[:-1] if path and path[-1] == menu else path)
        out = self._start_actions()
        self._enter(menu, now, out)
        return out

    def digit(self, key: str, now: dt.datetime) -> list[Action]:
        self._now = now
        out: list[Action] = []
        if self.finished or self._menu is None or self._ringing is not None:
            return out
        if self._playing is not None:
            if not self._playing.interruptible:
                return out
            out.append(StopPlayback(self._playing.token))
            self._playing = None
        elif self._collecting is not None:
            out.append(CancelTimer(self._collecting))
            self._collecting = None
        else:
            return out
        self._hops = 0
        self._key(key, now, out)
        return out

    def ring_finished(self, token: str, answered: bool, now: dt.datetime,
                      no_answer: Destination | None = None) -> list[Action]:
        """The shell's push-then-wait for a ``user:`` destination is over. ``no_answer``:
        the user's no-answer destination as the shell found the user (a database user is
        not in the tree); by default the tree's, else ``voicemail:<user>@default``."""
        self._now = now
        out: list[Action] = []
        if self.finished or token != self._ringing:
            return out
        self._ringing = None
        self._armed.until = None  # the shell's ringer armed the watchdog for the ringing
        user = self.destination.target if self.destination else ""
        if answered:
            self.finished = True
            return out
        self._hops = 0
        if no_answer is None:
            no_answer = self.tree.no_answer.get(user) or Destination("voicemail",
                                                                     f"{user}@default")
        self._go(no_answer, now, out, "no-answer")
        return out

    def transfer(self, dest: Destination, now: dt.datetime) -> list[Action]:
        """An outside request (API) moves the caller: stop what plays or waits, then go."""
        self._now = now
        out: list[Action] = []
        if self.finished:
            return out
        if self._playing is not None:
            out.append(StopPlayback(self._playing.token))
            self._playing = None
        if self._collecting is not None:
            out.append(CancelTimer(self._collecting))
            self._collecting = None
        self._ringing = None  # the shell has stopped ringing before asking
        self._hops = 0
        self._go(dest, now, out, "transfer")
        return out

    def timer_fired(self, token: str, now: dt.datetime) -> list[Action]:
        self._now = now
        out: list[Action] = []
        if self.finished or token != self._collecting:
            return out
        self._collecting = None
        self._hops = 0
        menu = self._menu
        assert menu is not None
        self._timeouts += 1
        if self._timeouts >= menu.max_timeouts:
            self._go(menu.on_timeout, now, out, "timeout")
        else:
            self._prompt(menu, out, before=menu.timeout_message)
        return out

    def playback_finished(self, token: str, now: dt.datetime) -> list[Action]:
        self._now = now
        out: list[Action] = []
        if self.finished or self._playing is None or self._playing.token != token:
            return out
        then = self._playing.then
        self._playing = None
        if then[0] == "collect":
            assert self._menu is not None
            self._seq += 1
            self._plays = 0
            self._collecting = self._id("t")
            # published only when the caller really waits (idle time): menus passed through
            # with barge-in cost no request
            out.append(SetVariables(self._path_var() + (
                ("IVR_AWAITING", f"{self._menu.name}:{self._seq}"),)
                + self._armed.wait(self.watchdog, self._now, self._menu.timeout)))
            out.append(Collect(self._collecting, self._menu.name, self._menu.timeout, self._seq))
        elif then[0] == "dest":  # the after-hours message has played
            self._go(then[1], now, out, "after-hours")
        elif then[0] == "handoff":
            self._hand_off(then[1], out)
        else:
            self._end(out, Hangup())
        return out

    # ------------------------------------------------------------------ internals

    def _path_var(self) -> tuple[tuple[str, str], ...]:
        """IVR_PATH, unless the channel already has this very value."""
        path = "/".join(self.path)
        if path == self._published_path:
            return ()
        self._published_path = path
        return (("IVR_PATH", path),)

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    def _play(self, out: list[Action], media: tuple[str, ...], language: str,
              interruptible: bool, then: tuple) -> None:
        barge_in = bool(out) and isinstance(out[0], StopPlayback)
        armed = self._armed.prompt(self.watchdog, self._now, media, language,
                                   barge_in=barge_in)
        if armed:  # before the play: a variable sent after it would wait for the prompt
            out.append(SetVariables(armed))
        self._plays += 1
        token = f"{self.play_scope}.{self._plays}"
        self._playing = _Playing(token, interruptible, then)
        self.prompts.extend(media)
        out.append(Play(token, media, language, interruptible))

    def _message(self, name: str) -> tuple[tuple[str, ...], str]:
        p = self.tree.messages.resolve(name, self.language, self.app)
        return p.media, p.language

    def _prompt(self, menu: MenuNode, out: list[Action], before: str | None = None) -> None:
        media, lang = self._message(menu.prompt)
        if before is not None:
            pre, pre_lang = self._message(before)
            media = pre + media
            lang = lang if pre_lang == lang else self.language
        self._play(out, media, lang, True, ("collect",))

    def _enter(self, name: str, now: dt.datetime, out: list[Action], mark: str = "") -> None:
        self._hops += 1
        if self._hops > MAX_HOPS:
            self.reason = "config-loop"
            self._end(out, Hangup("config-loop"), Destination("hangup"))
            return
        menu = self.tree.menus[name]
        self._menu = menu
        self._invalid = self._timeouts = 0
        self.path.append(mark or name)  # mark: a deep link's "@<node>" (ivr/deeplink.py)
        if menu.schedule is not None and not menu.schedule.is_open(now):
            assert menu.after_hours_destination is not None
            if menu.after_hours_message:
                media, lang = self._message(menu.after_hours_message)
                self._play(out, media, lang, False, ("dest", menu.after_hours_destination))
            else:
                self._go(menu.after_hours_destination, now, out, "after-hours")
            return
        self._prompt(menu, out)

    def _key(self, key: str, now: dt.datetime, out: list[Action]) -> None:
        menu = self._menu
        assert menu is not None
        if key in menu.options:
            self._go(menu.options[key], now, out, "option")
        elif key == "*":
            if menu.parent is not None:
                self._enter(menu.parent, now, out)
            else:
                self._prompt(menu, out)
        elif key == "#":
            self._prompt(menu, out)
        elif key == "0" and menu.dial0.policy != "disabled":
            policy = menu.dial0.policy
            if policy == "queue":
                self._go(Destination("queue", menu.dial0.queue), now, out, "dial0")
            elif policy == "parent" and menu.parent is not None:
                self._enter(menu.parent, now, out)
            elif policy == "top" and menu.root != menu.name:
                self._enter(menu.root, now, out)
            else:  # stay, or parent/top while already at the top
                self._prompt(menu, out)
        else:
            self._invalid += 1
            if self._invalid >= menu.max_invalid:
                self._go(menu.on_invalid, now, out, "invalid")
            else:
                self._prompt(menu, out, before=menu.invalid_message)

    def _go(self, dest: Destination, now: dt.datetime, out: list[Action],
            reason: str = "") -> None:
        if dest.kind == "menu":
            self._enter(dest.target, now, out)
            return
        self.destination = dest
        self.reason = reason
        if dest.kind == "voicemail" and self.tree.voicemail_message:
            # the (per app, per language) announcement first; the hand-off when it ends
            media, lang = self._message(self.tree.voicemail_message)
            self._play(out, media, lang, False, ("handoff", dest))
            return
        if dest.kind in HANDOFF_KINDS:
            self._hand_off(dest, out)
            return
        declared = self._path_var() + (("IVR_DESTINATION", str(dest)),)
        if dest.kind == "user":
            out.append(SetVariables(declared))
            self._ringing = self._id("r")
            out.append(RingUser(dest.target, self._ringing))
        elif dest.kind == "callback":
            out.append(RecordCallback(dest.target, self.caller, self.language, self.entry_label,
                                      tuple(self.path)))
            out.append(SetVariables(declared))
            if self.tree.callback_message:
                media, lang = self._message(self.tree.callback_message)
                self._play(out, media, lang, False, ("hangup",))
            else:
                self._end(out, Hangup(), dest)
        elif dest.kind == "message-then-hangup":
            out.append(SetVariables(declared))
            media, lang = self._message(dest.target)
            self._play(out, media, lang, False, ("hangup",))
        else:  # hangup
            out.append(SetVariables(declared))
            self._end(out, Hangup(), dest)

    def _hand_off(self, dest: Destination, out: list[Action]) -> None:
        # IVR_ENTRY, IVR_LANGUAGE and IVR_APP are already on the channel; the shell passes
        # the target as the dialplan extension (voicemail: IVR_TARGET)
        path = self._path_var()
        if path:
            out.append(SetVariables(path))
        self._end(out, HandOff(dest), dest)

    def _end(self, out: list[Action], action: Action, dest: Destination | None = None) -> None:
        if dest is not None:
            self.destination = dest
        self.finished = True
        self._playing = None
        self._collecting = None
        out.append(action)
