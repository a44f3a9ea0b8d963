"""Dial lateness of scheduled calls, end to end (issue 11): 10,000 calls due over 60 s.

Same stack as `bench/call_path.py` (the API under uvicorn, `outdial worker`, the LiveKit
test server in its own process, Redis; all on the same cores), dial mode `immediate`: the
dial follows CreateRoom at once, so only the scheduler and the dispatch stand between a due
time and its dial (the agent-ready order adds the agent's own wait, `bench/call_truth.py`).
The worker runs without pacing limits (the shipped defaults, 0 = unlimited).

The calls are posted through `POST /v1/api/call`, each with its own `scheduled_at`, spread
evenly over the window. The window starts after the last post, since a call posted late is
dialed at once rather than on time: a probe of 200 posts (due a day later, never dialed)
gives the posting rate, the window starts 1.5 times the expected posting time plus 20 s
from now, and the run stops if the posting ends after the first due time.

Lateness of a call = the test server's receipt time of its CreateSIPParticipant - its due
time (the record's `scheduled_at`), both on this machine's clock. It splits into the
scheduler's part (`ts_queued` - due: the claim by a worker process's scheduled-calls thread)
and the dial's part (receipt - `ts_queued`: dispatch, CreateRoom, CreateSIPParticipant).
Also counted: dials before their due time (must be 0), calls never dialed or dialed twice,
and the CPU of the worker's processes and of the test server's process over the window.

Nobody answers the calls. In `immediate` mode the reconciler would look at each unanswered
call every answer grace (10 s), work the agent-ready order (a ready agent covers the call)
does not do; so the calls get a 300 s answer grace and a 600 s deadline margin, and no
deadline falls inside the run. Everything runs under a fresh Redis prefix, deleted at the
end with every process the bench started, also on a failure, Ctrl-C or SIGTERM.

    PYTHONPATH=. python -m bench.scheduled_dial [--calls 10000] [--window 60] [--processes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import aiohttp

from bench.call_path import Stack, call_body, cpu_seconds, percentile, setup_tenant

CONCURRENCY = 32  # posts in flight; more only queues inside the one API process
PROBE_CALLS = 200
LEAD_MARGIN_S = 20.0
# After the last dial, for a second dial of a call to show up: longer than the heartbeat
# timeout (10 s) plus the dead-worker sweep, so a message redelivered from a worker taken
# for dead would be dialed, and counted twice, inside the run.
SETTLE_S = 30.0
CALM_BUDGETS = {
    "OUTDIAL_AGENT_ANSWER_GRACE_SECONDS": "300",
    "OUTDIAL_DEADLINE_MARGIN_SECONDS": "600",
}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


async def post_calls(stack: Stack, tenant: dict[str, str], due_ms: list[int]) -> list[str]:
    """Post one call per due time, CONCURRENCY at once, in due order; their ids."""
    headers = {k: v for k, v in tenant.items() if k != "agent"} | {
        "content-type": "application/json"
    }
    base = json.loads(call_body(tenant))
    ids: list[str] = [""] * len(due_ms)
    refused: Counter[str] = Counter()
    pending = iter(range(len(due_ms)))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(base_url=stack.api_url, connector=connector) as http:

        async def poster() -> None:
            for index in pending:
                body = json.dumps(base | {"scheduled_at": iso(due_ms[index])})
                async with http.post("/v1/api/call", data=body, headers=headers) as response:
                    answer = await response.json()
                    if response.status == 200:
                        ids[index] = answer["callId"]
                    else:
                        refused[f"{response.status} {answer.get('code')}"] += 1

        await asyncio.gather(*(poster() for _ in range(CONCURRENCY)))
    assert not refused, f"calls refused: {dict(refused)}"
    return ids


def evenly(start_ms: int, calls: int, window_s: float) -> list[int]:
    return [start_ms + int(i * window_s * 1000 / calls) for i in range(calls)]


async def wait_for_worker(stack: Stack, processes: int, until: float) -> None:
    """Until each worker process has fetched once (its broker heartbeat), before `until`."""
    beats = f"{stack.prefix}-dramatiq:__heartbeats__"
    while stack.redis.zcard(beats) < processes:
        if time.time() > until:
            raise RuntimeError("the worker was not up before the first due time")
        await asyncio.sleep(0.2)


def row(label: str, values: list[float]) -> str:
    if not values:
        return f"| {label} | - | - | - | - | - |"
    cells = [percentile(values, q) for q in (0.5, 0.9, 0.99)] + [max(values)]
    mean = statistics.fmean(values)
    return f"| {label} | " + " | ".join(f"{v:.0f}" for v in cells) + f" | {mean:.1f} |"


async def run(calls: int, window_s: float, processes: int) -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    load_before = os.getloadavg()[0]
    stack = Stack(dial_mode="immediate", env=CALM_BUDGETS)
    try:
        tenant = await setup_tenant(stack)
        stack.start_worker(processes=processes)

        probe_at = time.time()
        day_later = int((probe_at + 86_400) * 1000)
        await post_calls(stack, tenant, evenly(day_later, PROBE_CALLS, 1))
        rate = PROBE_CALLS / (time.time() - probe_at)
        lead_s = calls / rate * 1.5 + LEAD_MARGIN_S
        due_ms = evenly(int((time.time() + lead_s) * 1000), calls, window_s)
        posting_at = time.time()
        call_ids = await post_calls(stack, tenant, due_ms)
        posted_at = time.time()
        first_due = due_ms[0] / 1000
        if posted_at > first_due:
            raise RuntimeError(f"posting ended {posted_at - first_due:.1f} s after the first due")
        await wait_for_worker(stack, processes, first_due)

        await asyncio.sleep(first_due - time.time())
        worker_cpu, server_cpu, cpu_at = (
            cpu_seconds(stack.worker.pid),
            cpu_seconds(stack.lk.pid),
            time.time(),
        )
        give_up = due_ms[-1] / 1000 + 60
        while stack.lk.count("SIP", "CreateSIPParticipant") < calls and time.time() < give_up:
            await asyncio.sleep(1)
        spent = time.time() - cpu_at
        worker_cpu = (cpu_seconds(stack.worker.pid) - worker_cpu) / spent * 100
        server_cpu = (cpu_seconds(stack.lk.pid) - server_cpu) / spent * 100
        await asyncio.sleep(SETTLE_S)
        load_after = os.getloadavg()[0]

        pipe = stack.redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.hmget(
                f"{stack.prefix}:call:{call_id}",
                "room_name", "scheduled_at", "ts_queued", "ts_dispatching", "ts_dialing",
            )  # fmt: skip
        records = {room.decode(): (int(due), *marks) for room, due, *marks in pipe.execute()}
        received: dict[str, list[float]] = {}
        for request in stack.lk.requests("SIP", "CreateSIPParticipant"):
            if request.request is not None and request.request.room_name in records:
                received.setdefault(request.request.room_name, []).append(request.received_at)
        late, by_due = [], []
        parts: dict[str, list[float]] = {
            k: [] for k in ("scheduler", "dial", "queue", "room", "sent")
        }
        for room, times in received.items():
            due, queued, dispatching, dialing = records[room]
            late.append(min(times) * 1000 - due)
            by_due.append((due, late[-1]))
            if queued and dispatching and dialing:
                parts["scheduler"].append(int(queued) - due)
                parts["dial"].append(min(times) * 1000 - int(queued))
                parts["queue"].append(int(dispatching) - int(queued))
                parts["room"].append(int(dialing) - int(dispatching))
                parts["sent"].append(min(times) * 1000 - int(dialing))
        early = sum(1 for value in late if value < 0)
        twice = sum(1 for times in received.values() if len(times) > 1)
        by_due.sort()
        fifths = [[v for _, v in by_due[i * len(by_due) // 5 : (i + 1) * len(by_due) // 5]]
                  for i in range(5)]  # fmt: skip
        last_dial = max(max(times) for times in received.values()) if received else 0.0

        print(
            f"### Scheduled dial lateness: {calls} calls over {window_s:.0f} s "
            f"({calls / window_s:.0f} calls/s), {processes} worker process(es)\n"
        )
        print("| ms | p50 | p90 | p99 | max | mean |")
        print("|---|---|---|---|---|---|")
        print(row("**lateness: dial received - due** (target p99 ≤ 250)", late))
        print(row("scheduler: `ts_queued` - due", parts["scheduler"]))
        print(row("dial: received - `ts_queued`", parts["dial"]))
        print(row("- in the dial queue: `ts_dispatching` - `ts_queued`", parts["queue"]))
        print(row("- room: `ts_dialing` - `ts_dispatching`", parts["room"]))
        print(row("- dial sent: received - `ts_dialing`", parts["sent"]))
        print("\n| measure | value |")
        print("|---|---|")
        print(
            f"| posted | {calls} in {posted_at - posting_at:.1f} s "
            f"({calls / (posted_at - posting_at):.0f}/s; probe {rate:.0f}/s), last post "
            f"{first_due - posted_at:.1f} s before the first due |"
        )
        print(f"| dialed / never dialed / dialed twice | {len(received)} / "
              f"{calls - len(received)} / {twice} |")  # fmt: skip
        print(f"| dialed before their due time | {early} (must be 0) |")
        print(
            "| lateness p99 by fifth of the window (a backlog grows left to right) | "
            + " / ".join(f"{percentile(f, 0.99):.0f}" for f in fifths if f)
            + " ms |"
        )
        print(f"| last dial after the last due time | {last_dial - due_ms[-1] / 1000:.2f} s |")
        print(
            f"| CPU over the window ({spent:.0f} s) | worker {worker_cpu:.0f}% of a core, "
            f"LiveKit test server (own process) {server_cpu:.0f}% |"
        )
        print(f"| load average (1 min) before / after | {load_before:.2f} / {load_after:.2f} |")
    finally:
        stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds the due times span")
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    args = parser.parse_args()
    try:
        asyncio.run(run(args.calls, args.window, args.processes))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM: closed already
        sys.exit("interrupted; the stack is stopped and its Redis keys deleted")


if __name__ == "__main__":
    main()
