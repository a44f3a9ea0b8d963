"""Who is calling: workspace credentials and the rules that accept or refuse them.

Invariant: a request opens a workspace only if the presented key's hash is the workspace's
current `key_hash` (a key index entry alone is not enough: it could outlive a rotation),
and the workspace id has the shape of an id before it names any Redis key.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers

from api.errors import ApiError, unauthorized
from api.ids import is_valid_id
from api.security import hash_api_key, secrets_match
from api.store.workspaces import Authentication, Workspace


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


@dataclass(frozen=True, slots=True)
class Credentials:
    workspace_id: str
    api_key: str

    @property
    def key_hash(self) -> str:
        return hash_api_key(self.api_key)

    @classmethod
    def from_headers(cls, headers: Headers) -> Credentials:
        workspace_id = headers.get("x-workspace-id")
        api_key = headers.get("x-api-key") or bearer_token(headers.get("authorization"))
        if not workspace_id or not api_key:
            raise unauthorized("send x-workspace-id and the API key (x-api-key or Bearer)")
        if not is_valid_id(workspace_id):
            # No workspace has such an id; 401 like any other credentials that open nothing.
            raise unauthorized("x-workspace-id is not a workspace id")
        return cls(workspace_id, api_key)


def authorize(auth: Authentication, key_hash: str) -> Workspace:
    """The workspace the credentials (whose key hashes to `key_hash`) open, or the refusal
    with its stable code."""
    if auth.key_owner is None:
        raise unauthorized("API key not recognised")
    if auth.workspace is None or auth.key_owner != auth.workspace.id:
        raise ApiError(403, "PERMISSION_DENIED", "this API key belongs to another workspace")
    if not secrets_match(key_hash, auth.workspace.key_hash):
        raise unauthorized("API key not recognised")
    if auth.workspace.disabled:
        raise ApiError(403, "WORKSPACE_DISABLED", "workspace is disabled")
    return auth.workspace
