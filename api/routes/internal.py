"""Events from agent workers, authenticated by the per-call token in the dispatch contract.

A token holder must not be able to fill Redis: the token is checked before the body is
read, the body and its `timestamp` are bounded, and the apply script holds the call's
informational events to a quota (events and bytes per call; after the end, only a late
`call.transcript` within a short grace).

When an agent's end event ends the call, the API deletes the call's room too (idempotent):
the agent does so itself, but a DeleteRoom it could not send, or a dial that landed after
it gave up, would otherwise leave a callee on a line nobody watches (a terminal call is
never looked at again).
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Request
from livekit import api as lkapi
from pydantic import ValidationError

from agent_runtime.contract import AgentEvent
from api.deps import LiveKitDep, SettingsDep, StoreDep, bearer_token
from api.errors import ApiError, not_found, unauthorized, validation_error
from api.openapi import BODY, STORAGE, error_responses
from api.schemas.events import AgentEventApplied
from api.security import event_token_matches
from api.settings import Settings
from api.store.calls import get_call
from api.store.events import EventQuota, EventSpec, apply_event, mark_agent_ready
from sip import delete_room

logger = logging.getLogger("outdial.api")

router = APIRouter(prefix="/v1/internal", tags=["internal"])


def _sip_status_code(value: Any) -> int | None:
    """A SIP status code (100-699) as the agent sent it, else None: the call's field is read
    back as an integer, so anything else would break every later read of the call."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3:
        value = int(value)
    return value if type(value) is int and 100 <= value <= 699 else None


def _call_fields(event: AgentEvent) -> dict[str, str]:
    """What an agent event records on the call itself."""
    data = event.data
    picked: dict[str, Any] = {}
    if event.type in ("call.ended", "call.failed"):
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


async def _drop_room(livekit: lkapi.LiveKitAPI, room_name: str, call_id: str) -> None:
    try:
        await delete_room(livekit, room_name)
    except (lkapi.ServerError, OSError, TimeoutError) as exc:
        logger.warning("could not delete room %s: %s", room_name, exc, extra={"call_id": call_id})


# An event's `timestamp` may be this far from the API's clock (agents' clocks drift,
# and a late transcript is sent after the call); further is a bad input.
TIMESTAMP_SKEW_SECONDS = 86_400


def event_quota(settings: Settings, event_type: str) -> EventQuota:
    grace_s = settings.agent_late_transcript_grace_seconds if event_type == "call.transcript" else 0
    return EventQuota(
        max_events=settings.agent_events_per_call,
        max_bytes=settings.agent_event_bytes_per_call,
        after_end_ms=grace_s * 1000,
    )


def _max_body(settings: Settings) -> int:
    """A transcript may use the call's whole byte budget; any other event the per-event cap."""
    return max(settings.agent_event_max_bytes, settings.agent_event_bytes_per_call)


async def _read_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "PAYLOAD_TOO_LARGE", f"agent event over {limit} bytes", {"limit_bytes": limit}
    )


def parse_event(raw: bytes, settings: Settings) -> AgentEvent:
    """The event in `raw`, within its size and timestamp bounds (else 413 / 422)."""
    try:
        event = AgentEvent.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from exc
    if event.type != "call.transcript" and len(raw) > settings.agent_event_max_bytes:
        raise _too_large(settings.agent_event_max_bytes)
    if not abs(event.timestamp - time.time()) <= TIMESTAMP_SKEW_SECONDS:  # NaN too
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            f"timestamp: must be within {TIMESTAMP_SKEW_SECONDS} s of now",
            {"errors": [{"field": "timestamp", "message": "too far from now"}]},
        )
    return event


_REFUSED = {
    "ended": (409, "CALL_ENDED", "the call ended: only a late call.transcript is accepted"),
    "over_quota": (409, "EVENT_QUOTA_EXCEEDED", "the call has no room for more agent events"),
}


@router.post(
    "/calls/{call_id}/events",
    response_model=AgentEventApplied,
    responses=error_responses(
        BODY,
        STORAGE,
        {
            401: "UNAUTHORIZED: event token missing or not valid for this call",
            404: "NOT_FOUND: no such call",
            409: "CALL_ENDED, EVENT_QUOTA_EXCEEDED",
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": AgentEvent.model_json_schema()}},
        }
    },
)
async def agent_event(
    call_id: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    livekit: LiveKitDep,
    background: BackgroundTasks,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    # The token first: nobody without it gets the body parsed.
    token = bearer_token(authorization)
    if token is None or not event_token_matches(call_id, token, settings.event_signing_key):
        raise unauthorized("event token missing or not valid for this call")
    event = parse_event(await _read_body(request, _max_body(settings)), settings)
    spec = EventSpec(
        type=event.type,
        data=event.data,
        id=event.id,
        timestamp=event.timestamp,
        call_fields=_call_fields(event),
        quota=event_quota(settings, event.type),
    )
    apply = mark_agent_ready if event.type == "agent.ready" else apply_event
    try:
        result = await apply(store, call_id, spec)
    except ValueError as exc:
        raise ApiError(422, "VALIDATION_ERROR", str(exc)) from exc
    if result.outcome == "missing":
        raise not_found("call", call_id)
    if result.outcome in _REFUSED:
        status, code, message = _REFUSED[result.outcome]
        raise ApiError(status, code, message, {"callStatus": result.status})
    if result.applied and event.type in ("call.ended", "call.failed"):
        call = await get_call(store, call_id)
        if call is not None:
            background.add_task(_drop_room, livekit, call.room_name, call_id)
    return {
        "status": "success",
        "applied": result.applied,
        "outcome": result.outcome,
        "sequence": result.sequence or None,
        "callStatus": result.status,
    }
