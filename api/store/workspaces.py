"""Workspaces: the tenant boundary. API keys are stored as SHA-256 hashes only."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from redis.exceptions import WatchError

from api.security import hash_api_key, new_api_key, new_webhook_secret
from api.store.base import Store
from api.store.lean_redis import Command, hash_reply


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

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Workspace:
        return cls(
            id=raw["id"],
            name=raw["name"],
            key_hash=raw["key_hash"],
            webhook_secret=raw["webhook_secret"],
            disabled=raw.get("disabled") == "1",
            created_at=int(raw["created_at"]),
            allowed_countries=raw.get("allowed_countries"),
        )


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
    pipe.hset(
        store.keys.workspace(workspace.id),
        mapping={
            "id": workspace.id,
            "name": workspace.name,
            "key_hash": workspace.key_hash,
            "webhook_secret": workspace.webhook_secret,
            "disabled": "0",
            "created_at": str(workspace.created_at),
        },
    )
    await pipe.execute()
    return NewWorkspace(workspace, api_key)


async def get_workspace(store: Store, workspace_id: str) -> Workspace | None:
    raw = await store.redis.hgetall(store.keys.workspace(workspace_id))
    return Workspace.from_hash(raw) if raw else None


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
                old_hash = await pipe.hget(key, "key_hash")
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
    def from_replies(cls, owner: str | None, raw: list[str]) -> Authentication:
        return cls(Workspace.from_hash(hash_reply(raw)) if raw else None, owner)


def authentication_reads(store: Store, workspace_id: str, key_hash: str) -> list[Command]:
    """The two reads `Authentication.from_replies` needs, for a `store.lean` batch."""
    return [["GET", store.keys.api_key(key_hash)], ["HGETALL", store.keys.workspace(workspace_id)]]


async def authenticate(store: Store, workspace_id: str, key_hash: str) -> Authentication:
    """One round trip: the key's owner and the named workspace."""
    replies = await store.lean.execute(*authentication_reads(store, workspace_id, key_hash))
    return Authentication.from_replies(*replies)


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


async def set_disabled(store: Store, workspace_id: str, disabled: bool) -> Workspace | None:
    key = store.keys.workspace(workspace_id)
    if not await store.redis.exists(key):
        return None
    await store.redis.hset(key, "disabled", "1" if disabled else "0")
    return await get_workspace(store, workspace_id)
