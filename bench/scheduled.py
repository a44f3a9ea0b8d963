"""Scheduler lateness: 10,000 calls scheduled over 60 s, how late each is queued.

The calls are written by the accept path's own store function (`accept_scheduled_call`,
the script `POST /v1/api/call` runs for a call due later) with due times spread evenly over
60 s; one scheduled-calls claimer (`DueClaimer`, the thread every worker process runs)
claims them. Lateness is the call's `queued` time minus its due time, both written by
Redis scripts with the same clock: the scheduler's part of the dial lateness (the dispatch
after it is time-to-dial, `bench/wakeup.py`). A call queued before its due time counts as
early (must be 0). Needs Redis at REDIS_URL; writes under a fresh prefix and deletes it.

    PYTHONPATH=. python -m bench.scheduled [--calls 10000] [--over 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import redis

from agent_runtime.contract import AgentConfig
from api.jobs.due_claimer import DueClaimer
from api.settings import Settings
from api.store.base import open_store
from api.store.call_record import CallBudgets, CallDraft
from api.store.due_claims import Schedule
from api.store.scheduled_calls import Due, accept_scheduled_call

AGENT = AgentConfig(id="a" * 24, name="Bench", instructions="Hi", worker_name="w")


def _settings() -> Settings:
    return Settings(
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        LIVEKIT_URL="http://127.0.0.1:1",
        LIVEKIT_API_KEY="bench",
        LIVEKIT_API_SECRET="bench-secret-that-is-long-enough-for-hs256",
        OUTDIAL_REDIS_PREFIX=f"bench-sched-{uuid.uuid4().hex[:8]}",
        OUTDIAL_SECRET_KEY="bench",
    )


def _draft(settings: Settings, index: int) -> CallDraft:
    call_id = uuid.uuid4().hex[:24]
    return CallDraft(
        id=call_id,
        workspace_id="ws_bench",
        agent_id=AGENT.id,
        to="+14155552671",
        from_number=None,
        sip_trunk_id="ST_bench",
        room_name=f"room-{index}-{call_id}",
        callback_url=None,
        dynamic_variables={},
        metadata={},
        campaign_id=None,
        max_duration_seconds=600,
        ring_timeout_seconds=30,
        agent=AGENT,
        budgets=CallBudgets.from_settings(settings),
    )


async def _place(settings: Settings, calls: int, over_s: float, lead_s: float) -> list[str]:
    store = open_store(settings)
    start_ms = int((time.time() + lead_s) * 1000)
    ids = []
    try:
        for index in range(calls):
            due = Due(start_ms + int(index * over_s * 1000 / calls), "scheduled_time")
            draft = _draft(settings, index)
            await accept_scheduled_call(store, draft, {"callId": draft.id}, None, due)
            ids.append(draft.id)
    finally:
        await store.aclose()
    return ids


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--over", type=float, default=60.0)
    args = parser.parse_args()
    settings = _settings()
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    claimer = DueClaimer(settings, Schedule.scheduled_calls(settings))
    try:
        began = time.time()
        # the first call is due once all are written (about 1.5 ms per accept here)
        ids = asyncio.run(_place(settings, args.calls, args.over, lead_s=args.calls / 500 + 2))
        written_s = time.time() - began
        claimer.start()
        due_key = settings.redis_prefix + ":scheduled:due"
        deadline = time.time() + args.over + 120
        while client.zcard(due_key) and time.time() < deadline:
            time.sleep(0.5)
        claimer.stop()
        pipe = client.pipeline(transaction=False)
        for call_id in ids:
            pipe.hmget(f"{settings.redis_prefix}:call:{call_id}", ["scheduled_at", "ts_queued"])
        rows = pipe.execute()
        late = [int(queued) - int(due) for due, queued in rows if queued]
        print(
            f"| {args.calls} calls over {args.over:.0f} s (written in {written_s:.1f} s) "
            f"| queued {len(late)} of {len(ids)} | early {sum(1 for x in late if x < 0)} "
            f"| p50 {_percentile(late, 0.5):.0f} ms | p99 {_percentile(late, 0.99):.0f} ms "
            f"| max {max(late):.0f} ms | mean {statistics.fmean(late):.1f} ms |"
        )
    finally:
        claimer.stop()
        for prefix in (settings.redis_prefix, settings.broker_namespace):
            keys = list(client.scan_iter(f"{prefix}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
        client.close()


if __name__ == "__main__":
    main()
