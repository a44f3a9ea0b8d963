"""Calls of the calling workspace: place, read, list, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.deps import CredentialsDep, SettingsDep, StoreDep, WorkspaceCallDep, WorkspaceDep
from api.errors import ApiError
from api.metrics import CALLS_ACCEPTED
from api.schemas.calls import CallAccepted, CallCreate
from api.services.calls import cancel_call, place_call
from api.store.calls import CALL_STATUSES, CallRecord, list_calls
from api.store.events import iso_timestamp

router = APIRouter(prefix="/v1/api", tags=["calls"])

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


_CALL_DOCS: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": CallCreate.model_json_schema()}},
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
        },
    ],
}


@router.post("/call", response_model=CallAccepted, openapi_extra=_CALL_DOCS)
async def create_call(
    request: Request, creds: CredentialsDep, store: StoreDep, settings: SettingsDep
) -> JSONResponse:
    # place_call authenticates (in its one read round trip) before it judges the body.
    idempotency_key = request.headers.get("idempotency-key")
    raw_body = await request.body()
    accepted = await place_call(store, settings, creds, raw_body, idempotency_key)
    CALLS_ACCEPTED.inc()
    # Built by place_call in CallAccepted's shape; returned as is on the hot path.
    return JSONResponse(accepted)


@router.get("/call/{call_id}")
async def get_call(call: WorkspaceCallDep) -> dict[str, Any]:
    return call_view(call)


@router.post("/call/{call_id}/cancel")
async def cancel(call: WorkspaceCallDep, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    status = await cancel_call(store, settings, call)
    return {"status": "success", "callId": call.id, "callStatus": status}


@router.get("/calls")
async def calls(
    workspace: WorkspaceDep,
    store: StoreDep,
    status: Annotated[str | None, Query()] = None,
    agent_id: Annotated[str | None, Query()] = None,
    campaign_id: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,20}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
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
