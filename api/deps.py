"""FastAPI dependencies: settings, the store, admin and workspace authentication."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from api.auth import Credentials, authorize, bearer_token
from api.errors import ApiError, not_found, unauthorized
from api.settings import Settings
from api.store.base import Store
from api.store.calls import CallRecord, get_workspace_call
from api.store.workspaces import Workspace, authenticate


# Dependencies are `async def` on purpose: plain `def` ones run in a thread pool per request.
async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


async def require_admin(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    if not settings.admin_token:
        raise ApiError(403, "PERMISSION_DENIED", "admin API is disabled: OUTDIAL_ADMIN_TOKEN unset")
    token = bearer_token(authorization)
    if token is None or not hmac.compare_digest(token, settings.admin_token):
        raise unauthorized("admin token missing or wrong")


async def credentials(request: Request) -> Credentials:
    # Headers are read directly: declaring each as a parameter costs time on every request.
    return Credentials.from_headers(request.headers)


CredentialsDep = Annotated[Credentials, Depends(credentials)]


async def current_workspace(creds: CredentialsDep, store: StoreDep) -> Workspace:
    return authorize(await authenticate(store, creds.workspace_id, creds.key_hash))


AdminDep = Depends(require_admin)
WorkspaceDep = Annotated[Workspace, Depends(current_workspace)]


async def workspace_call(call_id: str, workspace: WorkspaceDep, store: StoreDep) -> CallRecord:
    """The call named in the path, if it belongs to the calling workspace; else 404."""
    call = await get_workspace_call(store, workspace.id, call_id)
    if call is None:
        raise not_found("call", call_id)
    return call


WorkspaceCallDep = Annotated[CallRecord, Depends(workspace_call)]
