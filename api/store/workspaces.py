"""Workspaces: the tenant boundary. API keys are stored as SHA-256 hashes only.

A workspace is a Redis hash (`keys.workspace`): `Workspace.from_hash`/`to_hash` are its one
conversion, and the field writes below encode as `to_hash` does. `disabled` is '1' or '0'
(anything else reads as '0', as in the Lua scripts and the relay, which test for '1'). A
hash that does not parse is unreadable (`api.store.records`): its key is refused like an
unknown one.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import cast

from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from api.security import hash_api_key, new_api_key, new_webhook_secret
from api.store.base import Store
from api.store.lean_redis import Command, hash_reply
from api.store.records import HashFields, readable


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
    workspace: Workspace
    api_key: str


async def create_workspace(store: Store, name: str) -> NewWorkspace:
    api_key = new_api_key()
    workspace = Workspace(
        id="ws_" + secrets.token_hex(12),
        name=name,
        key_hash=hash_api_key(api_key),
        webhook_secret=new_webhook_secret(),
        disabled=False,
        created_at=int(time.time() * 1000),
    )
    pipe = store.redis.pipeline(transaction=True)
    pipe.set(store.keys.api_key(workspace.key_hash), workspace.id)
    # (redis-py types a mapping's keys as any field type: dict[str, str] does not fit)
    fields: dict[FieldT, EncodableT] = {k: v for k, v in workspace.to_hash().items()}
    pipe.hset(store.keys.workspace(workspace.id), mapping=fields)
    pipe.zadd(store.keys.workspace_index(), {workspace.id: workspace.created_at})
    await pipe.execute()
    return NewWorkspace(workspace, api_key)


async def list_workspaces(store: Store) -> list[Workspace]:
    """Every workspace in the index, oldest first (one that is unreadable is left out)."""
    ids = cast(list[str], await store.redis.zrange(store.keys.workspace_index(), 0, -1))
    pipe = store.redis.pipeline(transaction=False)
    for workspace_id in ids:
        pipe.hgetall(store.keys.workspace(workspace_id))
    rows = await pipe.execute() if ids else []
    found = (read_workspace(raw, ws) for ws, raw in zip(ids, rows, strict=True))
    return [workspace for workspace in found if workspace is not None]


async def get_workspace(store: Store, workspace_id: str) -> Workspace | None:
    # `store.redis` decodes every reply (open_store): the client's `bytes | str` are str.
    raw = cast(dict[str, str], await store.redis.hgetall(store.keys.workspace(workspace_id)))
    return read_workspace(raw, workspace_id)


async def rotate_api_key(store: Store, workspace_id: str) -> str | None:
    """Replace the key; the old one stops working at once. None if no such workspace.

    One optimistic transaction: the old key's index entry goes, the new one comes and the
    workspace's `key_hash` changes together, and only if `key_hash` was not changed since it
    was read (WATCH). Two concurrent rotations thus leave exactly one valid key: the loser
    retries from the winner's key instead of orphaning an index entry.
    """
    key = store.keys.workspace(workspace_id)
    api_key = new_api_key()
    new_hash = hash_api_key(api_key)
    async with store.redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                old_hash = cast(str | None, await pipe.hget(key, "key_hash"))
                if old_hash is None:
                    return None
                pipe.multi()
                pipe.delete(store.keys.api_key(old_hash))
                pipe.set(store.keys.api_key(new_hash), workspace_id)
                pipe.hset(key, "key_hash", new_hash)
                await pipe.execute()
                return api_key
            except WatchError:
                continue


@dataclass(frozen=True, slots=True)
class Authentication:
    workspace: Workspace | None
    # The workspace the presented key belongs to (None: no workspace has that key).
    key_owner: str | None

    @classmethod
    def from_replies(cls, workspace_id: str, owner: str | None, raw: list[str]) -> Authentication:
        return cls(read_workspace(hash_reply(raw), workspace_id), owner)


def authentication_reads(store: Store, workspace_id: str, key_hash: str) -> list[Command]:
    """The two reads `Authentication.from_replies` needs, for a `store.lean` batch."""
    return [["GET", store.keys.api_key(key_hash)], ["HGETALL", store.keys.workspace(workspace_id)]]


async def authenticate(store: Store, workspace_id: str, key_hash: str) -> Authentication:
    """One round trip: the key's owner and the named workspace."""
    owner, raw = await store.lean.execute(*authentication_reads(store, workspace_id, key_hash))
    return Authentication.from_replies(workspace_id, owner, raw)


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
