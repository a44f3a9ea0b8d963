"""Operator endpoints: workspaces and their keys (Bearer OUTDIAL_ADMIN_TOKEN)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminDep, StoreDep
from api.errors import not_found
from api.store import workspaces

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminDep])


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class WorkspaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool


def _public(workspace: workspaces.Workspace) -> dict[str, object]:
    return {
        "workspaceId": workspace.id,
        "name": workspace.name,
        "disabled": workspace.disabled,
        "createdAt": workspace.created_at,
    }


@router.post("/workspaces", status_code=201)
async def create_workspace(body: WorkspaceCreate, store: StoreDep) -> dict[str, object]:
    created = await workspaces.create_workspace(store, body.name)
    return _public(created.workspace) | {
        "apiKey": created.api_key,
        "webhookSecret": created.workspace.webhook_secret,
    }


@router.get("/workspaces/{workspace_id}")
async def get_workspace(workspace_id: str, store: StoreDep) -> dict[str, object]:
    workspace = await workspaces.get_workspace(store, workspace_id)
    if workspace is None:
        raise not_found("workspace", workspace_id)
    return _public(workspace)


@router.patch("/workspaces/{workspace_id}")
async def update_workspace(
    workspace_id: str, body: WorkspaceUpdate, store: StoreDep
) -> dict[str, object]:
    workspace = await workspaces.set_disabled(store, workspace_id, body.disabled)
    if workspace is None:
        raise not_found("workspace", workspace_id)
    return _public(workspace)


@router.post("/workspaces/{workspace_id}/rotate-key")
async def rotate_key(workspace_id: str, store: StoreDep) -> dict[str, object]:
    api_key = await workspaces.rotate_api_key(store, workspace_id)
    if api_key is None:
        raise not_found("workspace", workspace_id)
    return {"workspaceId": workspace_id, "apiKey": api_key}
