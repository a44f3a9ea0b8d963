"""Events from agent workers: how each is applied to its call, within the agent's quota.

What an event does to its call is the store's event table: the status it moves the call to
(`api.store.events.EVENT_STATUS`) and the call fields an agent's event writes with it
(`api.store.event_fields.agent_update`). The apply script holds the call's informational
events to a quota (`event_quota`: events and bytes per call; after the end, only a late
`call.transcript` within a short grace), so a token holder cannot fill Redis.

`call.opted_out` (the callee asked not to be called again) first puts the call's own number
on its workspace's do-not-call list (source `opt_out`; idempotent, so a retried event adds
nothing twice), whatever number the event's data names: a token opens only its own call.

When an agent's end event ends the call, its room is deleted too (`call_end.drop_room`,
idempotent): the agent does so itself, but a DeleteRoom it could not send, or a dial that
landed after it gave up, would otherwise leave a callee on a line nobody watches (a
terminal call is never looked at again).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_runtime.contract import AgentEvent
from api.errors import ApiError, not_found
from api.services.call_end import count_call_end
from api.settings import Settings
from api.store.base import Store
from api.store.calls import get_call
from api.store.dnc import DncListFull, add_to_dnc
from api.store.event_fields import agent_update
from api.store.events import ApplyResult, EventQuota, EventSpec, apply_event, mark_agent_ready

_REFUSED = {
    "ended": (409, "CALL_ENDED", "the call ended: only a late call.transcript is accepted"),
    "over_quota": (409, "EVENT_QUOTA_EXCEEDED", "the call has no room for more agent events"),
}


def event_quota(settings: Settings, event_type: str) -> EventQuota:
    grace_s = settings.agent_late_transcript_grace_seconds if event_type == "call.transcript" else 0
    return EventQuota(
        max_events=settings.agent_events_per_call,
        max_bytes=settings.agent_event_bytes_per_call,
        after_end_ms=grace_s * 1000,
    )


@dataclass(frozen=True, slots=True)
class RecordedAgentEvent:
    result: ApplyResult
    # The room of the call this event ended (to delete), else None.
    ended_room: str | None


async def record_agent_event(
    store: Store, settings: Settings, call_id: str, event: AgentEvent
) -> RecordedAgentEvent:
    """Applies the agent's event to its call: NOT_FOUND (no such call), CALL_ENDED or
    EVENT_QUOTA_EXCEEDED (409, with the call's `status`), VALIDATION_ERROR (an event that
    breaks the vocabulary), DNC_LIST_FULL (409: an opt-out the list has no room for)."""
    if event.type == "call.opted_out":
        await _list_callee(store, call_id)
    spec = EventSpec(
        type=event.type,
        data=event.data,
        id=event.id,
        timestamp=event.timestamp,
        call_update=agent_update(event),
        quota=event_quota(settings, event.type),
    )
    apply = mark_agent_ready if event.type == "agent.ready" else apply_event
    try:
        result = await apply(store, call_id, spec)
    except ValueError as exc:
        raise ApiError(422, "VALIDATION_ERROR", str(exc)) from exc
    count_call_end(result)
    if result.outcome == "missing":
        raise not_found("call", call_id)
    if result.outcome in _REFUSED:
        status, code, message = _REFUSED[result.outcome]
        raise ApiError(status, code, message, {"status": result.status})
    ended_room = None
    if result.ended:
        call = await get_call(store, call_id)
        ended_room = call.room_name if call is not None else None
    return RecordedAgentEvent(result, ended_room)


async def _list_callee(store: Store, call_id: str) -> None:
    """Put the call's number on its workspace's do-not-call list (`opt_out`)."""
    call = await get_call(store, call_id)
    if call is None:
        raise not_found("call", call_id)
    try:
        await add_to_dnc(store, call.workspace_id, [call.to], "opt_out")
    except DncListFull as exc:
        details = {"limit": exc.limit, "size": exc.size}
        raise ApiError(409, "DNC_LIST_FULL", str(exc), details) from exc
