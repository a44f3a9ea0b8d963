"""Agents of a workspace, each stored as one JSON document (`keys.agent`).

Invariant: `AgentRecord.from_json` and `AgentRecord.to_json` are the one conversion between
the stored document and the typed record (documents written before this type are read as
they are: same field names), and `AgentRecord.config` is the one mapping from an agent to
the contract's `AgentConfig`, the snapshot a call carries to its agent worker. A document
that does not parse is unreadable (`api.store.records`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal, cast

from pydantic import TypeAdapter

from agent_runtime.contract import AgentConfig, PipelineConfig, VoicemailConfig
from api.store.base import Store
from api.store.records import readable, strict_document


@dataclass(frozen=True, slots=True)
class AgentCallWindow:
    """An agent's call window as its document holds it (validated by the API:
    `api.schemas.call_windows.CallWindowSpec`; read by `call_windows.window_from_fields`)."""

    days: tuple[str, ...]
    start: str
    end: str
    timezone: str


# Keyword-only, so the fields keep the documents' order (the API's field order).
@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRecord:
    id: str
    name: str
    instructions: str
    first_message: str | None = None
    worker_name: str
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    max_duration_seconds: int | None = None
    ring_timeout_seconds: int | None = None
    silence_timeout_seconds: int | None = None
    voicemail_action: Literal["hangup", "leave_message"] = "hangup"
    voicemail_message: str | None = None
    transfer_to: str | None = None
    # Its calls' window unless a call names its own (`call_windows.window_from_fields`).
    call_window: AgentCallWindow | None = None
    created_at: int  # ms
    updated_at: int

    @classmethod
    def from_json(cls, raw: str | bytes) -> AgentRecord:
        """The agent in a stored document; `UnreadableRecord` when it does not parse (strict:
        the API wrote it from a validated body, so a wrong type is damage, not a format)."""
        return strict_document(_AGENT, raw)

    def to_json(self) -> str:
        return _AGENT.dump_json(self).decode()

    @classmethod
    def from_fields(cls, values: Mapping[str, Any]) -> AgentRecord:
        """An agent from its fields as `fields()` gives them (a `ValidationError`, a
        ValueError, names what does not fit)."""
        return _AGENT.validate_python(values)

    def fields(self) -> dict[str, Any]:
        """The fields as the stored document holds them (JSON values)."""
        values: dict[str, Any] = _AGENT.dump_python(self, mode="json")
        return values

    def config(self) -> AgentConfig:
        """The contract's snapshot of this agent, frozen into a call when it is accepted."""
        return _snapshot(self)


# The accept path reads the same few agents for every call: a document's text fixes its
# record and a record its snapshot (both immutable), so each is built once, not per call
# (together about 5% of an accept's CPU). Bounded: agents edited or spread over many
# workspaces only cost a parse again.
_CACHED_AGENTS = 512


@lru_cache(maxsize=_CACHED_AGENTS)
def _parsed(raw: str | bytes) -> AgentRecord:
    return AgentRecord.from_json(raw)


@lru_cache(maxsize=_CACHED_AGENTS)
def _snapshot(agent: AgentRecord) -> AgentConfig:
    return AgentConfig(
        id=agent.id,
        name=agent.name,
        instructions=agent.instructions,
        first_message=agent.first_message,
        worker_name=agent.worker_name,
        pipeline=agent.pipeline,
        max_duration_seconds=agent.max_duration_seconds,
        ring_timeout_seconds=agent.ring_timeout_seconds,
        silence_timeout_seconds=agent.silence_timeout_seconds,
        voicemail=VoicemailConfig(action=agent.voicemail_action, message=agent.voicemail_message),
        transfer_to=agent.transfer_to,
    )


_AGENT: TypeAdapter[AgentRecord] = TypeAdapter(AgentRecord)


def read_agent(raw: str | None, workspace_id: str, agent_id: str) -> AgentRecord | None:
    """The agent in a stored document; None when there is none or it is unreadable."""
    if raw is None:
        return None
    key = f"agent {workspace_id}/{agent_id}"
    return readable(lambda: _parsed(raw), key)


def new_agent_id() -> str:
    return secrets.token_hex(12)


async def insert_agent(store: Store, workspace_id: str, fields: Mapping[str, Any]) -> AgentRecord:
    """Store a new agent with `fields` (all of `AgentRecord`'s but id and times)."""
    now = int(time.time() * 1000)
    agent = AgentRecord.from_fields(
        {"id": new_agent_id(), **fields, "created_at": now, "updated_at": now}
    )
    pipe = store.redis.pipeline(transaction=True)
    pipe.set(store.keys.agent(workspace_id, agent.id), agent.to_json())
    pipe.zadd(store.keys.agents(workspace_id), {agent.id: now})
    await pipe.execute()
    return agent


async def get_agent(store: Store, workspace_id: str, agent_id: str) -> AgentRecord | None:
    # `store.redis` decodes every reply (open_store): the client's `bytes | str` are str.
    raw = cast(str | None, await store.redis.get(store.keys.agent(workspace_id, agent_id)))
    return read_agent(raw, workspace_id, agent_id)


async def list_agents(store: Store, workspace_id: str) -> list[AgentRecord]:
    """Newest first; an unreadable agent is left out (and logged)."""
    ids = cast(list[str], await store.redis.zrevrange(store.keys.agents(workspace_id), 0, -1))
    if not ids:
        return []
    keys = [store.keys.agent(workspace_id, agent_id) for agent_id in ids]
    raws = cast(list[str | None], await store.redis.mget(keys))
    found = (
        read_agent(raw, workspace_id, agent_id) for agent_id, raw in zip(ids, raws, strict=True)
    )
    return [agent for agent in found if agent is not None]


async def replace_agent(store: Store, workspace_id: str, agent: AgentRecord) -> AgentRecord:
    agent = replace(agent, updated_at=int(time.time() * 1000))
    await store.redis.set(store.keys.agent(workspace_id, agent.id), agent.to_json(), xx=True)
    return agent


async def delete_agent(store: Store, workspace_id: str, agent_id: str) -> bool:
    """Calls already placed keep their snapshot of the agent."""
    pipe = store.redis.pipeline(transaction=True)
    pipe.delete(store.keys.agent(workspace_id, agent_id))
    pipe.zrem(store.keys.agents(workspace_id), agent_id)
    deleted, _ = await pipe.execute()
    return bool(deleted)
