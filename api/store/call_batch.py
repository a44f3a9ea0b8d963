"""A batch of accepts (`POST /v1/api/calls/batch`): its one read, its one write, its answer.

Invariant: whatever the batch holds, its reads are one pipelined batch (the credentials and
the workspace, each distinct agent once, the workspace's numbers and assigned trunks, and
under an Idempotency-Key the batch's stored answer and each item's record) and its accepts
are one pipelined batch of the single accept's own scripts, in item order, each atomic on
its own: an item is accepted whole or not at all, whatever happens to the others. Under a
batch key `K`, item `n` is accepted under the idempotency key `K #n` (no client key has a
space, so none collides with it), so a batch cut off by a Redis failure and sent again with
`K` finds the items already accepted and accepts each at most once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json
from redis.exceptions import ResponseError

from api.store.agents import AgentRecord, read_agent
from api.store.base import Store
from api.store.calls import IDEMPOTENCY_TTL_SECONDS, AcceptOutcome, AcceptWrite
from api.store.lean_redis import hash_reply
from api.store.workspaces import Authentication, CredentialKind, authentication_reads


def item_idempotency_key(batch_key: str, index: int) -> str:
    """The idempotency key item `index` of the batch under `batch_key` is accepted with."""
    return f"{batch_key} #{index}"


@dataclass(frozen=True, slots=True)
class BatchReads:
    authentication: Authentication
    # The rest is read only once the body parsed as a list of items (else empty).
    agents: dict[str, AgentRecord | None] = field(default_factory=dict)
    numbers: dict[str, str] = field(default_factory=dict)
    assigned_trunks: set[str] = field(default_factory=set)
    # Under an Idempotency-Key: the batch's first answer, and each item's record (by index).
    previous: dict[str, Any] | None = None
    previous_items: list[dict[str, Any] | None] = field(default_factory=list)


async def read_for_batch(
    store: Store,
    workspace_id: str,
    key_hash: str,
    agent_ids: Sequence[str] | None,
    batch_key: str | None,
    items: int,
    kind: CredentialKind = "api_key",
) -> BatchReads:
    """Everything the checks of a batch of `items` need, in one round trip (`agent_ids`
    None: the body did not parse, so only the credentials are read)."""
    keys = store.keys
    reads = authentication_reads(store, workspace_id, key_hash, kind)
    if agent_ids is not None:
        reads.append(["HGETALL", keys.numbers(workspace_id)])
        reads.append(["SMEMBERS", keys.workspace_trunks(workspace_id)])
        if agent_ids:
            reads.append(["MGET", *(keys.agent(workspace_id, agent) for agent in agent_ids)])
        if batch_key:
            reads.append(["GET", keys.batch_idempotency(workspace_id, batch_key)])
            item_keys = [item_idempotency_key(batch_key, index) for index in range(items)]
            reads.append(["MGET", *(keys.idempotency(workspace_id, key) for key in item_keys)])
    owner, raw_workspace, *replies = await store.lean.execute(*reads)
    authentication = Authentication.from_replies(workspace_id, owner, raw_workspace, kind)
    if agent_ids is None:
        return BatchReads(authentication)
    raw_numbers, assigned, *rest = replies
    raw_agents = rest.pop(0) if agent_ids else []
    agents = {
        agent: read_agent(raw, workspace_id, agent)
        for agent, raw in zip(agent_ids, raw_agents, strict=True)
    }
    previous, previous_items = None, []
    if batch_key:
        raw_previous, raw_items = rest
        previous = json.loads(raw_previous) if raw_previous else None
        previous_items = [json.loads(raw) if raw else None for raw in raw_items]
    return BatchReads(
        authentication,
        agents=agents,
        numbers=hash_reply(raw_numbers),
        assigned_trunks=set(assigned),
        previous=previous,
        previous_items=previous_items,
    )


async def run_accepts(
    store: Store, writes: Sequence[AcceptWrite]
) -> list[AcceptOutcome | ResponseError]:
    """Each accept's outcome, in order, from one round trip; Redis's error reply for one it
    refused (its script wrote nothing: a script is atomic)."""
    replies = await store.run_replicated_many([write.call for write in writes])
    return [
        reply if isinstance(reply, ResponseError) else write.outcome(reply)
        for write, reply in zip(writes, replies, strict=True)
    ]


async def save_batch_answer(
    store: Store, workspace_id: str, batch_key: str, request_hash: str, answer: dict[str, Any]
) -> None:
    """Keep a batch's answer under its key for `IDEMPOTENCY_TTL_SECONDS`; the first answer
    stays when two requests with the key ran at once."""
    record = to_json({"request_hash": request_hash, "response": answer})
    key = store.keys.batch_idempotency(workspace_id, batch_key)
    await store.lean.execute(["SET", key, record, "NX", "EX", IDEMPOTENCY_TTL_SECONDS])
