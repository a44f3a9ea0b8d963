"""Who is calling: workspace credentials and the rules that accept or refuse them.

Invariant: a request opens a workspace only if the presented secret's hash is the
workspace's current hash of that kind (`key_hash` for an API key, `hook_token_hash` for an
integration token; an index entry alone is not enough: it could outlive a rotation), and
the workspace id has the shape of an id before it names any Redis key.

Credentials come with the workspace named (`x-workspace-id`, `Credentials.from_headers`),
or from the secret alone (`key_only_credentials`, `hook_credentials`: the vendor-compatible
routes), where one GET of the secret's index names the workspace: the usual checks then
still decide. Every refusal of an unknown secret is the same 401 whatever exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers

from api.errors import ApiError, unauthorized
from api.ids import is_valid_id
from api.security import hash_api_key, is_hook_token_shape, secrets_match
from api.store.base import Store
from api.store.workspaces import (
    Authentication,
    CredentialKind,
    Workspace,
    authenticate,
    secret_owner,
    with_alias,
)

# Schemes of the Authorization header that carry an API key (case-insensitive).
_KEY_SCHEMES = ("bearer ", "token ")
# What a key-only or token request that opens nothing hears: it names no workspace.
_NOT_RECOGNISED = "API key not recognised"


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return None


def _authorization_key(authorization: str | None) -> str | None:
    """The key in `Authorization: Bearer KEY` or `Authorization: Token KEY`."""
    if not authorization:
        return None
    for scheme in _KEY_SCHEMES:
        if authorization[: len(scheme)].lower() == scheme:
            return authorization[len(scheme) :].strip() or None
    return None


@dataclass(frozen=True, slots=True)
class Credentials:
    workspace_id: str
    # The presented secret: the API key, or the integration token when `kind` says so.
    api_key: str
    kind: CredentialKind = "api_key"

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


async def _owned(store: Store, kind: CredentialKind, secret: str) -> Credentials:
    owner = await secret_owner(store, kind, hash_api_key(secret))
    # An owner that is no id is no workspace (it would otherwise name a key).
    if owner is None or not is_valid_id(owner):
        raise unauthorized(_NOT_RECOGNISED)
    return Credentials(owner, secret, kind)


async def key_only_credentials(store: Store, headers: Headers) -> Credentials:
    """The credentials of a request that names no workspace: its API key (`x-api-key`,
    `Authorization: Bearer KEY` or `Authorization: Token KEY`) and the workspace the key
    index gives for it. 401 UNAUTHORIZED, the same for a missing and an unknown key."""
    api_key = headers.get("x-api-key") or _authorization_key(headers.get("authorization"))
    if not api_key:
        raise unauthorized(_NOT_RECOGNISED)
    return await _owned(store, "api_key", api_key)


async def hook_credentials(store: Store, token: str) -> Credentials:
    """The credentials of a request under a workspace's integration base URL
    (`/hooks/<token>`): the token and the workspace its index gives. 401 UNAUTHORIZED as
    for an unknown key; a text that cannot be a token is refused without a read."""
    if not is_hook_token_shape(token):
        raise unauthorized(_NOT_RECOGNISED)
    return await _owned(store, "hook_token", token)


async def credentials_workspace(store: Store, creds: Credentials) -> Workspace:
    """The workspace the credentials open (with its alias), or the refusal: 401
    UNAUTHORIZED, 403 PERMISSION_DENIED or 403 WORKSPACE_DISABLED (`authorize`)."""
    key_hash = creds.key_hash
    auth = await authenticate(store, creds.workspace_id, key_hash, creds.kind)
    return await with_alias(store, authorize(auth, key_hash))


def authorize(auth: Authentication, key_hash: str) -> Workspace:
    """The workspace the credentials (whose secret hashes to `key_hash`, of the kind
    `auth.kind`) open, or the refusal with its stable code."""
    if auth.key_owner is None:
        raise unauthorized(_NOT_RECOGNISED)
    if auth.workspace is None or auth.key_owner != auth.workspace.id:
        raise ApiError(403, "PERMISSION_DENIED", "this API key belongs to another workspace")
    expected = auth.workspace.secret_hash(auth.kind)
    # A workspace without an integration token (created before them) opens to none.
    if expected is None or not secrets_match(key_hash, expected):
        raise unauthorized(_NOT_RECOGNISED)
    if auth.workspace.disabled:
        raise ApiError(403, "WORKSPACE_DISABLED", "workspace is disabled")
    return auth.workspace
