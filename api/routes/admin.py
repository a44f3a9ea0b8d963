"""Operator endpoints: workspaces, their keys and integration tokens, trunks and destination
countries (Bearer OUTDIAL_ADMIN_TOKEN).

Only the operator gives a workspace a raw trunk id (its credentials and bill are whoever's
trunk it is), and only the operator widens or narrows where a workspace may call.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AdminDep, PublicBaseUrlDep, StoreDep
from api.errors import ApiError, not_found
from api.openapi import ADMIN_AUTH, BODY, NOT_FOUND, STORAGE, error_responses
from api.schemas.admin import (
    CallWindowUpdate,
    CountriesUpdate,
    HookTokenRotated,
    KeyRotated,
    TrunkAssignment,
    TrunkAssignments,
    WorkspaceCreate,
    WorkspaceCreated,
    WorkspaceList,
    WorkspaceOut,
    WorkspaceUpdate,
)
from api.security import integration_base_url
from api.services.call_windows import window_to_json
from api.store import billing, numbers, workspaces
from api.store.base import Store
from api.store.workspaces import Workspace

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses=error_responses(ADMIN_AUTH, STORAGE),
)
# Errors of the routes that name a workspace, and of those that also take a body.
_BY_ID = error_responses(NOT_FOUND)
_BY_ID_WITH_BODY = error_responses(NOT_FOUND, BODY)


async def _shown(store: Store, workspace: Workspace | None, workspace_id: str) -> WorkspaceOut:
    """The workspace with its balance (NOT_FOUND when there is none)."""
    if workspace is None:
        raise not_found("workspace", workspace_id)
    found = await billing.balances(store, [workspace.id])
    return WorkspaceOut.of(workspace, found[workspace.id])


@router.post("/workspaces", status_code=201, responses=error_responses(BODY))
async def create_workspace(
    body: WorkspaceCreate, store: StoreDep, base_url: PublicBaseUrlDep
) -> WorkspaceCreated:
    created = await workspaces.create_workspace(store, body.name)
    return WorkspaceCreated.of_new(created, base_url)


@router.get("/workspaces")
async def list_workspaces(store: StoreDep) -> WorkspaceList:
    found = await workspaces.list_workspaces(store)
    balances = await billing.balances(store, [workspace.id for workspace in found])
    return WorkspaceList(
        workspaces=[WorkspaceOut.of(workspace, balances[workspace.id]) for workspace in found]
    )


@router.get("/workspaces/{workspace_id}", responses=_BY_ID)
async def get_workspace(workspace_id: str, store: StoreDep) -> WorkspaceOut:
    workspace = await workspaces.get_workspace(store, workspace_id)
    return await _shown(store, workspace, workspace_id)


@router.patch("/workspaces/{workspace_id}", responses=_BY_ID_WITH_BODY)
async def update_workspace(
    workspace_id: str, body: WorkspaceUpdate, store: StoreDep
) -> WorkspaceOut:
    workspace = await workspaces.set_disabled(store, workspace_id, body.disabled)
    return await _shown(store, workspace, workspace_id)


@router.post("/workspaces/{workspace_id}/rotate-key", responses=_BY_ID)
async def rotate_key(workspace_id: str, store: StoreDep) -> KeyRotated:
    api_key = await workspaces.rotate_api_key(store, workspace_id)
    if api_key is None:
        raise not_found("workspace", workspace_id)
    return KeyRotated(workspace_id=workspace_id, api_key=api_key)


@router.post("/workspaces/{workspace_id}/rotate-hook-token", responses=_BY_ID)
async def rotate_hook_token(
    workspace_id: str, store: StoreDep, base_url: PublicBaseUrlDep
) -> HookTokenRotated:
    """A new integration base URL (a workspace created before them gets its first); the old
    one stops working at once. Shown only here."""
    hook_token = await workspaces.rotate_hook_token(store, workspace_id)
    if hook_token is None:
        raise not_found("workspace", workspace_id)
    return HookTokenRotated(
        workspace_id=workspace_id, integration_base_url=integration_base_url(base_url, hook_token)
    )


@router.put("/workspaces/{workspace_id}/allowed-countries", responses=_BY_ID_WITH_BODY)
async def set_allowed_countries(
    workspace_id: str, body: CountriesUpdate, store: StoreDep
) -> WorkspaceOut:
    countries = None if body.countries is None else ",".join(body.countries)
    workspace = await workspaces.set_allowed_countries(store, workspace_id, countries)
    return await _shown(store, workspace, workspace_id)


@router.put("/workspaces/{workspace_id}/call-window", responses=_BY_ID_WITH_BODY)
async def set_call_window(
    workspace_id: str, body: CallWindowUpdate, store: StoreDep
) -> WorkspaceOut:
    """The default window of the workspace's calls (null: none)."""
    spec = body.call_window
    window = None if spec is None else window_to_json(spec.window())
    workspace = await workspaces.set_call_window(store, workspace_id, window)
    return await _shown(store, workspace, workspace_id)


async def _trunks(store: Store, workspace_id: str) -> TrunkAssignments:
    return TrunkAssignments(
        workspace_id=workspace_id,
        sip_trunk_ids=await numbers.assigned_trunks(store, workspace_id),
    )


@router.get("/workspaces/{workspace_id}/trunks", responses=_BY_ID)
async def list_trunks(workspace_id: str, store: StoreDep) -> TrunkAssignments:
    if await workspaces.get_workspace(store, workspace_id) is None:
        raise not_found("workspace", workspace_id)
    return await _trunks(store, workspace_id)


@router.post(
    "/workspaces/{workspace_id}/trunks",
    status_code=201,
    responses=error_responses(
        NOT_FOUND, BODY, {409: "TRUNK_OWNED: Outdial created the trunk for a number"}
    ),
)
async def assign_trunk(
    workspace_id: str, body: TrunkAssignment, store: StoreDep
) -> TrunkAssignments:
    """Lets the workspace register numbers on (and dial over) a trunk created outside
    Outdial, the default trunk included."""
    result = await numbers.assign_trunk(store, workspace_id, body.sip_trunk_id)
    if result is numbers.AssignResult.MISSING:
        raise not_found("workspace", workspace_id)
    if result is numbers.AssignResult.OWNED:
        raise ApiError(
            409,
            "TRUNK_OWNED",
            f"trunk {body.sip_trunk_id} was created by Outdial for a workspace's number "
            "and belongs to that number",
            {"sipTrunkId": body.sip_trunk_id},
        )
    return await _trunks(store, workspace_id)


@router.delete(
    "/workspaces/{workspace_id}/trunks/{sip_trunk_id}", status_code=204, responses=_BY_ID
)
async def unassign_trunk(workspace_id: str, sip_trunk_id: str, store: StoreDep) -> None:
    """Numbers on the trunk stay, but their calls are refused (TRUNK_NOT_ASSIGNED). Any
    `sip_trunk_id` is safe here: it is a set member, never part of a key name."""
    if not await numbers.unassign_trunk(store, workspace_id, sip_trunk_id):
        raise not_found("trunk assignment", sip_trunk_id)
