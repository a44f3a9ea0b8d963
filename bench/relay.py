"""Relay benchmark: webhook in -> callback received latency, and sustained events/s
through one worker process, with all receivers healthy and with 10% of them failing.

    PYTHONPATH=. python bench/relay.py [--calls 200] [--events 6000] [--threads 16]

Needs Redis (REDIS_URL, default 127.0.0.1:6379). Runs the real API (uvicorn subprocess),
one real `dramatiq api.worker` process and an aiohttp receiver on loopback (this process).
Calls are written straight into Redis (no dialing), so only the relay path is measured.
Everything lives under a fresh key prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import jwt
import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.settings import Settings  # noqa: E402
from api.store.base import Store, open_store  # noqa: E402
from api.store.events import EventSpec, apply_event  # noqa: E402
from tests.support import WorkerProcess, free_port, settings_env  # noqa: E402

API_KEY, API_SECRET = "benchkey", "bench-secret-that-is-long-enough-for-hs256"
WORKSPACE, WEBHOOK_SECRET = "ws_bench", "whsec_bench"


@dataclass
class Receiver:
    """Counts callbacks by event id; paths under /fail/ answer 503."""

    arrivals: dict[str, float] = field(default_factory=dict)
    attempts: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.attempts += 1
        if request.path.startswith("/fail/"):
            return web.Response(status=503)
        self.arrivals.setdefault(request.headers["X-Outdial-Event-Id"], time.perf_counter())
        return web.Response(status=204)


def signed_webhook(event: dict) -> tuple[bytes, str]:
    body = json.dumps(event, separators=(",", ":")).encode()
    now = int(time.time())
    claims = {
        "iss": API_KEY,
        "nbf": now,
        "exp": now + 300,
        "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
    }
    return body, jwt.encode(claims, API_SECRET, algorithm="HS256")


async def seed_calls(store: Store, receiver_url: str, calls: int, failing: float) -> list[str]:
    await store.redis.hset(store.keys.workspace(WORKSPACE), "webhook_secret", WEBHOOK_SECRET)
    ids = []
    pipe = store.redis.pipeline(transaction=False)
    for index in range(calls):
        call_id = f"bench{uuid.uuid4().hex[:12]}"
        kind = "fail" if index < calls * failing else "ok"
        pipe.hset(
            store.keys.call(call_id),
            mapping={
                "id": call_id,
                "workspace_id": WORKSPACE,
                "room_name": f"room-{call_id}",
                "callback_url": f"{receiver_url}/{kind}/{call_id}",
                "metadata": '{"campaign":"bench"}',
                "status": "dialing",
                "seq": 0,
            },
        )
        pipe.set(store.keys.room(f"room-{call_id}"), call_id)
        if kind == "ok":
            ids.append(call_id)
    await pipe.execute()
    return ids  # the healthy calls; failing ones are driven the same way below


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def measure_latency(
    api_url: str, receiver: Receiver, rooms: list[str], count: int, rate: float
) -> dict[str, float]:
    """Webhooks paced at `rate`/s; latency = POST start -> callback arrival."""
    sent: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        for index in range(count):
            webhook_id = f"EV_{uuid.uuid4().hex}"
            room = rooms[index % len(rooms)]
            body, token = signed_webhook(
                {
                    "event": "agent_job_started",
                    "id": webhook_id,
                    "createdAt": str(int(time.time())),
                    "room": {"name": room},
                    "job": {"id": f"AJ_{index}", "agentName": "bench", "room": {"name": room}},
                }
            )
            sent[f"lk-{webhook_id}-agent.job_started"] = time.perf_counter()
            async with http.post(
                f"{api_url}/v1/livekit/webhook",
                data=body,
                headers={"Authorization": token, "Content-Type": "application/webhook+json"},
            ) as response:
                assert response.status == 200, await response.text()
            await asyncio.sleep(max(0.0, 1 / rate - 0.0005))
    deadline = time.monotonic() + 30
    while any(event_id not in receiver.arrivals for event_id in sent):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    latencies = [
        (receiver.arrivals[e] - t) * 1000 for e, t in sent.items() if e in receiver.arrivals
    ]
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "lost": len(sent) - len(latencies),
    }


async def _produce(settings: Settings, call_ids: list[str], per_call: int) -> float:
    store = open_store(settings)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for _ in range(per_call):
        for call_id in call_ids:
            queue.put_nowait(call_id)

    async def producer() -> None:
        while not queue.empty():
            call_id = queue.get_nowait()
            await apply_event(store, call_id, EventSpec("call.transcript", {"text": "hello"}))

    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(32)))
    elapsed = time.perf_counter() - started
    await store.aclose()
    return elapsed


def produce(settings: Settings, call_ids: list[str], per_call: int) -> float:
    """Runs in its own process, so producing does not slow the receiver down."""
    return asyncio.run(_produce(settings, call_ids, per_call))


async def measure_throughput(
    settings: Settings, receiver: Receiver, call_ids: list[str], healthy: int, events: int
) -> dict[str, float]:
    """Apply `events` events spread over the calls as fast as a separate process can; rate =
    events the healthy receivers got per second (failing receivers keep retrying meanwhile)."""
    before = len(receiver.arrivals)
    per_call = events // len(call_ids)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        producing = loop.run_in_executor(pool, produce, settings, call_ids, per_call)
        target = before + per_call * healthy
        deadline = time.monotonic() + 120
        while len(receiver.arrivals) < target and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        finished = time.perf_counter()
        produce_seconds = await producing
    delivered = len(receiver.arrivals) - before
    return {
        "events": delivered,
        "produce_per_s": per_call * len(call_ids) / produce_seconds,
        "per_s": delivered / (finished - started),
    }


async def wait_worker_ready(store: Store, receiver: Receiver, call_id: str) -> None:
    """One event through the whole relay: the worker has booted and connected."""
    probe = EventSpec("call.transcript", {"probe": True})
    await apply_event(store, call_id, probe)
    deadline = time.monotonic() + 120
    while probe.id not in receiver.arrivals:
        if time.monotonic() > deadline:
            raise RuntimeError("the worker delivered nothing within 120 s")
        await asyncio.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (the Dramatiq master and worker)."""
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def start_api(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = os.environ | settings_env(settings) | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port), "--no-access-log"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(1200):
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("API did not start")


async def run_round(args: argparse.Namespace, failing: float) -> dict[str, float]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        LIVEKIT_API_KEY=API_KEY,
        LIVEKIT_API_SECRET=API_SECRET,
        OUTDIAL_REDIS_PREFIX=prefix,
        OUTDIAL_CALLBACK_ALLOW_PRIVATE=True,
        OUTDIAL_LOG_JSON=False,
        OUTDIAL_LOG_LEVEL="ERROR",
        OUTDIAL_WORKER_THREADS=args.threads,
    )
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    receiver_port, api_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
    api = start_api(settings, api_port)
    worker = WorkerProcess(settings, threads=args.threads).start()
    store = open_store(settings)
    try:
        await wait_healthy(f"http://127.0.0.1:{api_port}")
        healthy = await seed_calls(store, f"http://127.0.0.1:{receiver_port}", args.calls, failing)
        await wait_worker_ready(store, receiver, healthy[0])
        latency = await measure_latency(
            f"http://127.0.0.1:{api_port}",
            receiver,
            [f"room-{c}" for c in healthy],
            args.webhooks,
            args.rate,
        )
        all_calls = [key.split(":")[-1] async for key in store.redis.scan_iter(f"{prefix}:call:*")]
        all_calls = [c for c in all_calls if c.startswith("bench")]
        assert worker.process is not None
        cpu_before = cpu_seconds(worker.process.pid)
        throughput = await measure_throughput(
            settings, receiver, all_calls, len(healthy), args.events
        )
        cpu_used = cpu_seconds(worker.process.pid) - cpu_before
        throughput["cpu_ms_per_event"] = cpu_used * 1000 / max(throughput["events"], 1)
        return latency | throughput | {"attempts": receiver.attempts}
    finally:
        worker.stop()
        api.terminate()
        api.wait(timeout=10)
        await runner.cleanup()
        await delete_prefix(store, prefix)
        await store.aclose()


async def delete_prefix(store: Store, prefix: str) -> None:
    batch = [key async for key in store.redis.scan_iter(match=f"{prefix}*", count=1000)]
    for start in range(0, len(batch), 500):
        await store.redis.delete(*batch[start : start + 500])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--webhooks", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="webhooks per second")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    rows = [("all receivers healthy", await run_round(args, 0.0))]
    rows.append(("10% of receivers failing (503)", await run_round(args, 0.1)))
    print(
        f"\nOne worker process, {args.threads} threads, {os.cpu_count()} CPUs shared with the "
        f"API, Redis and the receiver; {args.calls} calls.\n"
    )
    print(
        "| case | webhook->callback p50 | p99 | sustained events/s | producer events/s "
        "| worker CPU per event | events/s per worker core |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, row in rows:
        print(
            f"| {name} | {row['p50_ms']:.1f} ms | {row['p99_ms']:.1f} ms | "
            f"{row['per_s']:.0f} | {row['produce_per_s']:.0f} | "
            f"{row['cpu_ms_per_event']:.2f} ms | {1000 / row['cpu_ms_per_event']:.0f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
