"""FastAPI dependencies: settings, the app's resources (store, LiveKit clients), admin and
workspace authentication.

Invariant: every id in the path that names a Redis key (`api.ids.KEYED_PATH_PARAMS`) is
checked by the route's authentication dependency, after the credentials (a wrong key always
hears 401 first) and before any handler builds a key from it; a malformed id is a 404, as no
such resource can exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from livekit import api as lkapi

from api.auth import Credentials, authorize, bearer_token
from api.errors import ApiError, not_found, unauthorized
from api.ids import first_invalid_path_id
from api.resources import Resources
from api.security import secrets_match
from api.settings import Settings
from api.store.base import Store
from api.store.call_record import CallRecord
from api.store.calls import get_workspace_call
from api.store.workspaces import Workspace, authenticate


# Dependencies are `async def` on purpose: plain `def` ones run in a thread pool per request.
async def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def public_base_url(request: Request, settings: SettingsDep) -> str:
    """Where callers reach the API: OUTDIAL_PUBLIC_URL when it is set, else the base URL
    this request came to (what integration base URLs are built on)."""
    if "public_url" in settings.model_fields_set:
        return settings.events_base_url
    return str(request.base_url).rstrip("/")


PublicBaseUrlDep = Annotated[str, Depends(public_base_url)]


def app_resources(request: Request) -> Resources:
    """What the app's lifespan holds: store, LiveKit clients (api/resources.py)."""
    resources: Resources = request.app.state.resources
    return resources


async def get_store(request: Request) -> Store:
    return app_resources(request).store


StoreDep = Annotated[Store, Depends(get_store)]


async def livekit(request: Request) -> lkapi.LiveKitAPI:
    """For idempotent LiveKit requests (replayed on LiveKit Cloud, see api/livekit.py)."""
    return app_resources(request).livekit


async def single_shot_livekit(request: Request) -> lkapi.LiveKitAPI:
    """For LiveKit requests that must arrive at most once (e.g. CreateSIPOutboundTrunk)."""
    return app_resources(request).single_shot_livekit


LiveKitDep = Annotated[lkapi.LiveKitAPI, Depends(livekit)]
SingleShotLiveKitDep = Annotated[lkapi.LiveKitAPI, Depends(single_shot_livekit)]


async def require_admin(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    if not settings.admin_token:
        raise ApiError(403, "PERMISSION_DENIED", "admin API is disabled: OUTDIAL_ADMIN_TOKEN unset")
    token = bearer_token(authorization)
    if token is None or not secrets_match(token, settings.admin_token):
        raise unauthorized("admin token missing or wrong")


def check_path_ids(request: Request) -> None:
    """404 for a path id that cannot be an id (it would otherwise be pasted into a key)."""
    invalid = first_invalid_path_id(request.path_params)
    if invalid is not None:
        name, value = invalid
        raise ApiError(
            404,
            "NOT_FOUND",
            f"{name} {value[:80]!r} is not an id: 1-64 of A-Z a-z 0-9 _ -",
            {"field": name},
        )


async def admin_access(request: Request, _: Annotated[None, Depends(require_admin)]) -> None:
    check_path_ids(request)


async def credentials(request: Request) -> Credentials:
    # Headers are read directly: declaring each as a parameter costs time on every request.
    return Credentials.from_headers(request.headers)


CredentialsDep = Annotated[Credentials, Depends(credentials)]


async def current_workspace(request: Request, creds: CredentialsDep, store: StoreDep) -> Workspace:
    key_hash = creds.key_hash
    auth = await authenticate(store, creds.workspace_id, key_hash, creds.kind)
    workspace = authorize(auth, key_hash)
    check_path_ids(request)
    return workspace


AdminDep = Depends(admin_access)
WorkspaceDep = Annotated[Workspace, Depends(current_workspace)]


async def workspace_call(call_id: str, workspace: WorkspaceDep, store: StoreDep) -> CallRecord:
    """The call named in the path, if it belongs to the calling workspace; else 404."""
    call = await get_workspace_call(store, workspace.id, call_id)
    if call is None:
        raise not_found("call", call_id)
    return call


WorkspaceCallDep = Annotated[CallRecord, Depends(workspace_call)]
