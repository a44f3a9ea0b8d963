"""A batch of calls cut off by Redis mid-write, then sent again with its Idempotency-Key.

The proxy in front of Redis (tests/redis_proxy.py) lets the batch's write reach Redis up to
one item's accept script, runs that script, and drops the link there: the items before it
and that item are accepted, the ones after it never reach Redis, and the API answers 503
(it cannot know which items ran). The retry with the same key must answer every item, each
accepted exactly once: the accepted ones with their first answer, the others placed now.
"""

from __future__ import annotations

from typing import Any

import httpx
import redis

from api.settings import Settings
from api.store.keys import Keys
from api.store.scripts import SCRIPTS
from tests.conftest import create_tenant
from tests.redis_proxy import RedisProxy, script_sha
from tests.support import ApiServer, SpareRedis, free_port

CALLS = 8
CUT_AT = 4  # the item whose reply is lost (it runs; the ones after it do not reach Redis)


def callee(index: int) -> str:
    return f"+1415555{index:04d}"


async def test_a_batch_cut_off_by_redis_and_retried_with_its_key_accepts_each_item_once(
    spare_redis: SpareRedis, redis_proxy: RedisProxy, settings: Settings, lk: Any
) -> None:
    proxied = settings.model_copy(update={"redis_url": redis_proxy.url})
    server = ApiServer(proxied, free_port()).start()
    direct = redis.Redis.from_url(spare_redis.url, decode_responses=True)
    keys = Keys(proxied.redis_prefix)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            tenant = await create_tenant(http, "cut")
            agent = await tenant.create_agent()
            await tenant.register_number("+15105550100")
            # The accept script is loaded (EVALSHA, not EVAL, from here on).
            warm = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
            assert warm.status_code == 200, warm.text
            items = [
                {"to": callee(n), "call_agent_id": agent["id"], "metadata": {"n": n}}
                for n in range(CALLS)
            ]
            items.insert(2, {"to": "12", "call_agent_id": agent["id"]})  # refused, never sent
            rule = redis_proxy.lose_reply(
                "EVALSHA", first_arg=script_sha(SCRIPTS["accept_call"]), contains=callee(CUT_AT)
            )
            headers = {"Idempotency-Key": "nightly-42"}
            cut = await tenant.request("POST", "/v1/api/calls/batch", json=items, headers=headers)
            assert cut.status_code == 503, cut.text
            assert cut.json()["code"] == "SERVICE_UNAVAILABLE"
            assert len(redis_proxy.lost(rule)) == 1
            before_retry = _calls_by_callee(direct, keys, tenant.id)
            # Every item up to the cut (its own included) ran, none after it.
            assert set(before_retry) == {"+14155552671"} | {callee(n) for n in range(CUT_AT + 1)}

            retried = await tenant.request(
                "POST", "/v1/api/calls/batch", json=items, headers=headers
            )
            assert retried.status_code == 200, retried.text
            results = retried.json()["results"]
            again = await tenant.request("POST", "/v1/api/calls/batch", json=items, headers=headers)
            assert again.json() == retried.json()
        after = _calls_by_callee(direct, keys, tenant.id)
        dial_messages = direct.llen(f"{proxied.broker_namespace}:outdial.dial")
    finally:
        server.stop()
        direct.close()

    statuses = [result["status"] for result in results]
    assert statuses == ["success", "success", "error"] + ["success"] * (CALLS - 2)
    accepted = [result for result in results if result["status"] == "success"]
    # One call per item, no more: the items that ran before the cut kept their first call.
    assert {n: len(after[callee(n)]) for n in range(CALLS)} == dict.fromkeys(range(CALLS), 1)
    assert [result["callId"] for result in accepted] == [after[callee(n)][0] for n in range(CALLS)]
    for n in range(CUT_AT + 1):
        assert before_retry[callee(n)] == after[callee(n)]
    assert dial_messages == CALLS + 1  # the warm-up call's and one per item


def _calls_by_callee(client: redis.Redis, keys: Keys, workspace_id: str) -> dict[str, list[str]]:
    """The workspace's calls, by the number each one calls."""
    found: dict[str, list[str]] = {}
    for call_id in client.zrange(keys.calls(workspace_id), 0, -1):
        found.setdefault(client.hget(keys.call(call_id), "to"), []).append(call_id)
    return found
