"""The dispatcher's `waiting_for_agent` mark against the agent's readiness
(api.store.agent_wait, wait_for_agent.lua; agent_ready.lua), on real Redis: whichever
comes second continues the call."""

from __future__ import annotations

import json

from api.store.agent_wait import mark_waiting_for_agent
from api.store.base import Store
from api.store.calls import accept_call
from api.store.events import EventSpec, apply_event, mark_agent_ready
from api.store.messages import DIAL_ACTOR
from tests.test_store import draft


async def dispatching_call(store: Store) -> str:
    call = draft()
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    assert (await apply_event(store, call.id, EventSpec("call.dispatching"))).applied
    return call.id


async def test_the_mark_before_the_readiness_leaves_the_dial_to_the_readiness(
    store: Store,
) -> None:
    call_id = await dispatching_call(store)
    wait = await mark_waiting_for_agent(store, call_id)
    assert wait.marked.applied and wait.marked.status == "waiting_for_agent"
    assert not wait.agent_was_ready
    ready = await mark_agent_ready(store, call_id, EventSpec("agent.ready"))
    assert ready.dial  # the readiness queued the dial step


async def test_the_readiness_before_the_mark_leaves_the_dial_to_the_mark(store: Store) -> None:
    call_id = await dispatching_call(store)
    ready = await mark_agent_ready(store, call_id, EventSpec("agent.ready"))
    assert ready.applied and not ready.dial  # nobody waited yet: no dial step queued
    wait = await mark_waiting_for_agent(store, call_id)
    assert wait.marked.applied and wait.agent_was_ready


async def test_a_call_no_longer_dispatching_is_not_marked(store: Store) -> None:
    call_id = await dispatching_call(store)
    canceled = EventSpec("call.canceled", {"reason": "test"})
    assert (await apply_event(store, call_id, canceled)).applied
    wait = await mark_waiting_for_agent(store, call_id)
    assert not wait.marked.applied and wait.marked.status == "canceled"
    status = await store.redis.hget(store.keys.call(call_id), "status")
    assert status == "canceled"


async def test_the_readiness_queues_the_dial_step_ahead_of_a_backlog(store: Store) -> None:
    """Accepted calls queue their dispatches at the tail; a ready agent's dial step goes to
    the head, so it is not held behind every dispatch of a backlog (issue 24)."""
    call_id = await dispatching_call(store)
    backlog = [draft() for _ in range(3)]
    for call in backlog:
        assert (await accept_call(store, call, {"callId": call.id}, None)).created
    assert (await mark_waiting_for_agent(store, call_id)).marked.applied
    assert (await mark_agent_ready(store, call_id, EventSpec("agent.ready"))).dial
    queued = await store.redis.lrange(store.dial_queue.ids, 0, -1)
    first = json.loads(await store.redis.hget(store.dial_queue.messages, queued[0]))
    assert (first["actor_name"], first["args"][0]) == (DIAL_ACTOR, call_id)
    # Behind it, the dispatches in the order they were accepted.
    assert len(queued) == 1 + 1 + len(backlog)  # the call's own dispatch message, then theirs
