"""Pacing benchmark (issue 11): a burst of calls to one trunk limited in rate and concurrency.

Same stack as `bench/call_path.py` (API, one `outdial worker` process, the LiveKit test
server in its own process, Redis; all on the same cores), dial mode `immediate` (the dial
follows the room at once, so the pacing alone spaces the dials; the agent-ready order adds
its own wait). The worker runs with OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND=20 and
OUTDIAL_TRUNK_MAX_CONCURRENT_CALLS=50 (the shipped rate guard). 1,000 calls are posted at
once; the bench answers and hangs up each call by signed webhooks `CALL_SECONDS` after its
dial reached the test server, and waits for every call to end.

Reported: the worst one-second window of dials (test server receipt times), the highest
number of calls between `dialing` and their end at once (the calls' own `ts_dialing` and
`ended_at`), the total time against the ideal (calls / rate), and what was lost (calls not
`completed`, dialed more than once, slots left held).

    PYTHONPATH=. python -m bench.pacing            # prints a markdown report
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from typing import Any

import aiohttp

from bench.call_path import CpuMeter, Stack, call_body, percentile, setup_tenant
from tests.calls import most_at_once, most_in_one_second

CALLS = 1000
RATE = 20
CONCURRENT = 50
# Shorter than CONCURRENT / RATE (2.5 s) by more than the time a call takes to end once
# hung up (the webhooks through the API, up to ~0.5 s on shared cores): the rate, not the
# concurrency, sets the pace, so the total can be compared with the ideal CALLS / RATE.
CALL_SECONDS = 1.5


async def end_each_call(stack: Stack, stop: asyncio.Event) -> None:
    """Answer and hang up each of `rooms` `CALL_SECONDS` after its dial reached the server."""
    seen: set[str] = set()
    endings: list[asyncio.Task[Any]] = []

    async def end(room: str) -> None:
        await asyncio.sleep(CALL_SECONDS)
        await stack.lk.play_scenario_async(room, "answered_completed")

    position = 0
    while not stop.is_set():
        position, dials = stack.lk.requests_from(position, "SIP", "CreateSIPParticipant")
        for request in dials:
            room = request.request.room_name if request.request is not None else ""
            if room not in seen and request.status == 200:
                seen.add(room)
                endings.append(asyncio.create_task(end(room)))
        await asyncio.sleep(0.05)
    await asyncio.gather(*endings)


async def post_burst(stack: Stack, tenant: dict[str, str], calls: int) -> tuple[list[str], float]:
    body = call_body(tenant)
    headers = {k: v for k, v in tenant.items() if k != "agent"} | {
        "content-type": "application/json"
    }
    connector = aiohttp.TCPConnector(limit=256)
    refused: Counter[int] = Counter()
    async with aiohttp.ClientSession(base_url=stack.api_url, connector=connector) as http:

        async def one() -> str | None:
            async with http.post("/v1/api/call", data=body, headers=headers) as response:
                answer = await response.json()
                if response.status != 200:
                    refused[response.status] += 1
                    return None
                return str(answer["callId"])

        started = time.time()
        answers = await asyncio.gather(*(one() for _ in range(calls)))
        posted_in = time.time() - started
    assert not refused, f"calls refused: {dict(refused)}"
    return [a for a in answers if a], posted_in


async def main(calls: int) -> None:
    stack = Stack(dial_mode="immediate")
    stack.lk.webhook_url = stack.api_url + "/v1/livekit/webhook"
    stop = asyncio.Event()
    try:
        tenant = await setup_tenant(stack)
        stack.start_worker(
            {
                "OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND": str(RATE),
                "OUTDIAL_TRUNK_MAX_CONCURRENT_CALLS": str(CONCURRENT),
            }
        )
        time.sleep(8)  # boot (imports, first fetches), slower when the cores are shared
        ender = asyncio.create_task(end_each_call(stack, stop))
        cpu = CpuMeter(stack)
        first_post = time.time()
        call_ids, posted_in = await post_burst(stack, tenant, calls)
        keys = [f"{stack.prefix}:call:{c}" for c in call_ids]

        def ended() -> int:
            pipe = stack.redis.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, "ended_at")
            return sum(1 for value in pipe.execute() if value)

        deadline = time.time() + calls / RATE * 3 + 60
        while ended() < len(keys) and time.time() < deadline:
            await asyncio.sleep(0.5)
        stop.set()
        await ender
        worker_cpu, server_cpu = cpu.percent()

        dials = [r for r in stack.lk.requests("SIP", "CreateSIPParticipant") if r.request]
        times = [d.received_at for d in dials]
        pipe = stack.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(
                key, "ts_dialing", "ended_at", "status", "sip_trunk_id", "room_name",
                "ts_dispatching", "dial_sent_at",
            )  # fmt: skip
        records = pipe.execute()
        statuses = Counter(r[2].decode() if r[2] else "missing" for r in records)
        intervals = [(int(r[0]), int(r[1])) for r in records if r[0] and r[1]]
        trunk = next(r[3].decode() for r in records if r[3])
        slots_left = stack.redis.zcard(f"{stack.prefix}:pacing:trunk:{trunk}:slots")
        rooms = Counter(d.request.room_name for d in dials)
        ideal = calls / RATE
        first_to_last_dial = max(times) - min(times)
        accept_to_last_dial = max(times) - first_post
        print(f"### Pacing (issue 11): {calls} calls, {RATE} calls/s, {CONCURRENT} concurrent\n")
        print("| measure | value | limit / target |")
        print("|---|---|---|")
        print(f"| calls posted (all at once) | {len(call_ids)} in {posted_in:.2f} s | - |")
        print(f"| worst one-second window of dials | {most_in_one_second(times)} | ≤ {RATE} |")
        sent = [int(r[6]) / 1000 for r in records if r[6]]
        print(
            f"| the same, by when each dial request left the worker (`dial_sent_at`) | "
            f"{most_in_one_second(sent)} | ≤ {RATE} |"
        )
        marks = sorted(start / 1000 for start, _ in intervals)
        gaps = [(b - a) * 1000 for a, b in itertools.pairwise(marks)]
        print(
            f"| the same, by the `dialing` marks (the script's clock) | "
            f"{most_in_one_second(marks)} | ≤ {RATE} |"
        )
        print(
            f"| gap between consecutive `dialing` marks: p50 / p90 / p99 / max | "
            f"{percentile(gaps, 0.5):.0f} / {percentile(gaps, 0.9):.0f} / "
            f"{percentile(gaps, 0.99):.0f} / {max(gaps):.0f} ms | ideal 50 ms |"
        )
        receipt = {d.request.room_name: d.received_at for d in dials}
        late = [
            (receipt[r[4].decode()] - int(r[0]) / 1000) * 1000
            for r in records
            if r[0] and r[4] and r[4].decode() in receipt
        ]
        sent_to_receipt = [
            (receipt[r[4].decode()] - int(r[6]) / 1000) * 1000
            for r in records
            if r[6] and r[4] and r[4].decode() in receipt
        ]
        print(
            f"| request left the worker -> receipt at the test server: p50 / p99 / max | "
            f"{percentile(sent_to_receipt, 0.5):.1f} / {percentile(sent_to_receipt, 0.99):.1f}"
            f" / {max(sent_to_receipt):.1f} ms | - |"
        )
        print(
            f"| `dialing` mark -> receipt at the test server: p50 / p99 / max | "
            f"{percentile(late, 0.5):.1f} / {percentile(late, 0.99):.1f} / {max(late):.1f} ms | "
            f"under the guard |"
        )
        starts = sorted(int(r[5]) for r in records if r[5])
        start_gaps = [b - a for a, b in itertools.pairwise(starts)]
        print(
            f"| gap between consecutive admissions (`dispatching`): p50 / p90 / p99 / max | "
            f"{percentile(start_gaps, 0.5):.0f} / {percentile(start_gaps, 0.9):.0f} / "
            f"{percentile(start_gaps, 0.99):.0f} / {max(start_gaps):.0f} ms | 51 ms |"
        )
        to_dial = [int(r[0]) - int(r[5]) for r in records if r[0] and r[5]]
        print(
            f"| admission -> `dialing` mark: p50 / p99 / max | {percentile(to_dial, 0.5):.0f} / "
            f"{percentile(to_dial, 0.99):.0f} / {max(to_dial):.0f} ms | - |"
        )
        print(
            f"| CPU from the burst to the last end: worker / LiveKit test server (own process) | "
            f"{worker_cpu:.0f}% / {server_cpu:.0f}% of a core | - |"
        )
        lifetimes = [(end - start) / 1000 for start, end in intervals]
        print(
            f"| `dialing` -> end per call: p50 / p99 | {percentile(lifetimes, 0.5):.2f} / "
            f"{percentile(lifetimes, 0.99):.2f} s | < {CONCURRENT / RATE:.1f} s |"
        )
        pipe = stack.redis.pipeline(transaction=False)
        for call_id in call_ids:
            pipe.lrange(f"{stack.prefix}:call:{call_id}:events", 0, -1)
        reasons: Counter[str] = Counter()
        for events in pipe.execute():
            for raw in events:
                event = json.loads(raw)
                if event["type"] == "call.waiting":
                    reasons[event["data"]["reason"]] += 1
        print(f"| `call.waiting` events by reason | {dict(reasons)} | - |")
        print(
            f"| highest concurrency (dialing -> end) | {most_at_once(intervals)} | ≤ {CONCURRENT} |"
        )
        print(
            f"| first dial -> last dial | {first_to_last_dial:.2f} s "
            f"({first_to_last_dial / ideal * 100 - 100:+.1f}% of the ideal {ideal:.0f} s) | ≤ +5% |"
        )
        print(
            f"| first post -> last dial | {accept_to_last_dial:.2f} s "
            f"({accept_to_last_dial / ideal * 100 - 100:+.1f}%) | ≤ +5% |"
        )
        print(
            f"| dialed | {len(rooms)} calls, {len(dials)} dial requests, "
            f"{sum(1 for n in rooms.values() if n > 1)} dialed twice | each once |"
        )
        print(f"| statuses at the end | {dict(statuses)} | all completed |")
        print(f"| trunk slots still held | {slots_left} | 0 |")
    finally:
        stop.set()
        stack.stop_worker()
        stack.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=CALLS)
    asyncio.run(main(parser.parse_args().calls))
