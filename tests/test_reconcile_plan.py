"""The reconciler's decisions, row by row of `api/services/reconcile.py`'s table (pure: a
call record and a room snapshot in, a plan out). The end-to-end behaviour is in
tests/test_call_truth.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from livekit.protocol.models import ParticipantInfo

from api.services.reconcile import RoomSnapshot, settle
from api.store.call_record import CallRecord
from tests.records import stored_call

NOW = 1_800_000_000_000
RING, MAX, GRACE, MARGIN = 30, 600, 10, 20


def _call(status: str, **fields: Any) -> CallRecord:
    budgets = {
        "ring_timeout_seconds": RING,
        "max_duration_seconds": MAX,
        "answer_grace_s": GRACE,
        "deadline_margin_s": MARGIN,
    }
    return stored_call(status, **(budgets | fields))


def _leg(call_status: str) -> ParticipantInfo:
    info = ParticipantInfo(identity="sip-c1", kind=ParticipantInfo.Kind.SIP)
    info.attributes["sip.callStatus"] = call_status
    return info


def _summary(plan: Any) -> tuple[Any, ...]:
    event = plan.event
    described = None
    if event is not None:
        described = (event.type, event.data.get("status"), event.data.get("reason"))
        assert event.expected_status is not None  # every planned event is a compare-and-set
    return described, plan.drop_room, plan.dial, plan.next_deadline_ms, plan.unreported


# a scheduled call's deadline is its due time plus the dispatch timeout: nobody claimed it
@pytest.mark.parametrize("status", ["scheduled", "queued", "dispatching"])
def test_a_call_stuck_before_the_room_fails_with_dispatch_timeout(status: str) -> None:
    plan = settle(_call(status), None, NOW)
    assert _summary(plan) == (("call.failed", None, "error"), True, False, None, False)
    assert plan.event is not None and plan.event.data["code"] == "DISPATCH_TIMEOUT"


def test_a_call_still_waiting_for_its_limits_fails_with_waiting_timeout() -> None:
    waiting = _call("queued", waiting_for="trunk_rate", waiting_since=NOW - 3_620_000)
    plan = settle(replace(waiting, max_waiting_s=3600), None, NOW)
    assert _summary(plan) == (("call.failed", None, "error"), True, False, None, False)
    assert plan.event is not None and plan.event.data["code"] == "WAITING_TIMEOUT"
    assert "waited over 3600 s for trunk_rate" in plan.event.data["message"]


def test_an_agent_in_the_room_dials_only_when_joining_counts_as_ready() -> None:
    joined_mode = _call("waiting_for_agent", dial_mode="agent_joined")
    plan = settle(joined_mode, RoomSnapshot(None, has_agent=True), NOW)
    assert _summary(plan) == (None, False, True, None, False)
    # Outdial's runtime joins before it can speak: joined but never ready is stuck
    ready_mode = _call("waiting_for_agent", dial_mode="agent_ready")
    plan = settle(ready_mode, RoomSnapshot(None, has_agent=True), NOW)
    assert _summary(plan) == (("call.failed", None, "agent_unavailable"), True, False, None, False)


def test_waiting_for_an_agent_that_never_came_fails_and_rings_nobody() -> None:
    plan = settle(_call("waiting_for_agent"), RoomSnapshot(None, has_agent=False), NOW)
    assert _summary(plan) == (("call.failed", None, "agent_unavailable"), True, False, None, False)
    assert plan.event is not None and plan.event.data["code"] == "AGENT_UNAVAILABLE"


@pytest.mark.parametrize("leg_status", ["active", "hangup"])
def test_an_answer_nobody_reported_is_inferred(leg_status: str) -> None:
    plan = settle(_call("dialing", ts_dialing=NOW), RoomSnapshot(_leg(leg_status), True), NOW)
    # LiveKit sends no webhook for an answer: this says nothing about webhooks
    assert _summary(plan) == (("call.answered", None, None), False, False, None, False)


@pytest.mark.parametrize(
    ("ready", "reason"), [(True, "agent_failed"), (False, "agent_unavailable")]
)
def test_an_answer_nobody_reported_with_no_agent_in_the_room_is_hung_up(
    ready: bool, reason: str
) -> None:
    fields = {"ts_dialing": NOW} | ({"agent_ready_at": NOW - 9_000} if ready else {})
    plan = settle(_call("ringing", **fields), RoomSnapshot(_leg("active"), False), NOW)
    assert _summary(plan) == (("call.failed", None, reason), True, False, None, False)


def test_a_call_with_a_ready_agent_is_looked_at_only_at_its_ring_deadline() -> None:
    call = _call("ringing", ts_dialing=NOW - 5_000, agent_ready_at=NOW - 6_000)
    plan = settle(call, RoomSnapshot(_leg("ringing"), True), NOW)
    assert plan.next_deadline_ms == NOW - 5_000 + (RING + MARGIN) * 1000


def test_ringing_before_its_deadline_is_looked_at_again_within_the_grace() -> None:
    call = _call("ringing", ts_dialing=NOW - 5_000)
    plan = settle(call, RoomSnapshot(_leg("ringing"), True), NOW)
    assert _summary(plan) == (None, False, False, NOW + GRACE * 1000, False)
    # ...but never past the ring timeout + margin
    late = _call("ringing", ts_dialing=NOW - (RING + MARGIN) * 1000 + 3_000)
    plan = settle(late, RoomSnapshot(_leg("ringing"), True), NOW)
    assert plan.next_deadline_ms == NOW + 3_000


def test_still_ringing_past_the_ring_timeout_ends_no_answer_and_drops_the_room() -> None:
    call = _call("ringing", ts_dialing=NOW - (RING + MARGIN) * 1000)
    plan = settle(call, RoomSnapshot(_leg("ringing"), True), NOW)
    assert _summary(plan) == (("call.ended", "no_answer", "no_answer"), True, False, None, False)


def test_a_leg_gone_unreported_past_the_deadline_is_no_answer() -> None:
    call = _call("dialing", ts_dialing=NOW - (RING + MARGIN) * 1000, sip_call_id="SCL_1")
    plan = settle(call, RoomSnapshot(None, True), NOW)
    assert _summary(plan) == (("call.ended", "no_answer", "no_answer"), False, False, None, True)


def test_a_dial_never_confirmed_and_no_leg_is_an_interrupted_dial() -> None:
    call = _call("dialing", ts_dialing=NOW - (RING + MARGIN) * 1000)
    plan = settle(call, RoomSnapshot(None, True), NOW)
    assert _summary(plan) == (("call.failed", None, "error"), True, False, None, False)
    assert plan.event is not None and plan.event.data["code"] == "DIAL_INTERRUPTED"


def test_an_answered_call_whose_leg_is_gone_is_completed() -> None:
    plan = settle(_call("in_progress", ts_in_progress=NOW), RoomSnapshot(None, True), NOW)
    assert _summary(plan) == (("call.ended", "completed", "completed"), True, False, None, False)


@pytest.mark.parametrize(
    ("ready", "reason", "code"),
    [(True, "agent_failed", "AGENT_LEFT"), (False, "agent_unavailable", "AGENT_UNAVAILABLE")],
)
def test_an_answered_call_without_an_agent_is_hung_up(ready: bool, reason: str, code: str) -> None:
    fields = {"ts_in_progress": NOW} | ({"agent_ready_at": NOW - 9_000} if ready else {})
    plan = settle(_call("in_progress", **fields), RoomSnapshot(_leg("active"), False), NOW)
    assert _summary(plan) == (("call.failed", None, reason), True, False, None, False)
    assert plan.event is not None and plan.event.data["code"] == code


def test_a_live_call_is_next_looked_at_after_its_max_duration() -> None:
    call = _call("in_progress", ts_in_progress=NOW - 1_000)
    plan = settle(call, RoomSnapshot(_leg("active"), True), NOW)
    assert _summary(plan) == (None, False, False, NOW - 1_000 + (MAX + MARGIN) * 1000, False)


def test_a_call_past_its_max_duration_is_ended() -> None:
    call = _call("in_progress", ts_in_progress=NOW - (MAX + MARGIN) * 1000)
    plan = settle(call, RoomSnapshot(_leg("active"), True), NOW)
    summary = _summary(plan)
    assert summary == (("call.ended", "completed", "max_duration"), True, False, None, False)
