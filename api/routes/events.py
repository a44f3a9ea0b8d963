"""A call's events with their callback delivery state, and redelivery on request."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import StoreDep, WorkspaceCallDep
from api.errors import ApiError, not_found
from api.relay.redeliver import enqueue_redelivery
from api.relay.views import event_sequence, events_with_delivery

router = APIRouter(prefix="/v1/api", tags=["events"])


@router.get("/call/{call_id}/events")
async def list_call_events(call: WorkspaceCallDep, store: StoreDep) -> dict[str, Any]:
    return {"callId": call.id, "events": await events_with_delivery(store, call)}


@router.post("/call/{call_id}/events/{event_id}/redeliver", status_code=202)
async def redeliver(call: WorkspaceCallDep, event_id: str, store: StoreDep) -> dict[str, Any]:
    call_id = call.id
    sequence = await event_sequence(store, call_id, event_id)
    if sequence is None:
        raise not_found("event", event_id)
    if not call.get("callback_url"):
        raise ApiError(409, "NO_CALLBACK_URL", f"call {call_id} has no callback_url")
    job_id = await enqueue_redelivery(store, call_id, sequence)
    return {
        "status": "success",
        "callId": call_id,
        "eventId": event_id,
        "sequence": sequence,
        "jobId": job_id,
    }
