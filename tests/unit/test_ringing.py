"""The ringing state machine (wakeup/ringing.py): every path of push-then-wait, pure."""

from __future__ import annotations

from dataclasses import replace

from ivr_engine.wakeup.plan import UserSpec, WakeSettings, plan_wakeup
from ivr_engine.wakeup.ringing import (
    ArmWatchdog,
    Bridge,
    CancelPushes,
    CreateLeg,
    DialLeg,
    Finished,
    HangupLeg,
    Hold,
    PlayMessage,
    Ringing,
    SendWakePushes,
    StartWaitTimer,
)

WAKE = WakeSettings(mobile_loops=3, uc_mobile_loops=2, interval_seconds=5, ring_seconds=30)
ALICE = UserSpec("alice", "mobile", "alice", None, "app", WAKE)
BOB = UserSpec("bob", "uc+mobile", "bob-phone", "bob-desk", "app", WAKE)


def machine(user: UserSpec, reachable: bool = False, message: str | None = None) -> Ringing:
    if message:
        user = replace(user, wake=replace(user.wake, message=message))
    return Ringing("call-1", user, plan_wakeup(user, reachable), grace_seconds=3)


def test_sleeping_mobile_push_wait_register_ring_answer():
    m = machine(ALICE)
    assert m.start() == [ArmWatchdog(15 + 30 + 3), SendWakePushes(15), StartWaitTimer(15),
                         Hold(True)]
    assert m.registered() == [CreateLeg("call-1-mobile1", "alice", "mobile")]
    assert m.registered() == []  # a second REGISTER rings nothing more
    assert m.leg_in_stasis("call-1-mobile1") == [DialLeg("call-1-mobile1", 30)]
    assert m.leg_in_stasis("call-1-mobile1") == []
    # the woken phone answered: its push is not cancelled
    assert m.leg_answered("call-1-mobile1") == [Hold(False), ArmWatchdog(0),
                                                Bridge("call-1-mobile1"),
                                                Finished("call-1-mobile1")]
    assert m.finished and m.wait_expired() == [] and m.stop() == []


def test_registered_already_rings_at_once_without_push():
    m = machine(ALICE, reachable=True)
    assert m.start() == [ArmWatchdog(0 + 30 + 3), Hold(True),
                         CreateLeg("call-1-mobile1", "alice", "mobile")]
    assert m.registered() == []  # nobody waits for a registration


def test_never_registers_no_answer_on_time_with_cancel():
    m = machine(ALICE)
    m.start()
    assert m.wait_expired() == [CancelPushes(), Hold(False), Finished()]


def test_uc_and_mobile_first_answer_wins_and_the_phone_is_told():
    m = machine(BOB)
    assert m.start() == [ArmWatchdog(10 + 30 + 3), SendWakePushes(10), StartWaitTimer(10),
                         Hold(True), CreateLeg("call-1-uc1", "bob-desk", "uc")]
    assert m.registered() == [CreateLeg("call-1-mobile2", "bob-phone", "mobile")]
    # the desk answers: the phone's leg is hung up and the woken phone told to stop
    assert m.leg_answered("call-1-uc1") == [HangupLeg("call-1-mobile2"), CancelPushes(),
                                            Hold(False), ArmWatchdog(0), Bridge("call-1-uc1"),
                                            Finished("call-1-uc1")]


def test_uc_keeps_ringing_alone_after_the_wait_then_no_answer_when_it_stops():
    m = machine(BOB)
    m.start()
    assert m.wait_expired() == [CancelPushes()]  # the desk still rings
    assert not m.finished
    assert m.leg_gone("call-1-uc1") == [Hold(False), Finished()]


def test_message_first_registration_meanwhile_rings_after_it():
    m = machine(ALICE, message="please-hold")
    assert m.start() == [ArmWatchdog(48), SendWakePushes(15), StartWaitTimer(15),
                         PlayMessage("please-hold")]
    assert m.registered() == []  # kept until the message ends
    assert m.message_finished() == [Hold(True), CreateLeg("call-1-mobile1", "alice", "mobile")]
    assert m.message_finished() == []


def test_message_then_the_wait_ran_out_meanwhile():
    m = machine(ALICE, message="please-hold")
    m.start()
    assert m.wait_expired() == []
    assert m.message_finished() == [Hold(True), CancelPushes(), Hold(False), Finished()]


def test_a_leg_that_cannot_be_dialled_leaves_the_others_ringing():
    m = machine(BOB, reachable=True)
    m.start()
    assert sorted(m.legs) == ["call-1-mobile2", "call-1-uc1"]
    assert m.leg_gone("call-1-uc1") == []
    assert m.leg_gone("call-1-mobile2") == [Hold(False), Finished()]


def test_stop_for_a_transfer_or_the_caller_leaving():
    m = machine(BOB)
    m.start()
    assert m.stop() == [HangupLeg("call-1-uc1"), CancelPushes(), Hold(False), Finished()]
    m = machine(BOB)
    m.start()
    # the caller is gone: nothing to take off hold
    assert m.stop(caller_left=True) == [HangupLeg("call-1-uc1"), CancelPushes(), Finished()]


def test_uc_user_rings_the_desk_only():
    desk = UserSpec("carol", "uc", None, "carol-desk", None, WAKE)
    m = machine(desk)
    assert m.start() == [ArmWatchdog(33), Hold(True),
                         CreateLeg("call-1-uc1", "carol-desk", "uc")]
    assert m.leg_gone("call-1-uc1") == [Hold(False), Finished()]
