"""Agents of a workspace, stored as JSON documents."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from api.store.base import Store


def new_agent_id() -> str:
    return secrets.token_hex(12)


async def create_agent(store: Store, workspace_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time() * 1000)
    agent = {"id": new_agent_id(), **fields, "created_at": now, "updated_at": now}
    pipe = store.redis.pipeline(transaction=True)
    pipe.set(store.keys.agent(workspace_id, agent["id"]), json.dumps(agent))
    pipe.zadd(store.keys.agents(workspace_id), {agent["id"]: now})
    await pipe.execute()
    return agent


async def get_agent(store: Store, workspace_id: str, agent_id: str) -> dict[str, Any] | None:
    raw = await store.redis.get(store.keys.agent(workspace_id, agent_id))
    return json.loads(raw) if raw else None


async def list_agents(store: Store, workspace_id: str) -> list[dict[str, Any]]:
    ids = await store.redis.zrevrange(store.keys.agents(workspace_id), 0, -1)
    if not ids:
        return []
    raws = await store.redis.mget([store.keys.agent(workspace_id, agent_id) for agent_id in ids])
    return [json.loads(raw) for raw in raws if raw]


async def replace_agent(store: Store, workspace_id: str, agent: dict[str, Any]) -> dict[str, Any]:
    agent = {**agent, "updated_at": int(time.time() * 1000)}
    await store.redis.set(store.keys.agent(workspace_id, agent["id"]), json.dumps(agent), xx=True)
    return agent


async def delete_agent(store: Store, workspace_id: str, agent_id: str) -> bool:
    """Calls already placed keep their snapshot of the agent."""
    pipe = store.redis.pipeline(transaction=True)
    pipe.delete(store.keys.agent(workspace_id, agent_id))
    pipe.zrem(store.keys.agents(workspace_id), agent_id)
    deleted, _ = await pipe.execute()
    return bool(deleted)
