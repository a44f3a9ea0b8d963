"""Events from agent workers, and their calls' minute extensions, authenticated by the
per-call token in the dispatch contract.

A token holder must not be able to fill Redis: the token is checked before the body is
read, the body and its `timestamp` are bounded, and the apply step holds the call's
informational events to a quota (`api.services.agent_events`, which also deletes the room
of a call an agent's end event ended).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from pydantic import ValidationError

from agent_runtime.contract import AgentEvent
from api.auth import bearer_token
from api.deps import LiveKitDep, SettingsDep, StoreDep
from api.errors import ApiError, not_found, unauthorized, validation_error
from api.openapi import BODY, STORAGE, error_responses
from api.schemas.billing import ReservationAnswer
from api.schemas.events import AgentEventApplied
from api.security import event_token_matches
from api.services.agent_events import record_agent_event
from api.services.call_end import drop_room
from api.settings import Settings
from api.store.billing import extend_reservation

router = APIRouter(prefix="/v1/internal", tags=["internal"])


# An event's `timestamp` may be this far from the API's clock (agents' clocks drift,
# and a late transcript is sent after the call); further is a bad input.
TIMESTAMP_SKEW_SECONDS = 86_400


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
        413, "PAYLOAD_TOO_LARGE", f"agent event over {limit} bytes", {"limitBytes": limit}
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


def _check_token(call_id: str, authorization: str | None, settings: Settings) -> None:
    token = bearer_token(authorization)
    if token is None or not event_token_matches(call_id, token, settings.event_signing_key):
        raise unauthorized("event token missing or not valid for this call")


@router.post(
    "/calls/{call_id}/events",
    responses=error_responses(
        BODY,
        STORAGE,
        {
            401: "UNAUTHORIZED: event token missing or not valid for this call",
            404: "NOT_FOUND: no such call",
            409: "CALL_ENDED, EVENT_QUOTA_EXCEEDED, DNC_LIST_FULL (a `call.opted_out` the "
            "do-not-call list has no room for)",
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
) -> AgentEventApplied:
    # The token first: nobody without it gets the body parsed.
    _check_token(call_id, authorization, settings)
    event = parse_event(await _read_body(request, _max_body(settings)), settings)
    recorded = await record_agent_event(store, settings, call_id, event)
    if recorded.ended_room is not None:
        background.add_task(drop_room, livekit, recorded.ended_room, call_id)
    result = recorded.result
    return AgentEventApplied(
        applied=result.applied,
        outcome=result.outcome,
        sequence=result.sequence or None,
        status=result.status,
    )


@router.post(
    "/calls/{call_id}/reservation",
    responses=error_responses(
        STORAGE,
        {
            401: "UNAUTHORIZED: event token missing or not valid for this call",
            404: "NOT_FOUND: no such call",
            422: "VALIDATION_ERROR: held_seconds is not a whole number of seconds",
        },
    ),
)
async def extend_call_reservation(
    call_id: str,
    store: StoreDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
    held_seconds: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
) -> ReservationAnswer:
    """One more minute for a metered call still going, from its workspace's balance (what
    is left of it when less than a minute): `granted: false` when nothing is left (the agent
    ends the call, `balance_exhausted`) or the call ended. An unmetered call, one unmetered
    since its accept included, is granted 0 (the agent stops asking).
    `held_seconds`, what the agent holds, makes a retried ask take nothing twice; a call
    that holds its whole max duration is granted without taking more."""
    _check_token(call_id, authorization, settings)
    extension = await extend_reservation(store, call_id, held_seconds)
    if extension.outcome == "missing":
        raise not_found("call", call_id)
    return ReservationAnswer(
        granted=extension.outcome == "granted", reserved_seconds=extension.reserved_seconds
    )
