"""1,000 calls as one `POST /v1/api/calls/batch` against 1,000 single `POST /v1/api/call`,
side by side in the same run, round after round.

The real API under uvicorn (1 process, `bench.lean_counted_app`: the app with its lean Redis
client counting), its own Redis prefix, no worker (only the accepts are measured). Each
round places 1,000 calls three ways: 1,000 single POSTs (32 in flight, as `wrk` loads the
accept in bench/accept_ab.py), one batch, and one batch with an Idempotency-Key. For each:
the wall time until every call is accepted, the API's and Redis's CPU time (from /proc), and
the Redis round trips, socket writes and commands of the API's lean client (the only client
the accept paths use).

    PYTHONPATH=. python -m bench.batch_accept [--rounds 3 --calls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp

from bench.accept_ab import _cpu_seconds, _load
from bench.call_path import Stack, setup_tenant
from tests.support import ROOT

IN_FLIGHT = 32
MODES = ("singles", "batch", "batch + key")


def _items(tenant: dict[str, str], calls: int) -> list[dict[str, Any]]:
    return [
        {
            "to": f"+1415555{n % 10_000:04d}",
            "call_agent_id": tenant["agent"],
            "dynamic_variables": {"firstName": "Ada"},
            "metadata": {"crm_id": str(n)},
        }
        for n in range(calls)
    ]


async def _singles(http: aiohttp.ClientSession, headers: dict[str, str], items: list[Any]) -> int:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def place(item: dict[str, Any]) -> bool:
        async with gate, http.post("/v1/api/call", json=item, headers=headers) as response:
            await response.read()
            return response.status == 200

    return sum(await asyncio.gather(*(place(item) for item in items)))


async def _batch(
    http: aiohttp.ClientSession, headers: dict[str, str], items: list[Any], key: str | None
) -> int:
    sent = headers | ({"Idempotency-Key": key} if key else {})
    async with http.post("/v1/api/calls/batch", json=items, headers=sent) as response:
        assert response.status == 200, await response.text()
        return int((await response.json())["accepted"])


async def _counts(http: aiohttp.ClientSession) -> dict[str, int]:
    async with http.get("/bench/lean-counts") as response:
        return dict(await response.json())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()

    stack = Stack()
    stack.api.terminate()
    stack.api.wait(timeout=10)
    stack.api = stack._spawn(
        [sys.executable, "-m", "uvicorn", "bench.lean_counted_app:app",
         "--port", str(stack.api_port), "--log-level", "warning"]
    )  # fmt: skip
    rows: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    loads: list[str] = []
    try:
        tenant = await setup_tenant(stack)
        stack.lk.record_requests = False
        headers = {name: tenant[name] for name in ("x-workspace-id", "x-api-key")}
        redis_pid = int(stack.redis.info("server")["process_id"])
        items = _items(tenant, args.calls)
        timeout = aiohttp.ClientTimeout(total=120)
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        async with aiohttp.ClientSession(
            base_url=stack.api_url, timeout=timeout, connector=connector
        ) as http:
            await _singles(http, headers, items[:50])  # warm: connections, scripts loaded
            await _batch(http, headers, items[:50], None)
            for _ in range(args.rounds):
                loads.append(_load())
                for mode in MODES:
                    pids = (stack.api.pid, redis_pid)
                    cpu = [_cpu_seconds(pid) for pid in pids]
                    counted = await _counts(http)
                    started = time.perf_counter()
                    if mode == "singles":
                        accepted = await _singles(http, headers, items)
                    else:
                        key = uuid.uuid4().hex if mode == "batch + key" else None
                        accepted = await _batch(http, headers, items, key)
                    elapsed = time.perf_counter() - started
                    after = await _counts(http)
                    assert accepted == args.calls, (mode, accepted)
                    # (reading the counts sends nothing to Redis)
                    row = {name: after[name] - counted[name] for name in after}
                    row["seconds"] = elapsed
                    row["api_cpu"] = _cpu_seconds(pids[0]) - cpu[0]
                    row["redis_cpu"] = _cpu_seconds(pids[1]) - cpu[1]
                    rows[mode].append(row)
    finally:
        stack.close()
    _report(args, rows, loads)


def _report(
    args: argparse.Namespace, rows: dict[str, list[dict[str, float]]], loads: list[str]
) -> None:
    print(f"{args.calls} calls, {args.rounds} rounds; load (1 min) per round: {', '.join(loads)}")
    print()
    print(
        "| mode | wall s (median; each round) | calls/s | API CPU s | Redis CPU s "
        "| Redis round trips | socket writes | commands |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        mine = rows[mode]

        def median(field: str, mine: list[dict[str, float]] = mine) -> float:
            return statistics.median(row[field] for row in mine)

        rounds = ", ".join(f"{row['seconds']:.2f}" for row in mine)
        print(
            f"| {mode} | {median('seconds'):.2f} ({rounds}) | "
            f"{args.calls / median('seconds'):.0f} | {median('api_cpu'):.2f} | "
            f"{median('redis_cpu'):.2f} | {median('roundTrips'):.0f} | "
            f"{median('writes'):.0f} | {median('commands'):.0f} |"
        )
    singles = statistics.median(row["seconds"] for row in rows["singles"])
    batch = statistics.median(row["seconds"] for row in rows["batch"])
    print()
    print(f"one batch: {singles / batch:.1f}x faster than {args.calls} single POSTs (median)")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(json.dumps({"tree": str(ROOT), "commit": commit}))


if __name__ == "__main__":
    asyncio.run(main())
