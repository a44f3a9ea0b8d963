"""Workspaces: the tenant boundary. API keys and integration (hook) tokens are stored as
SHA-256 hashes only, each beside an index entry hash -> workspace id (`keys.api_key`,
`keys.hook_token`) that a rotation replaces in the same transaction as the hash.

A workspace is a Redis hash (`keys.workspace`): `Workspace.from_hash`/`to_hash` are its one
conversion, and the field writes below encode as `to_hash` does. `disabled` is '1' or '0'
(anything else reads as '0', as in the Lua scripts and the relay, which test for '1'). A
hash that does not parse is unreadable (`api.store.records`): its key is refused like an
unknown one. A workspace created before hook tokens has none (`hook_token_hash` absent)
until the operator rotates one; one created before aliases gets its alias when it is first
shown (`api.store.aliases`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from typing import Literal, cast

from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from api.security import hash_api_key, new_api_key, new_hook_token, new_webhook_secret
from api.store.aliases import assign_alias, assign_alias_call
from api.store.base import Store
from api.store.lean_redis import Command, hash_reply
from api.store.records import HashFields, readable

# Which secret a request presents: the workspace's API key or its integration token.
CredentialKind = Literal["api_key", "hook_token"]


@dataclass(frozen=True, slots=True)
class Workspace:
    id: str
    name: str
    key_hash: str
    webhook_secret: str
    disabled: bool
    created_at: int
    # The operator's country allowlist for this workspace's destinations, comma-separated
    # ('' = every country); None: the deployment's OUTDIAL_ALLOWED_COUNTRIES.
    allowed_countries: str | None = None
    # The default window of the workspace's calls (`call_windows.window_to_json`); None:
    # no default (a call or its agent may still name one).
    call_window: str | None = None
    # The numeric alias vendor routes name the workspace by (`api.store.aliases`); None
    # until a workspace created before aliases is first shown.
    alias: int | None = None
    # The integration token's hash; None: the workspace has none (created before them).
    hook_token_hash: str | None = None

    def secret_hash(self, kind: CredentialKind) -> str | None:
        """The hash a presented secret of that kind must match (None: no such secret)."""
        return self.key_hash if kind == "api_key" else self.hook_token_hash

    @classmethod
    def from_hash(cls, raw: dict[str, str], key: str = "workspace") -> Workspace:
        """`UnreadableRecord` when the id, name, key hash, webhook secret or an integer
        `created_at` is missing."""
        read = HashFields(raw, key)
        return cls(
            id=read.text("id"),
            name=read.text("name"),
            key_hash=read.text("key_hash"),
            webhook_secret=read.text("webhook_secret"),
            disabled=read.optional_text("disabled") == _flag(True),
            created_at=read.integer("created_at"),
            allowed_countries=read.optional_text("allowed_countries"),
            call_window=read.optional_text("call_window"),
            alias=read.optional_integer("alias"),
            hook_token_hash=read.optional_text("hook_token_hash"),
        )

    def to_hash(self) -> dict[str, str]:
        fields = {
            "id": self.id,
            "name": self.name,
            "key_hash": self.key_hash,
            "webhook_secret": self.webhook_secret,
            "disabled": _flag(self.disabled),
            "created_at": str(self.created_at),
        }
        if self.allowed_countries is not None:
            fields["allowed_countries"] = self.allowed_countries
        if self.call_window is not None:
            fields["call_window"] = self.call_window
        if self.alias is not None:
            fields["alias"] = str(self.alias)
        if self.hook_token_hash is not None:
            fields["hook_token_hash"] = self.hook_token_hash
        return fields


def _flag(value: bool) -> str:
    return "1" if value else "0"


def read_workspace(raw: dict[str, str], workspace_id: str) -> Workspace | None:
    """The workspace in an HGETALL reply; None when there is none or it is unreadable."""
    if not raw:
        return None
    key = f"workspace {workspace_id}"
    return readable(lambda: Workspace.from_hash(raw, key), key)


@dataclass(frozen=True, slots=True)
class NewWorkspace:
    """A workspace and the secrets shown only now (the store keeps their hashes)."""

    workspace: Workspace
    api_key: str
    hook_token: str


async def create_workspace(store: Store, name: str) -> NewWorkspace:
    """One transaction: the workspace, its key and token index entries, its place in the
    operator's list and its alias (`aliases.AssignAlias`, after the hash exists)."""
    api_key, hook_token = new_api_key(), new_hook_token()
    hook_token_hash = hash_api_key(hook_token)
    workspace = Workspace(
        id="ws_" + secrets.token_hex(12),
        name=name,
        key_hash=hash_api_key(api_key),
        webhook_secret=new_webhook_secret(),
        disabled=False,
        created_at=int(time.time() * 1000),
        hook_token_hash=hook_token_hash,
    )
    pipe = store.redis.pipeline(transaction=True)
    pipe.set(store.keys.api_key(workspace.key_hash), workspace.id)
    pipe.set(store.keys.hook_token(hook_token_hash), workspace.id)
    # (redis-py types a mapping's keys as any field type: dict[str, str] does not fit)
    fields: dict[FieldT, EncodableT] = {k: v for k, v in workspace.to_hash().items()}
    pipe.hset(store.keys.workspace(workspace.id), mapping=fields)
    pipe.zadd(store.keys.workspace_index(), {workspace.id: workspace.created_at})
    pipe.eval(*assign_alias_call(store, workspace.id).eval_args())  # EVAL: see its docstring
    *_, alias = await pipe.execute()
    return NewWorkspace(replace(workspace, alias=int(alias)), api_key, hook_token)


async def with_alias(store: Store, workspace: Workspace) -> Workspace:
    """The workspace with its alias, given now if it had none (created before aliases)."""
    if workspace.alias is not None:
        return workspace
    alias = await assign_alias(store, workspace.id)
    # None: deleted meanwhile; shown as read (no alias) rather than failing the view.
    return workspace if alias is None else replace(workspace, alias=alias)


async def list_workspaces(store: Store) -> list[Workspace]:
    """Every workspace in the index, oldest first (one that is unreadable is left out)."""
    ids = cast(list[str], await store.redis.zrange(store.keys.workspace_index(), 0, -1))
    pipe = store.redis.pipeline(transaction=False)
    for workspace_id in ids:
        pipe.hgetall(store.keys.workspace(workspace_id))
    rows = await pipe.execute() if ids else []
    found = (read_workspace(raw, ws) for ws, raw in zip(ids, rows, strict=True))
    return [await with_alias(store, workspace) for workspace in found if workspace is not None]


async def get_workspace(store: Store, workspace_id: str) -> Workspace | None:
    """The workspace as the operator sees it (with its alias)."""
    # `store.redis` decodes every reply (open_store): the client's `bytes | str` are str.
    raw = cast(dict[str, str], await store.redis.hgetall(store.keys.workspace(workspace_id)))
    workspace = read_workspace(raw, workspace_id)
    return None if workspace is None else await with_alias(store, workspace)


async def rotate_api_key(store: Store, workspace_id: str) -> str | None:
    """Replace the key; the old one stops working at once. None if no such workspace."""
    api_key = new_api_key()
    rotated = await _rotate_secret(store, workspace_id, "api_key", hash_api_key(api_key))
    return api_key if rotated else None


async def rotate_hook_token(store: Store, workspace_id: str) -> str | None:
    """Replace (or give a workspace created before them its first) integration token; the
    old one stops working at once. None if no such workspace."""
    hook_token = new_hook_token()
    rotated = await _rotate_secret(store, workspace_id, "hook_token", hash_api_key(hook_token))
    return hook_token if rotated else None


_HASH_FIELDS: dict[CredentialKind, str] = {"api_key": "key_hash", "hook_token": "hook_token_hash"}


def _secret_index(store: Store, kind: CredentialKind, secret_hash: str) -> str:
    """The index key of a secret's hash: the workspace it opens."""
    if kind == "api_key":
        return store.keys.api_key(secret_hash)
    return store.keys.hook_token(secret_hash)


async def _rotate_secret(
    store: Store, workspace_id: str, kind: CredentialKind, new_hash: str
) -> bool:
    """Make `new_hash` the workspace's secret of that kind; False if no such workspace.

    One optimistic transaction: the old secret's index entry goes, the new one comes and the
    workspace's hash field changes together, and only if that field was not changed since
    it was read (WATCH). Two concurrent rotations thus leave exactly one valid secret: the
    loser retries from the winner's instead of orphaning an index entry.
    """
    key = store.keys.workspace(workspace_id)
    field = _HASH_FIELDS[kind]
    async with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                found, old_hash = cast(list[str | None], await pipe.hmget(key, ["id", field]))
                if found is None:
                    return False
                pipe.multi()
                if old_hash is not None:
                    pipe.delete(_secret_index(store, kind, old_hash))
                pipe.set(_secret_index(store, kind, new_hash), workspace_id)
                pipe.hset(key, field, new_hash)
                await pipe.execute()
                return True
            except WatchError:
                continue


@dataclass(frozen=True, slots=True)
class Authentication:
    workspace: Workspace | None
    # The workspace the presented secret belongs to (None: no workspace has that secret).
    key_owner: str | None
    # Which secret was presented: the workspace's hash it must match (`secret_hash`).
    kind: CredentialKind = "api_key"

    @classmethod
    def from_replies(
        cls,
        workspace_id: str,
        owner: str | None,
        raw: list[str],
        kind: CredentialKind = "api_key",
    ) -> Authentication:
        return cls(read_workspace(hash_reply(raw), workspace_id), owner, kind)


def authentication_reads(
    store: Store, workspace_id: str, key_hash: str, kind: CredentialKind = "api_key"
) -> list[Command]:
    """The two reads `Authentication.from_replies` needs, for a `store.lean` batch: the
    secret's index entry (of its kind) and the named workspace."""
    return [
        ["GET", _secret_index(store, kind, key_hash)],
        ["HGETALL", store.keys.workspace(workspace_id)],
    ]


async def authenticate(
    store: Store, workspace_id: str, key_hash: str, kind: CredentialKind = "api_key"
) -> Authentication:
    """One round trip: the secret's owner and the named workspace."""
    reads = authentication_reads(store, workspace_id, key_hash, kind)
    owner, raw = await store.lean.execute(*reads)
    return Authentication.from_replies(workspace_id, owner, raw, kind)


async def secret_owner(store: Store, kind: CredentialKind, secret_hash: str) -> str | None:
    """The workspace id the index gives for a secret's hash (one GET, never a scan); only
    a hint: `authenticate` and `api.auth.authorize` decide."""
    return cast(str | None, await store.redis.get(_secret_index(store, kind, secret_hash)))


async def set_allowed_countries(
    store: Store, workspace_id: str, countries: str | None
) -> Workspace | None:
    """Set (None: clear, back to the deployment's list) the workspace's country allowlist."""
    key = store.keys.workspace(workspace_id)
    if not await store.redis.exists(key):
        return None
    if countries is None:
        await store.redis.hdel(key, "allowed_countries")
    else:
        await store.redis.hset(key, "allowed_countries", countries)
    return await get_workspace(store, workspace_id)


async def set_call_window(store: Store, workspace_id: str, window: str | None) -> Workspace | None:
    """Set (None: clear) the default window of the workspace's calls; None when there is
    no such workspace."""
    key = store.keys.workspace(workspace_id)
    if not await store.redis.exists(key):
        return None
    if window is None:
        await store.redis.hdel(key, "call_window")
    else:
        await store.redis.hset(key, "call_window", window)
    return await get_workspace(store, workspace_id)


async def workspace_disabled(store: Store, workspace_id: str) -> bool:
    """Whether the operator disabled the workspace (False for no such workspace)."""
    return await store.redis.hget(store.keys.workspace(workspace_id), "disabled") == "1"


async def set_disabled(store: Store, workspace_id: str, disabled: bool) -> Workspace | None:
    key = store.keys.workspace(workspace_id)
    if not await store.redis.exists(key):
        return None
    await store.redis.hset(key, "disabled", _flag(disabled))
    return await get_workspace(store, workspace_id)
