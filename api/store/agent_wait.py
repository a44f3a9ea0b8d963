"""The dispatcher's wait for the agent, from the store's side (wait_for_agent.lua).

Invariant: the `waiting_for_agent` mark and the read of the agent's readiness are one
atomic step on the call, as the readiness and its check of the mark are (agent_ready.lua):
whichever of the two comes second continues the call, so it is dialed once and never
left waiting for a readiness that already came.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from api.store.base import Store
from api.store.clock import now_ms
from api.store.events import (
    ApplyResult,
    EventArgs,
    EventKeys,
    EventSpec,
    apply_args,
    apply_result,
    event_keys,
)
from api.store.scripts import KEYS, ScriptCall


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitForAgent(ScriptCall):
    NAME = "wait_for_agent"
    event_keys: Annotated[EventKeys, KEYS]
    event: EventArgs


@dataclass(frozen=True, slots=True)
class AgentWait:
    """The mark's result and whether the agent was ready before it."""

    marked: ApplyResult
    agent_was_ready: bool


async def mark_waiting_for_agent(store: Store, call_id: str) -> AgentWait:
    """Move a `dispatching` call to `waiting_for_agent` (a compare-and-set) and tell whether
    its agent reported ready first, in one round trip."""
    event = EventSpec("call.waiting_for_agent", expected_status="dispatching")
    args = apply_args(store, event, now_ms(), call_id)
    reply = await store.run(WaitForAgent(event_keys=event_keys(store, call_id), event=args))
    return AgentWait(apply_result(reply[:3], args.new_status), bool(reply[3]))
