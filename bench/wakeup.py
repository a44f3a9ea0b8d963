"""Idle worker CPU and time-to-dial, Dramatiq's 10 ms poll against wake-ups, in one run.

Same stack as `bench/call_path.py` (API, one `outdial worker` process with one Dramatiq
child, the LiveKit test server, Redis; all on the same cores). Each way's idle CPU first
(master + child, 20 s after a 12 s boot, no call placed yet: later, live calls' deadlines
keep a worker busy), then each way's time-to-dial (accepted -> `CreateSIPParticipant`
received) for 20 s of 50 calls/s, open loop.

    python -m bench.wakeup            # prints a markdown table
"""

from __future__ import annotations

import asyncio
import time

from bench.call_path import Stack, cpu_seconds, offered_load, setup_tenant

WAYS = (
    ("poll every 10 ms, no wake-ups (previous default)", {
        "OUTDIAL_WORKER_WAKEUPS": "false", "OUTDIAL_WORKER_TIMEOUT_MS": "10",
    }),
    ("wake-ups, fallback poll 1000 ms (shipped)", {
        "OUTDIAL_WORKER_WAKEUPS": "true", "OUTDIAL_WORKER_TIMEOUT_MS": "1000",
    }),
)  # fmt: skip


def idle_cpu(stack: Stack, seconds: float = 20) -> float:
    assert stack.worker is not None
    time.sleep(12)  # boot (imports, first fetches), slower when the cores are shared
    before = cpu_seconds(stack.worker.pid)
    time.sleep(seconds)
    return (cpu_seconds(stack.worker.pid) - before) / seconds * 100


async def main() -> None:
    stack = Stack()
    report = [
        "| worker | idle CPU (master + child) | time-to-dial p50 ms | p99 ms | dialed / accepted |",
        "|---|---|---|---|---|",
    ]
    try:
        tenant = await setup_tenant(stack)
        # Idle first, both ways: once calls were placed, their deadlines keep the worker busy.
        idle: dict[str, float] = {}
        for label, env in WAYS:
            stack.start_worker(env)
            idle[label] = idle_cpu(stack)
            stack.stop_worker()
        for label, env in WAYS:
            stack.start_worker(env)
            time.sleep(6)  # boot
            row = await offered_load(stack, tenant, 50, 20)
            stack.stop_worker()
            cpu = idle[label]
            report.append(
                f"| {label} | {cpu:.1f}% of a core | {row['p50']:.1f} | {row['p99']:.1f} | "
                f"{row['dialed']} / {row['accepted']} |"
            )
    finally:
        print("\n".join(report))
        stack.close()


if __name__ == "__main__":
    asyncio.run(main())
