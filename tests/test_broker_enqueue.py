"""A message the broker writes survives a dropped link (`api.jobs.wakeup`, `enqueue`).

Dramatiq's Retries enqueues a failed message's retry and then acks the failed one, so an
enqueue that raised on a dropped connection lost the message for good (a dispatch job cut
by a Redis failover left its call to the reconciler, minutes later). Against a real Redis,
behind a proxy that runs the enqueue script and then closes the link before its reply.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import dramatiq
import pytest
import redis

from api.jobs.wakeup import WakeableRedisBroker
from tests.redis_proxy import RedisProxy
from tests.support import SpareRedis

QUEUE = "enqueue.test"
# How long the brokers here keep trying an enqueue (the worker's: 60 s, a failover's length).
PATIENCE_SECONDS = 3.0


@pytest.fixture
def broker(redis_proxy: RedisProxy) -> Iterator[WakeableRedisBroker]:
    namespace = f"enq-{uuid.uuid4().hex[:8]}"
    listener = redis.Redis.from_url(redis_proxy.url)
    made = WakeableRedisBroker(
        url=redis_proxy.url,
        listener_client=listener,
        namespace=namespace,
        enqueue_patience_seconds=PATIENCE_SECONDS,
    )
    yield made
    made.close()


def _send(broker: WakeableRedisBroker) -> dramatiq.Message[object]:
    actor = dramatiq.actor(lambda: None, actor_name="noop", broker=broker, queue_name=QUEUE)
    return actor.message()


def _dispatch_sha(broker: WakeableRedisBroker) -> str:
    return str(broker.scripts["dispatch"].sha)


def test_an_enqueue_whose_reply_was_lost_is_written_again_not_lost(
    broker: WakeableRedisBroker, redis_proxy: RedisProxy, spare_redis: SpareRedis
) -> None:
    message = _send(broker)
    # Redis knows the script, so the first EVALSHA runs it (not a NOSCRIPT answer).
    broker.client.script_load(broker.scripts["dispatch"].script)
    rule = redis_proxy.lose_reply("EVALSHA", first_arg=_dispatch_sha(broker), contains="enqueue")

    enqueued = broker.enqueue(message)

    assert len(redis_proxy.lost(rule)) == 1  # Redis ran the first write, its reply was lost
    direct = redis.Redis.from_url(spare_redis.url)
    try:
        ids = direct.lrange(f"{broker.namespace}:{QUEUE}", 0, -1)
        bodies = direct.hgetall(f"{broker.namespace}:{QUEUE}.msgs")
    finally:
        direct.close()
    # Both writes are there, each a whole copy of the message: run twice, never lost.
    assert len(ids) == 2 and set(bodies) == set(ids)
    assert enqueued.options["redis_message_id"].encode() in ids
    assert {dramatiq.Message.decode(body).message_id for body in bodies.values()} == {
        message.message_id
    }


def test_an_enqueue_that_keeps_failing_raises_after_its_attempts(
    broker: WakeableRedisBroker, redis_proxy: RedisProxy, spare_redis: SpareRedis
) -> None:
    message = _send(broker)
    broker.client.script_load(broker.scripts["dispatch"].script)
    rule = redis_proxy.lose_reply(
        "EVALSHA", first_arg=_dispatch_sha(broker), contains="enqueue", times=1000
    )

    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        broker.enqueue(message)

    # Tried again and again for its patience (less the last pause it would not fit), then given up.
    assert len(redis_proxy.lost(rule)) >= 5
    assert PATIENCE_SECONDS - 1.0 <= time.monotonic() - started <= PATIENCE_SECONDS + 2.0


def test_an_enqueue_while_redis_is_away_waits_for_it_to_come_back(
    broker: WakeableRedisBroker, spare_redis: SpareRedis
) -> None:
    """A failover leaves no primary for seconds: the retry's enqueue outlasts it."""
    message = _send(broker)
    spare_redis.stop()
    comes_back = threading.Timer(1.5, spare_redis.start)
    comes_back.start()
    try:
        enqueued = broker.enqueue(message)
    finally:
        comes_back.join()
    direct = redis.Redis.from_url(spare_redis.url)
    try:
        ids = direct.lrange(f"{broker.namespace}:{QUEUE}", 0, -1)
    finally:
        direct.close()
    assert ids == [enqueued.options["redis_message_id"].encode()]
