"""A dead worker's message comes back (api/jobs/dead_workers.py): a SIGKILLed worker's, end
to end (real `dramatiq api.worker` processes, the real API and the LiveKit test server),
and one whose sweep lost its link to Redis.

Dramatiq's own maintenance is switched off end to end (1 command in a million): what brings
the killed worker's message back is the sweep alone. The in-process tests of the sweep
(tests/test_wakeup.py) show the wake-up with a poll longer than Settings allows.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import redis
from dramatiq.common import current_millis

from api.jobs.dead_workers import DeadWorkerSweep
from api.jobs.wakeup import MAINTENANCE_COMMAND
from api.settings import Settings
from api.store.messages import QueueKeys, heartbeats_key
from tests.conftest import Tenant
from tests.redis_proxy import RedisProxy
from tests.support import (
    SpareRedis,
    WorkerProcess,
    async_wait_until,
    dies_holding,
    wait_until,
    wakeable_broker,
)

# The longest fallback poll Settings allows for this heartbeat timeout.
HEARTBEAT_TIMEOUT_MS = 8_000
POLL_MS = HEARTBEAT_TIMEOUT_MS // 4


async def test_a_killed_workers_dial_job_is_run_by_a_live_worker_soon_after_the_heartbeat_timeout(
    tenant: Tenant, lk: Any, settings: Settings, api_server: Any, redis_client: redis.Redis
) -> None:
    fast = settings.model_copy(
        update={
            "heartbeat_timeout_ms": HEARTBEAT_TIMEOUT_MS,
            "worker_timeout_ms": POLL_MS,
            "maintenance_chance": 1,
        }
    )
    heartbeats = heartbeats_key(fast.broker_namespace)
    agent = await tenant.create_agent(ring_timeout_seconds=25)
    await tenant.register_number("+15105550100")
    # The killed worker's dispatch job is in hand: its CreateRoom is held at LiveKit.
    lk.inject("RoomService", "CreateRoom", delay_before=60)
    first = WorkerProcess(fast, threads=1).start()
    second: WorkerProcess | None = None
    try:
        [first_id] = wait_until(lambda: redis_client.zrange(heartbeats, 0, -1), timeout=30)
        placed = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
        assert placed.status_code in (200, 201), placed.text
        await async_wait_until(lambda: lk.count("RoomService", "CreateRoom") >= 1, timeout=20)
        second = WorkerProcess(fast, threads=1).start()
        wait_until(lambda: redis_client.zcard(heartbeats) >= 2, timeout=30, what="the second")
        first.kill()
        died_at = redis_client.zscore(heartbeats, first_id)
        assert died_at is not None
        # Its last command, then the timeout, one sweep interval (0.8 s), the wake-up and
        # the job's first request: seconds of room for a busy machine, far less than the
        # minutes Dramatiq's maintenance would take at this chance.
        bound_ms = died_at + HEARTBEAT_TIMEOUT_MS + 5_000
        await async_wait_until(
            lambda: lk.count("RoomService", "CreateRoom") >= 2,
            timeout=(bound_ms + 5_000) / 1000 - time.time(),
            what="the dispatch job run again",
        )
    finally:
        first.kill()
        if second is not None:
            second.stop()
    rerun_ms = lk.requests("RoomService", "CreateRoom")[1].received_at * 1000
    assert died_at + HEARTBEAT_TIMEOUT_MS <= rerun_ms <= bound_ms


def test_a_sweep_whose_reply_was_lost_is_done_again_and_announced_at_the_next_step(
    redis_proxy: RedisProxy, spare_redis: SpareRedis
) -> None:
    """The first queue's maintenance runs, then the link drops before its reply: the step
    raises before any wake-up. The next step sweeps again (nothing left to requeue) and
    publishes, rather than taking the dead worker as swept."""
    namespace = f"sweep-{uuid.uuid4().hex[:8]}"
    queue = QueueKeys.of(namespace, "sweep.test")
    dead, held = dies_holding(spare_redis.url, namespace, "sweep.test", "held")
    sweeper = wakeable_broker(redis_proxy.url, namespace=namespace, heartbeat_timeout=1_000)
    sweeper.declare_queue("sweep.test")
    sweep = DeadWorkerSweep(sweeper)
    direct = redis.Redis.from_url(spare_redis.url)
    wakeups = direct.pubsub(ignore_subscribe_messages=True)
    try:
        wakeups.subscribe(queue.ids)
        wait_until(lambda: direct.pubsub_numsub(queue.ids) == [(queue.ids.encode(), 1)])
        died_at = direct.zscore(heartbeats_key(namespace), dead.broker_id)
        assert died_at is not None
        wait_until(lambda: current_millis() > died_at + 1_000, what="the heartbeat timeout")
        sweeper.client.script_load(sweeper.scripts["dispatch"].script)  # EVALSHA runs it
        sha = str(sweeper.scripts["dispatch"].sha)
        rule = redis_proxy.lose_reply("EVALSHA", first_arg=sha, contains=MAINTENANCE_COMMAND)

        with pytest.raises(redis.ConnectionError):
            sweep.step()
        assert len(redis_proxy.lost(rule)) == 1  # Redis ran it: the message is back
        redis_id = held.options["redis_message_id"].encode()
        assert direct.lrange(queue.ids, 0, -1) == [redis_id]
        assert wakeups.get_message(timeout=0) is None  # but nobody was told

        sweep.step()
        assert wakeups.get_message(timeout=10) is not None
        assert direct.lrange(queue.ids, 0, -1) == [redis_id]  # requeued once
    finally:
        wakeups.close()
        for key in direct.scan_iter(match=f"{namespace}*"):
            direct.delete(key)
        direct.close()
        dead.close()
        sweeper.close()
