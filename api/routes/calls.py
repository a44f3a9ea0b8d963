"""Calls of the calling workspace: read, list, cancel (placing them: `call_accept`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import LiveKitDep, StoreDep, WorkspaceCallDep, WorkspaceDep
from api.errors import ApiError
from api.openapi import NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.calls import CallCanceled, CallPage, CallView
from api.services.calls import cancel_call
from api.store.calls import CALL_STATUSES, CallRecord, list_calls
from api.store.events import iso_timestamp

router = APIRouter(
    prefix="/v1/api", tags=["calls"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)

_TRANSITION_FIELDS = tuple(f"ts_{status}" for status in CALL_STATUSES)


def _ms_to_iso(value: str | int | None) -> str | None:
    return iso_timestamp(int(value) / 1000) if value else None


def call_view(call: CallRecord) -> dict[str, Any]:
    fields = call.fields
    return {
        "callId": fields["id"],
        "status": fields["status"],
        "to": fields["to"],
        "from": fields.get("from"),
        "agentId": fields["agent_id"],
        "roomName": fields["room_name"],
        "jobId": fields.get("job_id"),
        "campaignId": fields.get("campaign_id"),
        "callbackUrl": fields.get("callback_url"),
        "sipTrunkId": fields.get("sip_trunk_id"),
        "sipCallId": fields.get("sip_call_id"),
        "sipStatusCode": fields.get("sip_status_code"),
        "sipStatus": fields.get("sip_status"),
        "endReason": fields.get("end_reason"),
        "errorCode": fields.get("error_code"),
        "errorMessage": fields.get("error_message"),
        "maxDurationSeconds": fields.get("max_duration_seconds"),
        "ringTimeoutSeconds": fields.get("ring_timeout_seconds"),
        "createdAt": _ms_to_iso(fields.get("created_at")),
        "updatedAt": _ms_to_iso(fields.get("updated_at")),
        "endedAt": _ms_to_iso(fields.get("ended_at")),
        "transitions": {
            name[3:]: _ms_to_iso(fields[name]) for name in _TRANSITION_FIELDS if name in fields
        },
        "dynamicVariables": fields.get("dynamic_variables", {}),
        "metadata": fields.get("metadata", {}),
    }


@router.get("/call/{call_id}", response_model=CallView, responses=error_responses(NOT_FOUND))
async def get_call(call: WorkspaceCallDep) -> dict[str, Any]:
    return call_view(call)


@router.post(
    "/call/{call_id}/cancel",
    response_model=CallCanceled,
    responses=error_responses(NOT_FOUND, {409: "CALL_ALREADY_ENDED"}),
)
async def cancel(call: WorkspaceCallDep, store: StoreDep, livekit: LiveKitDep) -> dict[str, Any]:
    status = await cancel_call(store, livekit, call)
    return {"status": "success", "callId": call.id, "callStatus": status}


@router.get(
    "/calls",
    response_model=CallPage,
    responses=error_responses({422: "VALIDATION_ERROR: a query parameter is invalid"}),
)
async def calls(
    workspace: WorkspaceDep,
    store: StoreDep,
    status: Annotated[str | None, Query()] = None,
    agent_id: Annotated[str | None, Query()] = None,
    campaign_id: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,20}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Newest first. One request examines at most `MAX_SCAN_PER_PAGE` calls: a filtered
    page may be short (or empty) with a `nextCursor`; the list ends when it is null."""
    if status is not None and status not in CALL_STATUSES:
        raise ApiError(422, "VALIDATION_ERROR", f"status must be one of {', '.join(CALL_STATUSES)}")
    page = await list_calls(
        store,
        workspace.id,
        limit=limit,
        cursor=cursor,
        status=status,
        agent_id=agent_id,
        campaign_id=campaign_id,
    )
    return {"calls": [call_view(call) for call in page.calls], "nextCursor": page.next_cursor}
