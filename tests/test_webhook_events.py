"""LiveKit webhook -> call events, checked without any server (the mapping is pure)."""

from __future__ import annotations

from typing import Any

from livekit.protocol.agent import JobStatus
from livekit.protocol.models import DisconnectReason, ParticipantInfo
from livekit.protocol.webhook import WebhookEvent

from api.services.webhook_events import plan_webhook
from api.store.call_record import CallRecord
from api.store.events import status_for
from tests.records import stored_call


def _call(status: str, dial_mode: str = "agent_ready") -> CallRecord:
    return stored_call(status, dial_mode=dial_mode)


def _sip_event(
    event: str, call_status: str | None = None, reason: int = 0, kind: int = ParticipantInfo.SIP
) -> WebhookEvent:
    webhook = WebhookEvent(event=event, id="EV_1", created_at=1_700_000_000)
    webhook.room.name = "room-1"
    webhook.participant.identity = "sip-c1"
    webhook.participant.kind = kind
    webhook.participant.disconnect_reason = reason
    if call_status:
        webhook.participant.attributes["sip.callStatus"] = call_status
    return webhook


def _summary(plan: Any) -> list[tuple[str, str | None, str | None]]:
    return [(s.type, status_for(s.type, s.data), s.data.get("reason")) for s in plan.events]


def test_joined_follows_sip_call_status() -> None:
    for call_status, expected in [
        ("dialing", "call.dialing"),
        ("ringing", "call.ringing"),
        ("active", "call.answered"),
    ]:
        plan = plan_webhook(_sip_event("participant_joined", call_status), _call("dialing"))
        assert [s.type for s in plan.events] == [expected]
    assert not plan_webhook(_sip_event("participant_joined"), _call("dialing")).events


def test_left_before_answer_by_disconnect_reason() -> None:
    cases = [
        (DisconnectReason.USER_REJECTED, [("call.ended", "busy", "busy")]),
        (DisconnectReason.USER_UNAVAILABLE, [("call.ended", "no_answer", "no_answer")]),
        (DisconnectReason.SIP_TRUNK_FAILURE, [("call.failed", "failed", "trunk_failure")]),
    ]
    for reason, expected in cases:
        webhook = _sip_event("participant_left", "ringing", reason)
        assert _summary(plan_webhook(webhook, _call("dialing"))) == expected


def test_left_after_answer_ends_completed_and_infers_the_answer() -> None:
    hangup = _sip_event("participant_left", "hangup", DisconnectReason.CLIENT_INITIATED)
    assert _summary(plan_webhook(hangup, _call("dialing"))) == [
        ("call.answered", "in_progress", None),
        ("call.ended", "completed", "hangup_by_callee"),
    ]
    assert _summary(plan_webhook(hangup, _call("in_progress"))) == [
        ("call.ended", "completed", "hangup_by_callee")
    ]


def test_event_ids_derive_from_the_webhook_id() -> None:
    webhook = _sip_event("participant_left", "hangup", DisconnectReason.CLIENT_INITIATED)
    ids = [spec.id for spec in plan_webhook(webhook, _call("dialing")).events]
    assert ids == ["lk-EV_1-call.answered", "lk-EV_1-call.ended"]
    assert ids == [spec.id for spec in plan_webhook(webhook, _call("dialing")).events]


def test_standard_participants_are_ignored() -> None:
    for event in ("participant_joined", "participant_left"):
        webhook = _sip_event(event, kind=ParticipantInfo.STANDARD)
        assert not plan_webhook(webhook, _call("in_progress")).events


def test_an_agent_joining_counts_as_ready_only_in_agent_joined_mode() -> None:
    joined = _sip_event("participant_joined", kind=ParticipantInfo.AGENT)
    plan = plan_webhook(joined, _call("waiting_for_agent", dial_mode="agent_joined"))
    assert [(s.type, s.id) for s in plan.events] == [("agent.ready", "lk-EV_1-agent.ready")]
    # Outdial's runtime joins before it can speak: by default only its agent.ready counts
    assert not plan_webhook(joined, _call("waiting_for_agent")).events


def test_an_agent_leaving_a_live_call_ends_it_and_drops_the_room() -> None:
    left = _sip_event("participant_left", kind=ParticipantInfo.AGENT, reason=1)
    for status in ("waiting_for_agent", "ringing", "in_progress"):
        plan = plan_webhook(left, _call(status))
        assert _summary(plan) == [("call.failed", "failed", "agent_failed")], status
        assert plan.delete_room
    assert not plan_webhook(left, _call("completed")).events


def test_an_agent_leaving_because_the_room_was_deleted_is_not_a_failure() -> None:
    for reason in (DisconnectReason.ROOM_DELETED, DisconnectReason.ROOM_CLOSED):
        left = _sip_event("participant_left", kind=ParticipantInfo.AGENT, reason=reason)
        plan = plan_webhook(left, _call("in_progress"))
        assert not plan.events and not plan.delete_room


def test_a_room_that_is_gone_is_rechecked_not_ended() -> None:
    """Its deleter reports why (the agent's own end event): a leg or room that left because
    the room was deleted must not overwrite that with a guess."""
    finished = WebhookEvent(event="room_finished", id="EV_2")
    finished.room.name = "room-1"
    for reason in (DisconnectReason.ROOM_DELETED, DisconnectReason.ROOM_CLOSED):
        left = _sip_event("participant_left", "active", reason)
        for webhook in (finished, left):
            plan = plan_webhook(webhook, _call("in_progress"))
            assert not plan.events and plan.recheck and not plan.delete_room
    assert not plan_webhook(finished, _call("busy")).recheck


def _job_event(event: str) -> WebhookEvent:
    webhook = WebhookEvent(event=event, id="EV_3")
    webhook.job.id = "AJ_1"
    webhook.job.agent_name = "outdial-agent"
    webhook.job.room.name = "room-1"
    webhook.job.state.status = JobStatus.JS_FAILED
    webhook.job.state.error = "boom"
    return webhook


def test_agent_jobs_are_recorded_and_a_job_ending_before_answer_fails_the_call() -> None:
    started = plan_webhook(_job_event("agent_job_started"), _call("dispatching"))
    assert [s.type for s in started.events] == ["agent.job_started"]

    early = plan_webhook(_job_event("agent_job_ended"), _call("ringing"))
    assert _summary(early) == [
        ("agent.job_ended", None, None),
        ("call.failed", "failed", "agent_failed"),
    ]
    assert early.delete_room
    assert early.events[0].data["job_status"] == "JS_FAILED"

    # the job ended while the callee was still on the line: nobody would talk to them
    mid_call = plan_webhook(_job_event("agent_job_ended"), _call("in_progress"))
    assert _summary(mid_call)[1] == ("call.failed", "failed", "agent_failed")
    assert mid_call.delete_room

    late = plan_webhook(_job_event("agent_job_ended"), _call("completed"))
    assert [s.type for s in late.events] == ["agent.job_ended"] and not late.delete_room
