"""What the accept path (`POST /v1/api/call`) reads, in one round trip (a batch's: `call_batch`).

Invariant: one pipelined batch on the lean client (see lean_redis) whatever the request
holds: the presented secret's owner (API key or integration token) and the named workspace
always, and, once the body names an agent, the agent, the workspace's numbers, the trunks
the operator assigned to it and the earlier answer stored under the idempotency key. The
accept path's speed rests on this being its only read; its only write is
the accept script (`calls.run_accept`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from api.store.agents import AgentRecord, read_agent
from api.store.base import Store
from api.store.lean_redis import hash_reply
from api.store.workspaces import Authentication, CredentialKind, authentication_reads


@dataclass(frozen=True, slots=True)
class AcceptReads:
    authentication: Authentication
    # The rest is read only once the body named an agent (else empty).
    agent: AgentRecord | None = None
    # E.164 -> the stored number JSON (`numbers.pick_caller` decodes the one it picks).
    numbers: dict[str, str] = field(default_factory=dict)
    assigned_trunks: set[str] = field(default_factory=set)
    # The idempotency record of an earlier request with the same key.
    previous: dict[str, Any] | None = None


async def read_for_accept(
    store: Store,
    workspace_id: str,
    key_hash: str,
    agent_id: str | None,
    idempotency_key: str | None,
    kind: CredentialKind = "api_key",
) -> AcceptReads:
    """Everything the checks before an accept need (`agent_id` None: the body did not
    parse, so only the credentials are read); `kind`: which secret `key_hash` is of."""
    keys = store.keys
    reads = authentication_reads(store, workspace_id, key_hash, kind)
    if agent_id is not None:
        reads.append(["GET", keys.agent(workspace_id, agent_id)])
        reads.append(["HGETALL", keys.numbers(workspace_id)])
        reads.append(["SMEMBERS", keys.workspace_trunks(workspace_id)])
        if idempotency_key:
            reads.append(["GET", keys.idempotency(workspace_id, idempotency_key)])
    owner, raw_workspace, *replies = await store.lean.execute(*reads)
    authentication = Authentication.from_replies(workspace_id, owner, raw_workspace, kind)
    if agent_id is None:
        return AcceptReads(authentication)
    raw_agent, raw_numbers, assigned, *previous = replies
    return AcceptReads(
        authentication,
        agent=read_agent(raw_agent, workspace_id, agent_id),
        numbers=hash_reply(raw_numbers),
        assigned_trunks=set(assigned),
        previous=json.loads(previous[0]) if previous and previous[0] else None,
    )
