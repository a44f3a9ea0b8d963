"""Every message the store writes wakes the workers: a PUBLISH on its queue's channel.

Two checks. Text: the store's Lua scripts write a message (HSET of an id and its body, then
RPUSH of that id) in one place, lib/enqueue.lua's `enqueue`, which publishes on that queue
right after, so a new script that writes a message of its own fails here even before a test
runs it.
Behaviour: with a subscription on the namespace, each store function that queues a message
(the scenario of `tests/test_message_layout.py`) sends exactly as many wake-ups per queue as
it wrote messages there.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

import api.store
from api.settings import Settings
from api.store.base import Store, open_store
from api.store.calls import accept_call
from api.store.deadlines import queue_dial
from api.store.due_claims import DueClaims, Schedule
from api.store.events import EventSpec, apply_event, mark_agent_ready
from api.store.messages import DIAL_QUEUE, RECONCILE_QUEUE, RELAY_QUEUE, QueueKeys
from api.store.redelivery import enqueue_redelivery
from api.store.scripts import SCRIPTS
from tests.conftest import REDIS_URL, RUN_ID, delete_prefix
from tests.support import wait_until
from tests.test_store import draft

# HSET <msgs>, <id>, <body> then RPUSH (or LPUSH) <queue>, <id>: Dramatiq's layout of one
# message.
_MESSAGE_WRITE = re.compile(
    r"redis\.call\('HSET', (?P<msgs>[^,]+), (?P<id>[^,]+), [^)]+\)\s*"
    r"redis\.call\((?:[^,]*')?[LR]PUSH', (?P<queue>[^,]+), (?P=id)\)"
)
_LINES_AFTER = 3
LUA = Path(api.store.__file__).parent / "lua"


def _unpublished(source: str) -> tuple[int, list[str]]:
    """How many message writes `source` has, and those not followed by their PUBLISH."""
    writes = list(_MESSAGE_WRITE.finditer(source))
    missing: list[str] = []
    for write in writes:
        after = source[write.end() :].splitlines()[1 : _LINES_AFTER + 1]
        publish = f"redis.call('PUBLISH', {write['queue']}, '')"
        if not any(line.strip() == publish for line in after):
            missing.append(f"RPUSH {write['queue']} without {publish}")
    return len(writes), missing


def test_the_store_scripts_write_messages_only_through_enqueue_which_publishes() -> None:
    assert _unpublished((LUA / "lib" / "enqueue.lua").read_text()) == (1, [])
    elsewhere = {
        str(path.relative_to(LUA)): _unpublished(path.read_text())[0]
        for path in sorted(LUA.rglob("*.lua"))
        if path.name != "enqueue.lua"
    }
    assert {path: writes for path, writes in elsewhere.items() if writes} == {}
    enqueuing = [
        name for name, script in SCRIPTS.items() if re.search(r"^\s*enqueue\(", script, re.M)
    ]
    assert len(enqueuing) >= 7, "the scripts no longer enqueue through lib/enqueue.lua"


def test_the_text_check_finds_a_write_without_its_wake_up() -> None:
    script = (
        "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\nredis.call('RPUSH', KEYS[2], ARGV[1])\n"
    )
    [write] = _MESSAGE_WRITE.finditer(script)
    assert write["queue"] == "KEYS[2]"
    assert _unpublished(script) == (1, ["RPUSH KEYS[2] without redis.call('PUBLISH', KEYS[2], '')"])


@pytest.fixture
def settings() -> Settings:
    return Settings(
        REDIS_URL=REDIS_URL, OUTDIAL_REDIS_PREFIX=f"odtest-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    )


@pytest.fixture
async def store(settings: Settings, redis_client: redis.Redis) -> AsyncIterator[Store]:
    opened = open_store(settings)
    yield opened
    await opened.aclose()
    delete_prefix(redis_client, settings.redis_prefix)


@pytest.fixture
def wake_ups(settings: Settings) -> Iterator[Counter[str]]:
    """Wake-ups received on the broker's namespace, by queue, in a background thread."""
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    prefix = QueueKeys.of(settings.broker_namespace, "").ids
    seen: Counter[str] = Counter()

    def record(message: dict[str, bytes]) -> None:
        seen[message["channel"].decode().removeprefix(prefix)] += 1

    pubsub.psubscribe(**{f"{prefix}*": record})
    thread = pubsub.run_in_thread(sleep_time=0.05, daemon=True)
    try:
        yield seen
    finally:
        thread.stop()
        thread.join(timeout=5)
        pubsub.close()
        client.close()


async def test_each_message_the_store_writes_sends_one_wake_up(
    store: Store, settings: Settings, wake_ups: Counter[str], redis_client: redis.Redis
) -> None:
    # Nothing consumes here: every message written stays in its queue, to be counted.
    call = draft(callback_url="https://example.com/hook")
    await accept_call(store, call, {"callId": call.id}, None)  # dispatch + relay
    await store.redis.delete(store.keys.relay_active(call.id))
    await apply_event(store, call.id, EventSpec("call.dispatching", expected_status="queued"))
    await apply_event(store, call.id, EventSpec("call.waiting_for_agent"))
    assert (await mark_agent_ready(store, call.id, EventSpec("agent.ready"))).dial
    await queue_dial(store, call.id)
    await store.redis.zadd(store.keys.relay_due(), {call.id: 1})
    await store.redis.zadd(store.keys.deadlines(), {call.id: 1})
    for schedule in (Schedule.relay_retries(settings), Schedule.call_deadlines(settings)):
        claims = DueClaims(settings, schedule)
        try:
            assert claims.claim(10) == 1
        finally:
            claims.close()
    queued = await enqueue_redelivery(store, call.workspace_id, call.id, 1, per_minute=5)
    assert queued.outcome == "queued"

    written = {
        queue: redis_client.llen(QueueKeys.of(settings.broker_namespace, queue).ids)
        for queue in (DIAL_QUEUE, RELAY_QUEUE, RECONCILE_QUEUE)
    }
    assert written == {DIAL_QUEUE: 3, RELAY_QUEUE: 4, RECONCILE_QUEUE: 1}
    wait_until(lambda: dict(wake_ups) == written, timeout=5, what=f"{written} wake-ups")
