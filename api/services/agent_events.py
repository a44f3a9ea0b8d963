"""Events from agent workers: what each records on its call, and how it is applied.

The event table (`api.store.events.EVENT_STATUS`) says which status an event moves the call
to; `agent_call_fields` says which call fields an agent's event writes with it. The apply
script holds the call's informational events to a quota (`event_quota`: events and bytes
per call; after the end, only a late `call.transcript` within a short grace), so a token
holder cannot fill Redis.

When an agent's end event ends the call, its room is deleted too (`drop_room`, idempotent):
the agent does so itself, but a DeleteRoom it could not send, or a dial that landed after
it gave up, would otherwise leave a callee on a line nobody watches (a terminal call is
never looked at again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from livekit import api as lkapi

from agent_runtime.contract import AgentEvent
from api.errors import ApiError, not_found
from api.services.call_end import count_call_end
from api.settings import Settings
from api.store.base import Store
from api.store.calls import get_call
from api.store.events import ApplyResult, EventQuota, EventSpec, apply_event, mark_agent_ready
from sip import delete_room

logger = logging.getLogger("outdial.api")

_END_EVENTS = ("call.ended", "call.failed")
_REFUSED = {
    "ended": (409, "CALL_ENDED", "the call ended: only a late call.transcript is accepted"),
    "over_quota": (409, "EVENT_QUOTA_EXCEEDED", "the call has no room for more agent events"),
}


def _sip_status_code(value: Any) -> int | None:
    """A SIP status code (100-699) as the agent sent it, else None: the call's field is read
    back as an integer, so anything else would break every later read of the call."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3:
        value = int(value)
    return value if type(value) is int and 100 <= value <= 699 else None


def agent_call_fields(event: AgentEvent) -> dict[str, str]:
    """What an agent event records on the call itself."""
    data = event.data
    picked: dict[str, Any] = {}
    if event.type in _END_EVENTS:
        picked = {
            "end_reason": data.get("reason") or ("error" if event.type == "call.failed" else None),
            "duration_seconds": data.get("duration_seconds"),
            "sip_status_code": _sip_status_code(data.get("sip_status_code")),
            "sip_status": data.get("sip_status"),
        }
    if event.type == "call.failed":
        picked["error_code"] = data.get("code") or str(picked["end_reason"]).upper()
        picked["error_message"] = data.get("message")
    return {name: str(value)[:500] for name, value in picked.items() if value is not None}


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
    EVENT_QUOTA_EXCEEDED (409, with the call's status), VALIDATION_ERROR (an event that
    breaks the vocabulary)."""
    spec = EventSpec(
        type=event.type,
        data=event.data,
        id=event.id,
        timestamp=event.timestamp,
        call_fields=agent_call_fields(event),
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
        raise ApiError(status, code, message, {"callStatus": result.status})
    ended_room = None
    if result.applied and event.type in _END_EVENTS:
        call = await get_call(store, call_id)
        ended_room = call.room_name if call is not None else None
    return RecordedAgentEvent(result, ended_room)


async def drop_room(livekit: lkapi.LiveKitAPI, room_name: str, call_id: str) -> None:
    """Deletes the room of a call an agent ended; a failure is logged."""
    try:
        await delete_room(livekit, room_name)
    except (lkapi.ServerError, OSError, TimeoutError) as exc:
        logger.warning("could not delete room %s: %s", room_name, exc, extra={"call_id": call_id})
