"""Operator endpoints: workspaces, their keys, trunks and destination countries (Bearer
OUTDIAL_ADMIN_TOKEN).

Only the operator gives a workspace a raw trunk id (its credentials and bill are whoever's
trunk it is), and only the operator widens or narrows where a workspace may call.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import AdminDep, StoreDep
from api.errors import ApiError, not_found
from api.openapi import ADMIN_AUTH, BODY, NOT_FOUND, STORAGE, error_responses
from api.schemas.admin import KeyRotated, TrunkAssignments, WorkspaceCreated, WorkspaceOut
from api.schemas.numbers import TRUNK_ID_PATTERN
from api.store import numbers, workspaces
from api.store.base import Store
from sip.numbers import parse_countries

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses=error_responses(ADMIN_AUTH, STORAGE),
)
# Errors of the routes that name a workspace, and of those that also take a body.
_BY_ID = error_responses(NOT_FOUND)
_BY_ID_WITH_BODY = error_responses(NOT_FOUND, BODY)


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class WorkspaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool


class TrunkAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sip_trunk_id: str = Field(pattern=TRUNK_ID_PATTERN)


class CountriesUpdate(BaseModel):
    """`countries`: ISO 3166 alpha-2 codes the workspace may call ([] = every country);
    null: the deployment's OUTDIAL_ALLOWED_COUNTRIES."""

    model_config = ConfigDict(extra="forbid")
    countries: list[str] | None = Field(max_length=300)

    @field_validator("countries")
    @classmethod
    def _known(cls, countries: list[str] | None) -> list[str] | None:
        if countries is None:
            return None
        return sorted(parse_countries(",".join(countries)))


def _public(workspace: workspaces.Workspace) -> dict[str, object]:
    return {
        "workspaceId": workspace.id,
        "name": workspace.name,
        "disabled": workspace.disabled,
        "allowedCountries": (
            None
            if workspace.allowed_countries is None
            else sorted(parse_countries(workspace.allowed_countries))
        ),
        "createdAt": workspace.created_at,
    }


@router.post(
    "/workspaces", status_code=201, response_model=WorkspaceCreated, responses=error_responses(BODY)
)
async def create_workspace(body: WorkspaceCreate, store: StoreDep) -> dict[str, object]:
    created = await workspaces.create_workspace(store, body.name)
    return _public(created.workspace) | {
        "apiKey": created.api_key,
        "webhookSecret": created.workspace.webhook_secret,
    }


@router.get("/workspaces/{workspace_id}", response_model=WorkspaceOut, responses=_BY_ID)
async def get_workspace(workspace_id: str, store: StoreDep) -> dict[str, object]:
    workspace = await workspaces.get_workspace(store, workspace_id)
    if workspace is None:
        raise not_found("workspace", workspace_id)
    return _public(workspace)


@router.patch("/workspaces/{workspace_id}", response_model=WorkspaceOut, responses=_BY_ID_WITH_BODY)
async def update_workspace(
    workspace_id: str, body: WorkspaceUpdate, store: StoreDep
) -> dict[str, object]:
    workspace = await workspaces.set_disabled(store, workspace_id, body.disabled)
    if workspace is None:
        raise not_found("workspace", workspace_id)
    return _public(workspace)


@router.post("/workspaces/{workspace_id}/rotate-key", response_model=KeyRotated, responses=_BY_ID)
async def rotate_key(workspace_id: str, store: StoreDep) -> dict[str, object]:
    api_key = await workspaces.rotate_api_key(store, workspace_id)
    if api_key is None:
        raise not_found("workspace", workspace_id)
    return {"workspaceId": workspace_id, "apiKey": api_key}


@router.put(
    "/workspaces/{workspace_id}/allowed-countries",
    response_model=WorkspaceOut,
    responses=_BY_ID_WITH_BODY,
)
async def set_allowed_countries(
    workspace_id: str, body: CountriesUpdate, store: StoreDep
) -> dict[str, object]:
    countries = None if body.countries is None else ",".join(body.countries)
    workspace = await workspaces.set_allowed_countries(store, workspace_id, countries)
    if workspace is None:
        raise not_found("workspace", workspace_id)
    return _public(workspace)


async def _trunks(store: Store, workspace_id: str) -> dict[str, object]:
    return {
        "workspaceId": workspace_id,
        "sipTrunkIds": await numbers.assigned_trunks(store, workspace_id),
    }


@router.get("/workspaces/{workspace_id}/trunks", response_model=TrunkAssignments, responses=_BY_ID)
async def list_trunks(workspace_id: str, store: StoreDep) -> dict[str, object]:
    if await workspaces.get_workspace(store, workspace_id) is None:
        raise not_found("workspace", workspace_id)
    return await _trunks(store, workspace_id)


@router.post(
    "/workspaces/{workspace_id}/trunks",
    status_code=201,
    response_model=TrunkAssignments,
    responses=error_responses(
        NOT_FOUND, BODY, {409: "TRUNK_OWNED: Outdial created the trunk for a number"}
    ),
)
async def assign_trunk(
    workspace_id: str, body: TrunkAssignment, store: StoreDep
) -> dict[str, object]:
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
            {"sip_trunk_id": body.sip_trunk_id},
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
