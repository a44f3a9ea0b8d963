"""A call's events with their callback delivery state, and redelivery on request."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import SettingsDep, StoreDep, WorkspaceCallDep
from api.errors import ApiError, error_response, not_found
from api.openapi import NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.relay.views import events_with_delivery
from api.schemas.events import CallEvents, RedeliveryQueued
from api.store.events import event_sequence
from api.store.redelivery import enqueue_redelivery

router = APIRouter(
    prefix="/v1/api", tags=["events"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)


@router.get("/call/{call_id}/events", responses=error_responses(NOT_FOUND))
async def list_call_events(call: WorkspaceCallDep, store: StoreDep) -> CallEvents:
    return CallEvents.of(call.id, await events_with_delivery(store, call))


_QUEUED: dict[int | str, dict[str, Any]] = {
    202: {"model": RedeliveryQueued, "description": "The redelivery is queued"}
}


# `response_model=None`: the 429 is returned as a response (it carries Retry-After).
@router.post(
    "/call/{call_id}/events/{event_id}/redeliver",
    status_code=202,
    response_model=None,
    responses=_QUEUED
    | error_responses(
        NOT_FOUND,
        {
            409: "NO_CALLBACK_URL, REDELIVERY_PENDING",
            429: "RATE_LIMITED: too many redeliveries (Retry-After)",
        },
    ),
)
async def redeliver(
    call: WorkspaceCallDep, event_id: str, store: StoreDep, settings: SettingsDep
) -> RedeliveryQueued | JSONResponse:
    call_id = call.id
    sequence = await event_sequence(store, call_id, event_id)
    if sequence is None:
        raise not_found("event", event_id)
    if not call.callback_url:
        raise ApiError(409, "NO_CALLBACK_URL", f"call {call_id} has no callback_url")
    queued = await enqueue_redelivery(
        store, call.workspace_id, call_id, sequence, settings.redeliveries_per_minute
    )
    if queued.outcome == "pending":
        raise ApiError(
            409,
            "REDELIVERY_PENDING",
            f"a redelivery of event {event_id} is already pending",
            {"eventId": event_id},
        )
    if queued.outcome == "limited":
        retry_after = max(1, math.ceil(queued.retry_after_ms / 1000))
        limited = error_response(
            429,
            "RATE_LIMITED",
            f"at most {settings.redeliveries_per_minute} redeliveries per minute",
            {"retryAfterSeconds": retry_after},
        )
        limited.headers["Retry-After"] = str(retry_after)
        return limited
    return RedeliveryQueued(
        status="success",
        call_id=call_id,
        event_id=event_id,
        sequence=sequence,
        job_id=queued.job_id,
    )
