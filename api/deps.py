"""FastAPI dependencies: settings, the store, admin and workspace authentication."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from api.errors import ApiError, unauthorized
from api.settings import Settings, get_settings
from api.store.base import Store
from api.store.workspaces import Workspace, authenticate

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


def require_admin(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    if not settings.admin_token:
        raise ApiError(403, "PERMISSION_DENIED", "admin API is disabled: OUTDIAL_ADMIN_TOKEN unset")
    token = bearer_token(authorization)
    if token is None or not hmac.compare_digest(token, settings.admin_token):
        raise unauthorized("admin token missing or wrong")


async def current_workspace(
    store: StoreDep,
    x_workspace_id: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Workspace:
    api_key = x_api_key or bearer_token(authorization)
    if not x_workspace_id or not api_key:
        raise unauthorized("send x-workspace-id and the API key (x-api-key or Bearer)")
    auth = await authenticate(store, x_workspace_id, api_key)
    if auth.key_owner is None:
        raise unauthorized("API key not recognised")
    if auth.workspace is None or auth.key_owner != auth.workspace.id:
        raise ApiError(403, "PERMISSION_DENIED", "this API key belongs to another workspace")
    if auth.workspace.disabled:
        raise ApiError(403, "WORKSPACE_DISABLED", "workspace is disabled")
    return auth.workspace


AdminDep = Depends(require_admin)
WorkspaceDep = Annotated[Workspace, Depends(current_workspace)]
