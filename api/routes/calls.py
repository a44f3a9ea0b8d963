"""Calls of the calling workspace: read, list, move (a scheduled call), cancel (placing
them: `call_accept`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import LiveKitDep, StoreDep, WorkspaceCallDep, WorkspaceDep
from api.errors import ApiError
from api.openapi import BODY, NOT_FOUND, STORAGE, WORKSPACE_AUTH, error_responses
from api.schemas.calls import CallCanceled, CallPage, CallReschedule, CallView
from api.services.calls import cancel_call, reschedule_call
from api.store.call_fields import CALL_STATUSES
from api.store.calls import list_calls

router = APIRouter(
    prefix="/v1/api", tags=["calls"], responses=error_responses(WORKSPACE_AUTH, STORAGE)
)


@router.get("/call/{call_id}", responses=error_responses(NOT_FOUND))
async def get_call(call: WorkspaceCallDep) -> CallView:
    return CallView.of(call)


@router.patch(
    "/call/{call_id}",
    responses=error_responses(
        NOT_FOUND,
        BODY,
        {
            409: "CALL_NOT_SCHEDULED, TOO_MANY_MOVES",
            422: "CALL_WINDOW_NEVER_OPEN, CALL_WINDOW_ZONE_UNKNOWN",
        },
    ),
)
async def move(call: WorkspaceCallDep, store: StoreDep, body: CallReschedule) -> CallView:
    """Move a call that is still `scheduled` to a new `scheduled_at` or `delay_seconds`."""
    return CallView.of(await reschedule_call(store, call, body))


@router.post(
    "/call/{call_id}/cancel",
    responses=error_responses(NOT_FOUND, {409: "CALL_ALREADY_ENDED"}),
)
async def cancel(call: WorkspaceCallDep, store: StoreDep, livekit: LiveKitDep) -> CallCanceled:
    return CallCanceled(call_id=call.id, status=await cancel_call(store, livekit, call))


@router.get(
    "/calls",
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
) -> CallPage:
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
    return CallPage(calls=[CallView.of(call) for call in page.calls], next_cursor=page.next_cursor)
