"""Backlog drain (issue 24): `--calls` queued calls, then a worker; dispatches per second.

The stack of `bench/call_path.py` (API under uvicorn, `outdial worker`, the LiveKit test
server in its own process, Redis; all on the same 2 cores) in the default dial order,
`agent_ready`: a fake agent in this process watches CreateRoom arrive at the test server
and posts `agent.ready` with the call's token, as a real agent does once in the room.
Pacing is on, with limits that do not bind: 1,000 dials/s per trunk (the setting's
maximum) and 100,000 concurrent calls per trunk and per workspace. The calls get wide
budgets (agent-ready 300 s, dispatch 900 s, answer grace 300 s, margin 600 s), so no
deadline falls inside a run and the reconciler stays out of the measurement.

For each `--processes` count, on a fresh stack:
1. the floor (`bench/dial_floor.py`, a subprocess) against this stack's test server;
2. `--calls` calls accepted through `POST /v1/api/call` with no worker running;
3. `outdial worker --processes P` started; the drain runs from the first CreateRoom
   received to the last CreateSIPParticipant received (receipt times at the test server).
Reported per run: dispatches (CreateSIPParticipant receipts) per second from the first to
the last, the per-second counts (median, lowest full second, first and last fifth: a
fall-off shows as a last fifth below the first), CreateRoom per second, the CPU of the
worker (master + processes), the test server, the API and this process (the fake agent),
the floor of the same run, and the 1-minute load before and after. Then, on an
`immediate` stack as `bench/call_path.py` measures them: idle worker CPU and
time-to-dial at 50 calls/s.

    PYTHONPATH=. python -m bench.backlog_drain [--calls 20000] [--processes 1 2]
        [--dial-mode immediate] [--unpaced] [--no-checks] [--profile DIR]

`--dial-mode immediate` (one message per call, no readiness) and `--unpaced` (no limits)
split the costs; `--profile DIR` has each worker process write its CPU profile there
(`OUTDIAL_WORKER_PROFILE_DIR`, api/jobs/profiling.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp

from api.security import event_token
from api.settings import Settings
from bench.call_path import (
    API_SECRET,
    Stack,
    call_body,
    cpu_seconds,
    idle_cpu,
    offered_load,
    percentile,
    setup_tenant,
)
from bench.dial_floor import Floor

CONCURRENCY = 32  # posts in flight
PACED_WIDE_OPEN = {
    "OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND": "1000",
    "OUTDIAL_TRUNK_MAX_CONCURRENT_CALLS": "100000",
    "OUTDIAL_WORKSPACE_MAX_CONCURRENT_CALLS": "100000",
}
WIDE_BUDGETS = {
    "OUTDIAL_AGENT_READY_TIMEOUT_SECONDS": "300",
    "OUTDIAL_DISPATCH_TIMEOUT_SECONDS": "900",
    "OUTDIAL_AGENT_ANSWER_GRACE_SECONDS": "300",
    "OUTDIAL_DEADLINE_MARGIN_SECONDS": "600",
}


@dataclass(frozen=True, slots=True)
class Drain:
    processes: int
    calls: int
    dialed: int
    dialed_twice: int
    seconds: float  # first CreateRoom -> last CreateSIPParticipant
    per_second: list[int]  # CreateSIPParticipant receipts, second by second from the first
    rooms_per_second: float
    room_to_dial_ms: tuple[float, float]  # p50, p99: CreateRoom received -> its dial received
    worker_cpu: float  # % of one core over `seconds`
    server_cpu: float
    api_cpu: float
    bench_cpu: float
    floor: Floor
    load: tuple[float, float]

    @property
    def rate(self) -> float:
        return self.dialed / self.seconds

    @property
    def worker_ms_per_dial(self) -> float:
        """The worker's CPU per call it dialed (both of its steps, and its loops)."""
        return self.worker_cpu * 10 / self.rate


def floor_of(stack: Stack, seconds: float) -> Floor:
    """The floor against this stack's test server, from a process of its own."""
    stack.lk.record_requests = False  # the floor's own requests are not the drain's
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.dial_floor", "--url", stack.lk.url,
             "--server-pid", str(stack.lk.pid), "--seconds", str(seconds), "--json"],
            capture_output=True, text=True, check=True, env=stack.env,
        ).stdout  # fmt: skip
    finally:
        stack.lk.record_requests = True
    return Floor(**json.loads(out.splitlines()[-1]))


async def accept_calls(stack: Stack, tenant: dict[str, str], calls: int) -> int:
    """`calls` accepted through the API (no worker running): they are queued for dispatch."""
    headers = {k: v for k, v in tenant.items() if k != "agent"} | {
        "content-type": "application/json"
    }
    body = call_body(tenant)
    left = iter(range(calls))
    refused: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(base_url=stack.api_url, connector=connector) as http:

        async def poster() -> None:
            for _ in left:
                async with http.post("/v1/api/call", data=body, headers=headers) as response:
                    if response.status != 200:
                        refused[f"{response.status} {(await response.json()).get('code')}"] += 1

        await asyncio.gather(*(poster() for _ in range(CONCURRENCY)))
    assert not refused, f"calls refused: {dict(refused)}"
    return int(stack.redis.llen(f"{stack.prefix}-dramatiq:outdial.dial"))


async def fake_agent(stack: Stack, stop: asyncio.Event) -> int:
    """Post `agent.ready` for each call whose room reached the test server, until `stop`;
    how many were posted."""
    signing_key = Settings(LIVEKIT_API_SECRET=API_SECRET).event_signing_key
    posts: list[asyncio.Task[None]] = []
    position = 0
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(base_url=stack.api_url, connector=connector) as http:

        async def ready(call_id: str) -> None:
            async with http.post(
                f"/v1/internal/calls/{call_id}/events",
                json={"type": "agent.ready", "data": {}},
                headers={"Authorization": f"Bearer {event_token(call_id, signing_key)}"},
            ) as response:
                assert response.status == 200, await response.text()

        while not stop.is_set():
            position, rooms = await stack.lk.requests_from_async(
                position, "RoomService", "CreateRoom"
            )
            for room in rooms:
                if room.request is not None and room.status == 200:
                    call_id = json.loads(room.request.metadata)["call_id"]
                    posts.append(asyncio.create_task(ready(call_id)))
            # Each look is an HTTP request the test server answers with the records: every
            # 20 ms keeps the bench's own share of the two cores small (a room waits ~10 ms
            # more for its readiness, which a drain's rate does not feel).
            await asyncio.sleep(0.02)
        await asyncio.gather(*posts)
    return len(posts)


async def drain(
    stack: Stack, calls: int, processes: int, floor: Floor, worker_env: dict[str, str]
) -> Drain:
    load_before = os.getloadavg()[0]
    stop = asyncio.Event()
    # `immediate` dials right after CreateRoom: no agent to wait for
    agent = asyncio.create_task(
        fake_agent(stack, stop) if stack.env["OUTDIAL_DIAL_MODE"] != "immediate" else stop.wait()
    )
    # the floor's requests are counted (not recorded) by the same server
    rooms_before = await stack.lk.count_async("RoomService", "CreateRoom")
    dials_before = await stack.lk.count_async("SIP", "CreateSIPParticipant")
    stack.start_worker(worker_env, processes=processes)
    assert stack.worker is not None
    while await stack.lk.count_async("RoomService", "CreateRoom") == rooms_before:
        await asyncio.sleep(0.01)
    pids = (stack.worker.pid, stack.lk.pid, stack.api.pid)
    worker0, server0, api0 = (cpu_seconds(pid) for pid in pids)
    bench0, started = time.process_time(), time.monotonic()
    give_up = started + calls / 20 + 120
    while await stack.lk.count_async("SIP", "CreateSIPParticipant") - dials_before < calls:
        if time.monotonic() > give_up:
            break
        await asyncio.sleep(0.05)
    spent = time.monotonic() - started
    worker, server, api = (cpu_seconds(pid) for pid in pids)
    bench = time.process_time() - bench0
    stop.set()
    await agent
    stack.stop_worker()

    room_at = {
        r.request.name: r.received_at
        for r in stack.lk.requests("RoomService", "CreateRoom")
        if r.request is not None
    }
    rooms = list(room_at.values())
    dials = stack.lk.requests("SIP", "CreateSIPParticipant")
    lags = [(d.received_at - room_at[d.request.room_name]) * 1000 for d in dials if d.request]
    times = sorted(d.received_at for d in dials)
    first, last = times[0], times[-1]
    per_second = [0] * (int(last - first) + 1)
    for at in times:
        per_second[int(at - first)] += 1
    named = Counter(d.request.room_name for d in dials if d.request is not None)
    return Drain(
        processes=processes,
        calls=calls,
        dialed=len(named),
        dialed_twice=sum(1 for n in named.values() if n > 1),
        seconds=last - min(rooms),
        per_second=per_second,
        rooms_per_second=len(rooms) / (max(rooms) - min(rooms)),
        room_to_dial_ms=(percentile(lags, 0.5), percentile(lags, 0.99)),
        worker_cpu=(worker - worker0) / spent * 100,
        server_cpu=(server - server0) / spent * 100,
        api_cpu=(api - api0) / spent * 100,
        bench_cpu=bench / spent * 100,
        floor=floor,
        load=(load_before, os.getloadavg()[0]),
    )


def fifth_rates(per_second: list[int]) -> tuple[float, float]:
    """Mean dispatches/s of the first and the last fifth of the full seconds."""
    full = per_second[:-1] or per_second
    size = max(1, len(full) // 5)
    return statistics.fmean(full[:size]), statistics.fmean(full[-size:])


def report(drains: list[Drain]) -> list[str]:
    lines = [
        "| worker processes | calls dialed (twice) | first room -> last dial | dispatches/s | "
        "per second: median / lowest full s | first fifth / last fifth | CreateRoom/s | "
        "room -> dial p50 / p99 s | "
        "floor pairs/s (same run) | drain / floor | worker CPU (ms per dial) | server CPU | "
        "API CPU | "
        "fake agent CPU | floor: client / server CPU | load before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in drains:
        full = d.per_second[:-1] or d.per_second
        head, tail = fifth_rates(d.per_second)
        lines.append(
            f"| {d.processes} | {d.dialed} of {d.calls} ({d.dialed_twice}) | {d.seconds:.1f} s | "
            f"**{d.rate:.0f}** | {statistics.median(full):.0f} / {min(full)} | "
            f"{head:.0f} / {tail:.0f} | {d.rooms_per_second:.0f} | "
            f"{d.room_to_dial_ms[0] / 1000:.1f} / {d.room_to_dial_ms[1] / 1000:.1f} | "
            f"{d.floor.rate:.0f} | "
            f"{d.rate / d.floor.rate * 100:.0f}% | "
            f"{d.worker_cpu:.0f}% ({d.worker_ms_per_dial:.1f}) | "
            f"{d.server_cpu:.0f}% | "
            f"{d.api_cpu:.0f}% | {d.bench_cpu:.0f}% | "
            f"{d.floor.client_cpu:.0f}% / {d.floor.server_cpu:.0f}% | "
            f"{d.load[0]:.2f} / {d.load[1]:.2f} |"
        )
    if len(drains) >= 2:
        lines += ["", f"{drains[1].processes} processes / {drains[0].processes}: "
                  f"{drains[1].rate / drains[0].rate:.2f}x"]  # fmt: skip
    for d in drains:
        lines += ["", f"Dispatches per second, {d.processes} process(es): "
                  + " ".join(map(str, d.per_second))]  # fmt: skip
    return lines


async def checks() -> list[str]:
    """Idle CPU and time-to-dial at 50 calls/s, as bench/call_path.py measures them."""
    stack = Stack(dial_mode="immediate")
    try:
        tenant = await setup_tenant(stack)
        # Idle first: the offered calls' deadlines would come due while it is measured.
        idle = idle_cpu(stack, Settings.model_fields["worker_timeout_ms"].default)
        stack.start_worker()
        time.sleep(6)  # boot
        row = await offered_load(stack, tenant, 50, 20)
        stack.stop_worker()
    finally:
        stack.close()
    return [
        "| 50 calls/s for 20 s (`immediate`) | accepted | dialed | time-to-dial p50 / p99 ms | "
        "worker CPU | server CPU | idle worker CPU (default poll) |",
        "|---|---|---|---|---|---|---|",
        f"| 1 process | {row['accepted']} | {row['dialed']} | {row['p50']:.1f} / {row['p99']:.1f} "
        f"| {row['worker_cpu']:.0f}% | {row['server_cpu']:.0f}% | {idle:.1f}% of a core |",
    ]


async def run(
    calls: int,
    processes: list[int],
    dial_mode: str,
    paced: bool,
    floor_seconds: float,
    with_checks: bool,
    profile: str,
) -> None:
    drains: list[Drain] = []
    pacing = "pacing on" if paced else "no pacing limits"
    lines = [f"### Backlog drain: {calls} queued calls, dial mode `{dial_mode}`, {pacing}", ""]
    try:
        for count in processes:
            limits = PACED_WIDE_OPEN if paced else {}
            stack = Stack(dial_mode=dial_mode, env=limits | WIDE_BUDGETS)
            try:
                tenant = await setup_tenant(stack)
                floor = floor_of(stack, floor_seconds)
                queued = await accept_calls(stack, tenant, calls)
                assert queued == calls, f"{queued} messages queued for {calls} calls"
                profiled = {"OUTDIAL_WORKER_PROFILE_DIR": f"{profile}/{count}"} if profile else {}
                drains.append(await drain(stack, calls, count, floor, profiled))
            finally:
                stack.close()
        lines += report(drains)
        if with_checks:
            lines += ["", *await checks()]
    finally:
        print("\n".join(lines if drains else [*lines, "(no run finished)"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--floor-seconds", type=float, default=10.0)
    parser.add_argument(
        "--dial-mode", default="agent_ready", choices=["agent_ready", "immediate"],
        help="immediate: one message per call and no readiness (to split the costs)",
    )  # fmt: skip
    parser.add_argument(
        "--unpaced", action="store_true", help="no pacing limits (the admission's cost apart)"
    )
    parser.add_argument("--no-checks", action="store_true", help="skip idle CPU, time-to-dial")
    parser.add_argument(
        "--profile", default="", help="folder: each worker process's CPU profile (cProfile)"
    )
    args = parser.parse_args()
    checks_too = not args.no_checks
    options = (args.dial_mode, not args.unpaced, args.floor_seconds, checks_too, args.profile)
    asyncio.run(run(args.calls, args.processes, *options))


if __name__ == "__main__":
    main()
