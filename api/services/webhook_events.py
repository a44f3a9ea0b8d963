"""What a LiveKit webhook means for a call: the call events it produces.

Pure: it reads the webhook and the call as stored, and plans events; `api.services.webhook_intake`
applies them. Event ids derive from the webhook id, so a webhook LiveKit retries (or that
two API replicas receive) can only ever apply once.

With `OUTDIAL_DIAL_MODE=agent_joined` an agent participant joining counts as the agent
being ready (for workers that never report it; Outdial's runtime joins before it can speak,
so by default only its `agent.ready` counts). An agent that leaves, or whose job ends, while
the callee may still be on the line ends the call and drops the room: nobody is left
talking to silence.

A leg (or an agent) that leaves because the room was deleted or closed is not an outcome:
whoever deleted the room reports why (the agent with its own end event, the API before it
deletes). The call is only looked at again soon (`recheck`), so the reconciler settles it
if that report never comes. `room_finished` likewise.

LiveKit sends no webhook when participant attributes change: `ringing` and `active` are
only visible in `participant_joined` (rarely) and in the last attributes that
`participant_left` carries. livekit/sip sets `sip.callStatus = hangup` only when an
established call ends, so `hangup` (or `active`) at leave time means the call was answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livekit.protocol.agent import JobStatus
from livekit.protocol.models import DisconnectReason, ParticipantInfo
from livekit.protocol.webhook import WebhookEvent

from api.services.call_end import end_event
from api.store.call_record import CallRecord
from api.store.events import EventSpec
from sip import CallOutcome, left_after_answer_outcome, left_before_answer_outcome
from sip.outcomes import ANSWERED_CALL_STATUSES, SIP_CALL_STATUS_ATTRIBUTE

_JOINED_EVENT = {"dialing": "call.dialing", "ringing": "call.ringing", "active": "call.answered"}
_LEFT_EVENTS = frozenset({"participant_left", "participant_connection_aborted"})
_ROOM_ENDED = frozenset({DisconnectReason.ROOM_DELETED, DisconnectReason.ROOM_CLOSED})


@dataclass(frozen=True, slots=True)
class WebhookPlan:
    events: list[EventSpec] = field(default_factory=list)
    delete_room: bool = False  # hang up whatever is left of the call
    recheck: bool = False  # the room is gone: the reconciler looks at the call soon


def room_name_of(webhook: WebhookEvent) -> str:
    return webhook.room.name or webhook.job.room.name


def _spec(webhook: WebhookEvent, event_type: str, data: dict[str, Any], **kw: Any) -> EventSpec:
    return EventSpec(
        type=event_type,
        data=data,
        id=f"lk-{webhook.id}-{event_type}",
        timestamp=float(webhook.created_at) if webhook.created_at else None,
        **kw,
    )


def _is_sip(participant: ParticipantInfo) -> bool:
    return participant.kind == ParticipantInfo.Kind.SIP


def _answered(call: CallRecord, participant: ParticipantInfo) -> bool:
    if call.status == "in_progress":
        return True
    return participant.attributes.get(SIP_CALL_STATUS_ATTRIBUTE) in ANSWERED_CALL_STATUSES


def _end_event(webhook: WebhookEvent, outcome: CallOutcome, extra: dict[str, Any]) -> EventSpec:
    event = end_event(outcome, data=extra)
    return _spec(webhook, event.type, event.data, call_update=event.call_update)


def _is_agent(participant: ParticipantInfo) -> bool:
    return participant.kind == ParticipantInfo.Kind.AGENT


def _agent_gone(webhook: WebhookEvent, call: CallRecord, data: dict[str, Any]) -> WebhookPlan:
    """The agent stopped while the call still needed it (any open call: the callee is on
    the line, or would be rung for nobody): end the call, drop the room."""
    if call.is_terminal:
        return WebhookPlan()
    return WebhookPlan([_end_event(webhook, CallOutcome("failed", "agent_failed"), data)], True)


def _participant_joined(webhook: WebhookEvent) -> WebhookPlan:
    participant = webhook.participant
    event_type = _JOINED_EVENT.get(participant.attributes.get(SIP_CALL_STATUS_ATTRIBUTE, ""))
    if event_type is None:
        return WebhookPlan()
    data = {"sip_call_id": participant.attributes.get("sip.callID")}
    return WebhookPlan([_spec(webhook, event_type, data)])


def _participant_left(webhook: WebhookEvent, call: CallRecord) -> WebhookPlan:
    participant = webhook.participant
    reason = participant.disconnect_reason
    if reason in _ROOM_ENDED:
        return WebhookPlan(recheck=not call.is_terminal)
    extra = {"disconnect_reason": DisconnectReason.Name(reason)}
    if not _answered(call, participant):
        outcome = left_before_answer_outcome(reason, participant.attributes)
        return WebhookPlan([_end_event(webhook, outcome, extra)])
    events = []
    if call.status != "in_progress":
        # Answered, but the answer was only visible in attributes (no webhook for those).
        events.append(_spec(webhook, "call.answered", {"inferred": True}))
    events.append(_end_event(webhook, left_after_answer_outcome(reason), extra))
    return WebhookPlan(events)


def _room_finished(webhook: WebhookEvent, call: CallRecord) -> WebhookPlan:
    """The room is gone with the call still open: its deleter's report may be on the way,
    so the reconciler settles the call soon if nothing else does."""
    return WebhookPlan(recheck=not call.is_terminal)


def _agent_job_ended(webhook: WebhookEvent, call: CallRecord) -> WebhookPlan:
    job = webhook.job
    data = {
        "job_id": job.id,
        "agent_name": job.agent_name,
        "job_status": JobStatus.Name(job.state.status),
        "error": job.state.error or None,
    }
    gone = _agent_gone(webhook, call, {"job_id": job.id})
    return WebhookPlan([_spec(webhook, "agent.job_ended", data), *gone.events], gone.delete_room)


def _agent_left(webhook: WebhookEvent, call: CallRecord) -> WebhookPlan:
    participant = webhook.participant
    if participant.disconnect_reason in _ROOM_ENDED:
        return WebhookPlan()
    reason = DisconnectReason.Name(participant.disconnect_reason)
    return _agent_gone(
        webhook, call, {"agent_identity": participant.identity, "disconnect_reason": reason}
    )


def plan_webhook(webhook: WebhookEvent, call: CallRecord) -> WebhookPlan:
    kind = webhook.event
    if kind == "participant_joined" and _is_sip(webhook.participant):
        return _participant_joined(webhook)
    if kind in _LEFT_EVENTS and _is_sip(webhook.participant):
        return _participant_left(webhook, call)
    if kind == "participant_joined" and _is_agent(webhook.participant):
        if call.dial_mode != "agent_joined":
            return WebhookPlan()
        data = {"agent_identity": webhook.participant.identity, "source": "livekit"}
        return WebhookPlan([_spec(webhook, "agent.ready", data)])
    if kind in _LEFT_EVENTS and _is_agent(webhook.participant):
        return _agent_left(webhook, call)
    if kind == "room_finished":
        return _room_finished(webhook, call)
    if kind == "agent_job_started":
        job = webhook.job
        data = {"job_id": job.id, "agent_name": job.agent_name}
        return WebhookPlan([_spec(webhook, "agent.job_started", data)])
    if kind == "agent_job_ended":
        return _agent_job_ended(webhook, call)
    return WebhookPlan()
