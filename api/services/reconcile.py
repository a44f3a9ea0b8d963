"""What a call's passed deadline means, given what LiveKit says is true now.

Pure: `settle` reads the call as stored and a snapshot of its room, and plans what to do;
`api.jobs.reconcile` looks at LiveKit and carries the plan out. Every planned event is a
compare-and-set on the status that was read, so a call that moved on meanwhile (a webhook,
the agent) is left alone. Every outcome ends the call or moves its deadline, so no call
stays past a deadline in a non-terminal state.

| status at the deadline | LiveKit says | the call |
|---|---|---|
| queued, waiting for its limits | - | failed `WAITING_TIMEOUT` (its waiting budget is spent) |
| scheduled, queued, dispatching | - | failed `DISPATCH_TIMEOUT` (room dropped) |
| waiting_for_agent | an agent is in the room, dial mode `agent_joined` | dial step queued |
| waiting_for_agent | otherwise (joined but never ready is stuck) | failed `AGENT_UNAVAILABLE` |
| dialing, ringing | leg answered, an agent in the room | `call.answered` (inferred) |
| dialing, ringing | leg answered, no agent | failed `agent_unavailable`/`agent_failed` |
| dialing, ringing | before ring timeout + margin | look again (ready agent: at the end) |
| dialing, ringing | leg still ringing | no_answer, room dropped |
| dialing, ringing | no leg, dial confirmed | no_answer (the leg left unreported) |
| dialing, ringing | no leg, dial never confirmed | failed `DIAL_INTERRUPTED` |
| in_progress | no leg | completed (ended unreported), room dropped |
| in_progress | leg, no agent | failed `agent_unavailable`/`agent_failed`, room dropped |
| in_progress | leg and agent, past max duration | completed `max_duration`, room dropped |
| in_progress | leg and agent | next deadline: max duration + margin from the answer |

Every failure drops the room; before `dialing` nobody was rung.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit.protocol.models import ParticipantInfo

from api.services.call_end import end_event
from api.store.call_record import CallRecord
from api.store.events import EventSpec
from sip import CallOutcome
from sip.outcomes import ANSWERED_CALL_STATUSES, SIP_CALL_STATUS_ATTRIBUTE

ROOM_STATUSES = frozenset({"waiting_for_agent", "dialing", "ringing", "in_progress"})
_SOURCE = {"source": "reconciler"}


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    sip_leg: ParticipantInfo | None
    has_agent: bool

    @classmethod
    def of(cls, participants: list[ParticipantInfo], sip_identity: str) -> RoomSnapshot:
        leg = next((p for p in participants if p.identity == sip_identity), None)
        agent = any(p.kind == ParticipantInfo.Kind.AGENT for p in participants)
        return cls(leg, agent)


@dataclass(frozen=True, slots=True)
class Settlement:
    event: EventSpec | None = None
    drop_room: bool = False
    # the agent is in the room: its dial step goes out
    dial: bool = False
    next_deadline_ms: int | None = None
    # LiveKit's webhooks should have told the API this (a leg left): they are not arriving
    unreported: bool = False


def _failed(code: str, message: str, reason: str, status: str) -> Settlement:
    outcome = CallOutcome("failed", reason)
    event = end_event(outcome, code=code, message=message, data=_SOURCE, expected_status=status)
    return Settlement(event=event, drop_room=True)


def _ended(status: str, reason: str, read_status: str, message: str) -> EventSpec:
    outcome = CallOutcome(status, reason)  # type: ignore[arg-type]
    return end_event(outcome, message=message, data=_SOURCE, expected_status=read_status)


def _ring_deadline_ms(call: CallRecord, now_ms: int) -> int:
    budget_s = call.ring_timeout_seconds + (call.deadline_margin_s or 0)
    return call.transitions.get("dialing", now_ms) + budget_s * 1000


def _settle_unanswered(
    call: CallRecord, room: RoomSnapshot, status: str, now_ms: int
) -> Settlement:
    leg = room.sip_leg
    if leg is not None and leg.attributes.get(SIP_CALL_STATUS_ATTRIBUTE) in ANSWERED_CALL_STATUSES:
        # Answered, and no agent reported it: without an agent in the room the callee is
        # talking to silence now. (LiveKit sends no webhook for an answer: this says
        # nothing about webhooks.)
        if not room.has_agent:
            return _no_agent_on_the_line(call, status)
        answered = EventSpec("call.answered", {"inferred": True, **_SOURCE}, expected_status=status)
        return Settlement(answered)
    final_ms = _ring_deadline_ms(call, now_ms)
    if now_ms < final_ms:
        # Not decided yet (a leg still ringing, or one that left and whose end the agent
        # may still report). Without a ready agent nobody reports an answer: look again
        # within the answer grace; with one, at the ring deadline.
        grace_ms = (call.answer_grace_s or 0) * 1000
        ready = call.agent_ready_at is not None
        polled = final_ms if ready else min(now_ms + grace_ms, final_ms)
        return Settlement(next_deadline_ms=polled)
    if leg is None:
        if not call.sip_call_id:
            message = "the dial was never confirmed and no leg exists"
            return _failed("DIAL_INTERRUPTED", message, "error", status)
        message = "the SIP leg left without a reported outcome"
        return Settlement(_ended("no_answer", "no_answer", status, message), unreported=True)
    message = "still ringing past the ring timeout"
    return Settlement(_ended("no_answer", "no_answer", status, message), drop_room=True)


def _no_agent_on_the_line(call: CallRecord, status: str) -> Settlement:
    if call.agent_ready_at is not None:
        return _failed("AGENT_LEFT", "the agent left the call", "agent_failed", status)
    message = "no agent joined the answered call"
    return _failed("AGENT_UNAVAILABLE", message, "agent_unavailable", status)


def _settle_in_progress(call: CallRecord, room: RoomSnapshot, now_ms: int) -> Settlement:
    if room.sip_leg is None:
        # the room was deleted (its deleter's report got lost) or the leg left unreported
        message = "the SIP leg left without a reported end"
        event = _ended("completed", "completed", "in_progress", message)
        return Settlement(event, drop_room=True)
    if not room.has_agent:
        return _no_agent_on_the_line(call, "in_progress")
    answered_ms = call.transitions.get("in_progress", now_ms)
    budget_s = call.max_duration_seconds + (call.deadline_margin_s or 0)
    limit_ms = answered_ms + budget_s * 1000
    if now_ms >= limit_ms:
        message = "past the maximum duration"
        event = _ended("completed", "max_duration", "in_progress", message)
        return Settlement(event, drop_room=True)
    return Settlement(next_deadline_ms=limit_ms)


def settle(call: CallRecord, room: RoomSnapshot | None, now_ms: int) -> Settlement:
    """The plan for a call whose deadline passed; `room` is needed for `ROOM_STATUSES`."""
    status = call.status
    if status == "queued" and call.waiting_for is not None:
        budget = call.max_waiting_s or call.dispatch_timeout_s
        message = f"the call waited over {budget} s for {call.waiting_for}; nobody was dialed"
        return _failed("WAITING_TIMEOUT", message, "error", status)
    # a scheduled call's deadline is its due time plus the dispatch timeout and margin
    if status in ("scheduled", "queued", "dispatching"):
        message = f"the call was still {status} at its dispatch deadline"
        return _failed("DISPATCH_TIMEOUT", message, "error", status)
    if room is None:
        raise ValueError(f"a {status} call needs a room snapshot")
    if status == "waiting_for_agent":
        if room.has_agent and call.dial_mode == "agent_joined":
            return Settlement(dial=True)
        message = "no agent was ready in time; nobody was dialed"
        return _failed("AGENT_UNAVAILABLE", message, "agent_unavailable", status)
    if status in ("dialing", "ringing"):
        return _settle_unanswered(call, room, status, now_ms)
    return _settle_in_progress(call, room, now_ms)
