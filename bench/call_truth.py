"""Call truth benchmark: the dial after the agent's readiness, and the reconciler's cost.

1. 50 calls/s with the agent reporting `agent.ready` as soon as its room exists (a fake
   agent in this process watches CreateRoom at the LiveKit test server and posts the event
   with the call's token). Measured: readiness POST sent -> CreateSIPParticipant received,
   and accepted -> dial, both at the test server's clock (same process, same clock).
2. The reconciler with 10,000 calls in flight (in_progress, deadlines in the future): the
   worker's CPU per second next to a worker with no call in flight, Redis memory per call
   for the deadline entry and the budget fields, and the time and CPU to check 1,000 due
   calls against the test server.

    PYTHONPATH=. python -m bench.call_truth     # prints a markdown report
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from agent_runtime.contract import AgentConfig
from api.security import event_token
from api.settings import Settings
from api.store.call_record import CallRecord
from bench.call_path import (
    API_SECRET,
    CpuMeter,
    Stack,
    call_body,
    cpu_seconds,
    offered_load,
    percentile,
    setup_tenant,
)


async def ready_then_dial(stack: Stack, tenant: dict[str, str], rate: int, seconds: float) -> dict:
    """Open loop at `rate` calls/s; a fake agent reports ready the moment a room exists."""
    signing_key = Settings(LIVEKIT_API_SECRET=API_SECRET).event_signing_key
    headers = {k: v for k, v in tenant.items() if k != "agent"}
    headers["content-type"] = "application/json"
    body = call_body(tenant)
    ready_sent: dict[str, float] = {}  # room -> when the readiness POST left
    accepted_at: dict[str, float] = {}
    stop = asyncio.Event()
    cpu = CpuMeter(stack)

    async with aiohttp.ClientSession(
        base_url=stack.api_url, connector=aiohttp.TCPConnector(limit=256)
    ) as http:

        async def report(room: str, call_id: str) -> None:
            ready_sent[room] = time.time()
            token = event_token(call_id, signing_key)
            async with http.post(
                f"/v1/internal/calls/{call_id}/events",
                json={"type": "agent.ready", "data": {}},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                assert response.status == 200, await response.text()

        async def fake_agent() -> None:
            position, seen = 0, 0
            pending: list[asyncio.Task[None]] = []
            while not stop.is_set() or seen < len(accepted_at):
                # only what is new since the last look crosses from the server's process
                position, rooms = await stack.lk.requests_from_async(
                    position, "RoomService", "CreateRoom"
                )
                for request in rooms:
                    call_id = json.loads(request.request.metadata)["call_id"]
                    pending.append(asyncio.create_task(report(request.request.name, call_id)))
                seen += len(rooms)
                await asyncio.sleep(0.001)
            await asyncio.gather(*pending)

        async def place() -> None:
            async with http.post("/v1/api/call", data=body, headers=headers) as response:
                answer = await response.json()
                assert response.status == 200, answer
                accepted_at[answer["roomName"]] = time.time()

        agent = asyncio.create_task(fake_agent())
        started, total, placing = time.perf_counter(), int(rate * seconds), []
        for index in range(total):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            placing.append(asyncio.create_task(place()))
        await asyncio.gather(*placing)
        deadline = time.time() + 60
        while len(stack.lk.requests("SIP", "CreateSIPParticipant")) < total:
            if time.time() > deadline:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await agent
    worker_cpu, server_cpu = cpu.percent()

    dials = {
        r.request.room_name: r.received_at for r in stack.lk.requests("SIP", "CreateSIPParticipant")
    }
    # When the API applied the readiness (the call's `agent_ready_at`, set by the script).
    rooms = list(dials)
    pipe = stack.redis.pipeline(transaction=False)
    for room in rooms:
        pipe.get(f"{stack.prefix}:room:{room}")
    call_ids = pipe.execute()
    for call_id in call_ids:
        pipe.hmget(f"{stack.prefix}:call:{call_id.decode()}", "agent_ready_at", "ts_dialing")
    marks = dict(zip(rooms, pipe.execute(), strict=True))
    applied_at = {room: int(ready) / 1000 for room, (ready, _) in marks.items()}
    after_arrival = [(dials[room] - applied_at[room]) * 1000 for room in rooms]
    # The worker's `dialing` mark is taken right before it sends the dial (its own clock,
    # no test server in the way): readiness applied -> dial leaving.
    to_mark = [int(dialing) - int(ready) for ready, dialing in marks.values()]
    after_ready = [(dials[room] - ready_sent[room]) * 1000 for room in dials if room in ready_sent]
    after_accept = [
        (dials[room] - accepted_at[room]) * 1000 for room in dials if room in accepted_at
    ]
    return {
        "accepted": len(accepted_at),
        "dialed": len(dials),
        "dial_requests": stack.lk.count("SIP", "CreateSIPParticipant"),
        "mark_p50": percentile(to_mark, 0.5),
        "mark_p99": percentile(to_mark, 0.99),
        "arrival_p50": percentile(after_arrival, 0.5),
        "arrival_p99": percentile(after_arrival, 0.99),
        "ready_p50": percentile(after_ready, 0.5),
        "ready_p99": percentile(after_ready, 0.99),
        "accept_p50": percentile(after_accept, 0.5),
        "accept_p99": percentile(after_accept, 0.99),
        "worker_cpu": worker_cpu,
        "server_cpu": server_cpu,
    }


AGENT = AgentConfig(id="a" * 24, name="bench", instructions="Hi", worker_name="outdial-agent")


def in_flight_record(call_id: str, now_ms: int) -> dict[str, str]:
    """An answered call's hash, built from the record's own description (`CallRecord`), so
    the reconciler reads it as any call: a hand-written hash missing a field the record
    requires makes the call unreadable, and the check is skipped."""
    return CallRecord(
        id=call_id, workspace_id="ws", agent_id=AGENT.id, to="+14155552671",
        sip_trunk_id="ST_bench", room_name=f"room-{call_id}", status="in_progress",
        job_id=f"job-{call_id}", max_duration_seconds=1800, ring_timeout_seconds=30,
        created_at=now_ms, updated_at=now_ms, seq=0, agent=AGENT,
        transitions={"in_progress": now_ms}, agent_ready_at=now_ms, dial_mode="agent_ready",
        dispatch_timeout_s=120, agent_ready_timeout_s=15, answer_grace_s=10,
        deadline_margin_s=20,
    ).to_hash()  # fmt: skip


def _seed_in_flight(stack: Stack, count: int, due_in_ms: int) -> list[str]:
    """`count` answered calls with their deadlines `due_in_ms` from now, as the store
    writes them (the whole record + the deadlines zset)."""
    now = int(time.time() * 1000)
    ids = [f"bench{index:07d}" for index in range(count)]
    pipe = stack.redis.pipeline(transaction=False)
    for call_id in ids:
        pipe.hset(f"{stack.prefix}:call:{call_id}", mapping=in_flight_record(call_id, now))
        pipe.zadd(f"{stack.prefix}:deadlines", {call_id: now + due_in_ms})
    pipe.execute()
    return ids


def _worker_cpu(stack: Stack, seconds: float) -> float:
    """Percent of a core the running worker (master + children) uses over `seconds`."""
    before = cpu_seconds(stack.worker.pid)
    time.sleep(seconds)
    return (cpu_seconds(stack.worker.pid) - before) / seconds * 100


def reconciler_cost(stack: Stack, calls: int = 10_000, checks: int = 1_000) -> dict[str, Any]:
    deadlines = f"{stack.prefix}:deadlines"
    stack.start_worker()
    time.sleep(8)  # boot
    ids = _seed_in_flight(stack, calls, due_in_ms=3_600_000)
    far_future = {call_id: int(time.time() * 1000) + 3_600_000 for call_id in ids}
    runs: list[tuple[float, float]] = []
    for _ in range(2):  # interleaved, so machine noise hits both sides alike
        stack.redis.zrem(deadlines, *ids)
        idle = _worker_cpu(stack, 10)
        stack.redis.zadd(deadlines, far_future)
        runs.append((idle, _worker_cpu(stack, 10)))

    zset_bytes = stack.redis.memory_usage(deadlines, samples=0) or 0
    sample = f"{stack.prefix}:call:{ids[0]}"
    with_budgets = stack.redis.memory_usage(sample, samples=0) or 0
    for field in ("dispatch_timeout_s", "agent_ready_timeout_s", "answer_grace_s",
                  "deadline_margin_s", "dial_mode"):  # fmt: skip
        stack.redis.hdel(sample, field)
    without_budgets = stack.redis.memory_usage(sample, samples=0) or 0

    # 1,000 due at once: each is looked at in LiveKit (its leg and agent are there), found
    # live, and its deadline pushed to max duration + margin.
    for call_id in ids[:checks]:
        room = f"room-{call_id}"
        stack.lk.add_sip_participant(
            room, f"sip-{call_id}", attributes={"sip.callStatus": "active"}
        )
        stack.lk.add_agent_participant(room, f"agent-{call_id}")
    looks_before = stack.lk.count("RoomService", "ListParticipants")
    cpu_before, started = cpu_seconds(stack.worker.pid), time.monotonic()
    stack.redis.zadd(deadlines, {call_id: 1 for call_id in ids[:checks]})
    # done when every one of them was looked at and pushed to its max-duration deadline
    pushed_from = int(time.time() * 1000) + 1_000_000
    while time.monotonic() - started < 120:
        looked = stack.lk.count("RoomService", "ListParticipants") - looks_before
        if looked >= checks and stack.redis.zcount(deadlines, pushed_from, "+inf") >= calls:
            break
        time.sleep(0.05)
    took = time.monotonic() - started
    cpu_used = cpu_seconds(stack.worker.pid) - cpu_before
    stack.stop_worker()
    return {
        "runs": runs,
        "zset_bytes_per_call": zset_bytes / calls,
        "budget_bytes_per_call": with_budgets - without_budgets,
        "checks": checks,
        "looks": stack.lk.count("RoomService", "ListParticipants") - looks_before,
        "check_seconds": took,
        "check_cpu_ms": cpu_used / checks * 1000,
    }


async def main() -> None:
    report = ["## Call truth (bench/call_truth.py)", ""]
    # The old order first, on its own stack (the API's dial mode is fixed at its start):
    # accept -> dial at 50 calls/s with the dial right after CreateRoom.
    immediate = Stack(dial_mode="immediate")
    try:
        tenant = await setup_tenant(immediate)
        immediate.start_worker()
        time.sleep(6)
        before = await offered_load(immediate, tenant, 50, 20)
        immediate.stop_worker()
    finally:
        immediate.close()
    stack = Stack(dial_mode="agent_ready")
    try:
        tenant = await setup_tenant(stack)
        stack.start_worker()
        time.sleep(6)
        row = await ready_then_dial(stack, tenant, rate=50, seconds=20)
        stack.stop_worker()
        report += [
            "| 50 calls/s, readiness at once | accepted | dialed | dial requests | "
            "readiness applied -> dialing mark p50 / p99 ms | applied -> dial received | "
            "readiness POST sent -> dial received | accept -> dial received | worker CPU | "
            "server CPU |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| agent_ready (default) | {row['accepted']} | {row['dialed']} | "
            f"{row['dial_requests']} | {row['mark_p50']:.1f} / {row['mark_p99']:.1f} | "
            f"{row['arrival_p50']:.1f} / {row['arrival_p99']:.1f} | "
            f"{row['ready_p50']:.1f} / {row['ready_p99']:.1f} | "
            f"{row['accept_p50']:.1f} / {row['accept_p99']:.1f} | {row['worker_cpu']:.0f}% | "
            f"{row['server_cpu']:.0f}% |",
            f"| immediate (the old order, same run) | {before['accepted']} | {before['dialed']} | "
            f"{before['dial_requests']} | - | - | - | {before['p50']:.1f} / {before['p99']:.1f} | "
            f"{before['worker_cpu']:.0f}% | {before['server_cpu']:.0f}% |",
            "",
        ]
        # Phase 1's calls keep deadlines (they ring on at the test server): not this phase's.
        stack.redis.delete(f"{stack.prefix}:deadlines")
        stack.lk.reset()
        cost = reconciler_cost(stack)
        pairs = ", ".join(f"{a:.1f}% / {b:.1f}%" for a, b in cost["runs"])
        report += [
            "| reconciler, one worker process | value |",
            "|---|---|",
            "| worker CPU, no call in flight / 10,000 in flight (interleaved 10 s runs) | "
            f"{pairs} |",
            f"| Redis memory per call: deadline entry | {cost['zset_bytes_per_call']:.0f} B |",
            "| Redis memory per call: budget fields on the record | "
            f"{cost['budget_bytes_per_call']} B |",
            f"| {cost['checks']} due calls checked against LiveKit | {cost['looks']} looks in "
            f"{cost['check_seconds']:.1f} s, {cost['check_cpu_ms']:.2f} ms worker CPU each |",
        ]
    finally:
        print("\n".join(report))
        stack.close()


if __name__ == "__main__":
    asyncio.run(main())
