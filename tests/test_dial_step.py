"""The dial step's read and `dialing` mark in one round trip (api.store.dial_step,
dial_step.lua), on real Redis: only a call before its dial, in a workspace not disabled,
is marked, expecting the status read, with `call.dialing` naming its numbers."""

from __future__ import annotations

from api.settings import Settings
from api.store.agent_wait import mark_waiting_for_agent
from api.store.base import Store, open_store
from api.store.calls import accept_call
from api.store.dial_step import read_and_mark_dialing
from api.store.dialing import record_dialed
from api.store.events import EventSpec, apply_event, list_events
from api.store.scripts import SCRIPTS
from tests.redis_proxy import RedisProxy, script_sha
from tests.test_store import draft


async def waiting_call(store: Store) -> str:
    call = draft()
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    assert (await apply_event(store, call.id, EventSpec("call.dispatching"))).applied
    assert (await mark_waiting_for_agent(store, call.id)).marked.applied
    return call.id


async def test_a_call_waiting_for_its_agent_is_read_then_marked_for_the_run(
    store: Store,
) -> None:
    call_id = await waiting_call(store)
    start = await read_and_mark_dialing(store, call_id, "run-1", None)
    assert start.found.call is not None and start.found.call.status == "waiting_for_agent"
    assert start.paced is not None and start.paced.result is not None
    assert start.paced.result.applied and start.paced.result.status == "dialing"
    record = await store.redis.hgetall(store.keys.call(call_id))
    assert (record["status"], record["dial_owner"]) == ("dialing", "run-1")
    dialing = [e for e in await list_events(store, call_id) if e["type"] == "call.dialing"]
    assert [e["data"] for e in dialing] == [{"to": record["to"], "from": record["from"]}]
    again = await read_and_mark_dialing(store, call_id, "run-2", None)
    assert again.paced is None and again.found.call is not None  # dialing: read only
    assert await store.redis.hget(store.keys.call(call_id), "dial_owner") == "run-1"


async def test_a_disabled_workspaces_call_is_read_and_not_marked(store: Store) -> None:
    call_id = await waiting_call(store)
    await store.redis.hset(store.keys.workspace("ws_1"), "disabled", "1")
    start = await read_and_mark_dialing(store, call_id, "run-1", None)
    assert start.paced is None and start.found.workspace_disabled
    assert await store.redis.hget(store.keys.call(call_id), "status") == "waiting_for_agent"


async def test_a_queued_call_is_only_read(store: Store) -> None:
    call = draft()
    assert (await accept_call(store, call, {"callId": call.id}, None)).created
    start = await read_and_mark_dialing(store, call.id, "run-1", None)
    assert start.paced is None and start.found.call is not None
    assert await store.redis.hget(store.keys.call(call.id), "status") == "queued"


async def test_the_legs_ids_are_recorded_when_the_first_reply_is_lost(
    redis_proxy: RedisProxy, redis_only_settings: Settings
) -> None:
    """After CreateSIPParticipant answered, the leg exists: a lost connection while its ids
    are written must not leave the call without them (the step's retry would find the leg
    and never write them). The write runs twice, with the same values."""
    store = open_store(redis_only_settings.model_copy(update={"redis_url": redis_proxy.url}))
    try:
        call_id = await waiting_call(store)
        rule = redis_proxy.lose_reply("EVALSHA", first_arg=script_sha(SCRIPTS["record_dialed"]))
        assert await record_dialed(store, call_id, "SCL_1", "PA_1", 1234) == "waiting_for_agent"
        assert len(redis_proxy.lost(rule)) == 1  # the first write ran; its reply was lost
        record = await store.redis.hgetall(store.keys.call(call_id))
        assert (record["sip_call_id"], record["sip_participant_id"]) == ("SCL_1", "PA_1")
    finally:
        await store.aclose()
