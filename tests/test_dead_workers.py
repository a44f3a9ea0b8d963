"""A SIGKILLed worker's message, end to end (api/jobs/dead_workers.py): real `dramatiq
api.worker` processes, the real API and the LiveKit test server.

Dramatiq's own maintenance is switched off here (1 command in a million): what brings the
killed worker's message back is the sweep alone. The in-process tests of the sweep
(tests/test_wakeup.py) show the wake-up with a poll longer than Settings allows.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from api.settings import Settings
from api.store.messages import heartbeats_key
from tests.conftest import Tenant
from tests.support import WorkerProcess, async_wait_until, wait_until

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
