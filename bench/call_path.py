"""Call path benchmark: accept throughput, time-to-dial, crash recovery, idle worker CPU.

Runs the real stack on loopback: the API under uvicorn (1 process), one Dramatiq worker
process started by `outdial worker` (production tuning), the LiveKit protocol test server
in its own process (`tests.livekit_server.remote`), and Redis at REDIS_URL. Needs `wrk` for
the throughput phases.

    python -m bench.call_path            # prints a markdown report
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import redis

from tests.livekit_server.remote import LiveKitServerProcess
from tests.support import ROOT, free_port

API_KEY, API_SECRET, ADMIN = "benchkey", "bench-secret-long-enough-for-hs256-xx", "bench-admin"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Stack:
    """The benchmarked stack. `dial_mode` is the API's OUTDIAL_DIAL_MODE: the call path's
    phases dial right after CreateRoom (`immediate`), as they did before the agent wait, so
    their numbers stay comparable; `bench/call_truth.py` measures the agent-ready order.
    `env` adds settings for the API and the worker."""

    def __init__(self, dial_mode: str = "immediate", env: dict[str, str] | None = None) -> None:
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.lk = LiveKitServerProcess(API_KEY, API_SECRET).start()
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.env = os.environ | {
            "REDIS_URL": REDIS_URL,
            "LIVEKIT_URL": self.lk.url,
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
            "OUTDIAL_ADMIN_TOKEN": ADMIN,
            "OUTDIAL_PUBLIC_URL": self.api_url,
            "OUTDIAL_REDIS_PREFIX": self.prefix,
            "OUTDIAL_CALLBACK_ALLOW_PRIVATE": "true",
            "OUTDIAL_LOG_LEVEL": "WARNING",
            "OUTDIAL_WORKER_METRICS_PORT": "0",
            "OUTDIAL_DIAL_MODE": dial_mode,
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.api = self._spawn(
            [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(self.api_port),
             "--log-level", "warning"]
        )  # fmt: skip
        self.worker: subprocess.Popen[bytes] | None = None
        self.redis = redis.Redis.from_url(REDIS_URL)

    def _spawn(self, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            command, cwd=ROOT, env=env or self.env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def start_worker(self, extra: dict[str, str] | None = None, processes: int = 1) -> None:
        self.worker = self._spawn(
            [sys.executable, "-m", "api.cli", "worker", "--processes", str(processes)],
            env=self.env | (extra or {}),
        )

    def kill_worker(self) -> None:
        if self.worker and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()

    def stop_worker(self) -> None:
        if self.worker and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            self.worker.wait(timeout=30)

    def close(self) -> None:
        """Everything the stack started or wrote goes, even if one step fails."""
        try:
            self.kill_worker()
            self.api.terminate()
            try:
                self.api.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.api.pid, signal.SIGKILL)
                self.api.wait()
        finally:
            try:
                self.lk.stop()
            finally:
                keys = list(self.redis.scan_iter(match=f"{self.prefix}*", count=1000))
                for start in range(0, len(keys), 500):
                    self.redis.delete(*keys[start : start + 500])


async def setup_tenant(stack: Stack) -> dict[str, str]:
    async with aiohttp.ClientSession(base_url=stack.api_url) as http:
        for _ in range(100):
            try:
                async with http.get("/healthz"):
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        async with http.post(
            "/v1/admin/workspaces", json={"name": "bench"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        ) as response:  # fmt: skip
            ws = await response.json()
        headers = {"x-workspace-id": ws["workspaceId"], "x-api-key": ws["apiKey"]}
        async with http.post(
            "/v1/api/agents", json={"name": "b", "instructions": "Hi {{firstName}}"},
            headers=headers,
        ) as response:  # fmt: skip
            agent = await response.json()
        async with http.post(
            "/v1/api/numbers",
            json={"number": "+15105550100", "trunk": {"address": "sip.example.net"}},
            headers=headers,
        ) as response:
            assert response.status == 201, await response.text()
    return headers | {"agent": agent["id"]}


def call_body(tenant: dict[str, str]) -> str:
    return json.dumps(
        {
            "to": "+14155552671",
            "call_agent_id": tenant["agent"],
            "dynamic_variables": {"firstName": "Ada"},
            "metadata": {"crm_id": "42"},
        }
    )


def wrk(url: str, tenant: dict[str, str], seconds: int, connections: int = 32) -> dict[str, float]:
    script = Path(f"/tmp/outdial-bench-{uuid.uuid4().hex[:6]}.lua")
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(call_body(tenant))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["x-workspace-id"] = "{tenant["x-workspace-id"]}"\n'
        f'wrk.headers["x-api-key"] = "{tenant["x-api-key"]}"\n'
    )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    script.unlink()

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


async def offered_load(stack: Stack, tenant: dict[str, str], rate: int, seconds: float) -> dict:
    """Open loop: `rate` calls/s; returns time-to-dial stats and what was lost."""
    body = call_body(tenant)
    headers = {k: v for k, v in tenant.items() if k != "agent"} | {
        "content-type": "application/json"
    }
    call_ids: list[str] = []
    refused: Counter[str] = Counter()
    cpu = CpuMeter(stack)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(base_url=stack.api_url, connector=connector) as http:

        async def one() -> None:
            async with http.post("/v1/api/call", data=body, headers=headers) as response:
                answer = await response.json()
                if response.status == 200:
                    call_ids.append(answer["callId"])
                else:
                    refused[f"{response.status} {answer.get('code')}"] += 1

        tasks = []
        started = time.perf_counter()
        total = int(rate * seconds)
        for index in range(total):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)

    pipe = stack.redis.pipeline(transaction=False)
    for call_id in call_ids:
        pipe.hmget(f"{stack.prefix}:call:{call_id}", "room_name", "created_at")
    rooms = {room.decode(): int(created) / 1000 for room, created in pipe.execute()}

    def dials() -> list[tuple[str, float]]:
        return [
            (r.request.room_name, r.received_at)
            for r in stack.lk.requests("SIP", "CreateSIPParticipant")
            if r.request is not None and r.request.room_name in rooms
        ]

    deadline = time.time() + 180
    while len(dials()) < len(rooms) and time.time() < deadline:
        await asyncio.sleep(0.2)
    sent = dials()
    worker_cpu, server_cpu = cpu.percent()
    waits = [(received - rooms[room]) * 1000 for room, received in sent]
    statuses = stack.redis.pipeline(transaction=False)
    for call_id in call_ids:
        statuses.hget(f"{stack.prefix}:call:{call_id}", "status")
    outcomes = Counter(status.decode() for status in statuses.execute())
    return {
        "rate": rate,
        "accepted": len(call_ids),
        "refused": ", ".join(f"{n} x {code}" for code, n in refused.items()) or "0",
        "dialed": len({room for room, _ in sent}),
        "dial_requests": len(sent),
        "not_dialing": ", ".join(f"{n} {s}" for s, n in outcomes.items() if s != "dialing") or "0",
        "p50": percentile(waits, 0.5) if waits else float("nan"),
        "p99": percentile(waits, 0.99) if waits else float("nan"),
        "worker_cpu": worker_cpu,
        "server_cpu": server_cpu,
    }


async def crash_recovery(stack: Stack, tenant: dict[str, str], trials: int = 3) -> list[float]:
    """Seconds from SIGKILL of the worker to its in-flight call being dialed by a new one.

    A trial counts only if the worker died with this call's CreateRoom unanswered (held by
    an injected delay); a stale message taking the delay instead makes it run again.
    """
    results: list[float] = []
    headers = {k: v for k, v in tenant.items() if k != "agent"}
    async with aiohttp.ClientSession(base_url=stack.api_url) as http:
        for _ in range(trials * 3):
            if len(results) == trials:
                break
            stack.lk.clear_faults()
            stack.lk.inject("RoomService", "CreateRoom", delay_after=60)
            stack.start_worker()
            async with http.post(
                "/v1/api/call", data=call_body(tenant),
                headers=headers | {"content-type": "application/json"},
            ) as response:  # fmt: skip
                accepted = await response.json()
            call_id, room = accepted["callId"], accepted["roomName"]
            while not (ours := [
                r for r in stack.lk.requests("RoomService", "CreateRoom")
                if r.request is not None and r.request.name == room
            ]):  # fmt: skip
                await asyncio.sleep(0.05)
            stack.kill_worker()
            killed = time.monotonic()
            if ours[0].status is not None:  # answered already: the delay went elsewhere
                continue
            stack.start_worker()
            while stack.redis.hget(f"{stack.prefix}:call:{call_id}", "status") not in (
                b"dialing",
                b"failed",
            ):
                await asyncio.sleep(0.05)
            results.append(time.monotonic() - killed)
            stack.kill_worker()
    return results


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for child in [pid, *map(int, subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True
    ).stdout.split())]:  # fmt: skip
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class CpuMeter:
    """% of one core the stack's worker (master + children) and LiveKit test server used
    since this meter was made."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.started = time.monotonic()
        self.worker = cpu_seconds(stack.worker.pid) if stack.worker else 0.0
        self.server = cpu_seconds(stack.lk.pid)

    def percent(self) -> tuple[float, float]:
        spent = time.monotonic() - self.started
        worker = cpu_seconds(self.stack.worker.pid) - self.worker if self.stack.worker else 0.0
        server = cpu_seconds(self.stack.lk.pid) - self.server
        return worker / spent * 100, server / spent * 100


def idle_cpu(stack: Stack, worker_timeout_ms: int, seconds: float = 20) -> float:
    stack.start_worker({"dramatiq_worker_timeout": str(worker_timeout_ms)})
    time.sleep(8)  # boot
    before = cpu_seconds(stack.worker.pid)
    time.sleep(seconds)
    used = cpu_seconds(stack.worker.pid) - before
    stack.stop_worker()
    return used / seconds * 100


# The no-worker wrk run accepts ~100,000 calls in its 20 s; draining them all took 3 minutes
# on a quiet machine. The oldest BACKLOG_CAP are enough to measure the dispatch rate.
BACKLOG_CAP = 10_000


def trim_backlog(stack: Stack, keep: int) -> int:
    """Take all but the oldest `keep` calls out of the dial queue (no worker may be running),
    with their deadlines, so nobody dispatches or reconciles them later; their records go
    with the prefix at the end. Returns the backlog found."""
    queue = f"{stack.prefix}-dramatiq:outdial.dial"
    backlog = stack.redis.llen(queue)
    while (excess := stack.redis.llen(queue) - keep) > 0:
        ids = stack.redis.rpop(queue, min(excess, 1000))
        calls = [json.loads(body)["args"][0] for body in stack.redis.hmget(f"{queue}.msgs", ids)]
        pipe = stack.redis.pipeline(transaction=False)
        pipe.hdel(f"{queue}.msgs", *ids)
        pipe.zrem(f"{stack.prefix}:deadlines", *calls)
        pipe.execute()
    return backlog


def drain(stack: Stack) -> tuple[int, float, tuple[float, float]]:
    """Wait for the running worker to empty the dial queue; (backlog, seconds from its
    first fetch: the worker's boot is not dispatching time, (worker, server) CPU)."""
    queue = f"{stack.prefix}-dramatiq:outdial.dial"
    backlog = stack.redis.llen(queue)
    while backlog and stack.redis.llen(queue) == backlog:
        time.sleep(0.01)
    cpu = CpuMeter(stack)
    started = time.monotonic()
    while stack.redis.llen(queue):
        time.sleep(0.2)
    return backlog, time.monotonic() - started, cpu.percent()


async def main() -> None:
    stack = Stack()
    report = ["## Call path (bench/call_path.py)", ""]
    try:
        tenant = await setup_tenant(stack)

        reference_port = free_port()
        reference = stack._spawn(
            [sys.executable, "-m", "uvicorn", "bench.reference_app:app", "--port",
             str(reference_port), "--log-level", "warning"]
        )  # fmt: skip
        time.sleep(3)
        stack.lk.record_requests = False
        bare = wrk(f"http://127.0.0.1:{reference_port}/v1/api/call", tenant, 20)
        reference.terminate()
        stack.redis.delete(f"{stack.prefix}:reference")
        alone = wrk(f"{stack.api_url}/v1/api/call", tenant, 20)
        accepted_alone = trim_backlog(stack, BACKLOG_CAP)
        stack.start_worker()
        backlog, drained_in, (drain_worker_cpu, drain_server_cpu) = drain(stack)
        accept = wrk(f"{stack.api_url}/v1/api/call", tenant, 20)
        stack.stop_worker()  # hands back what it prefetched; the rest is not measured
        trim_backlog(stack, 0)
        stack.lk.record_requests = True
        report += [
            "| endpoint (wrk, 32 connections, 20 s) | req/s | p50 ms | p99 ms | non-2xx |",
            "|---|---|---|---|---|",
            f"| bare FastAPI + one LPUSH (reference) | {bare['rps']:.0f} | {bare['p50']:.1f} | "
            f"{bare['p99']:.1f} | {bare['non_2xx']:.0f} |",
            f"| POST /v1/api/call (no worker running) | {alone['rps']:.0f} | "
            f"{alone['p50']:.1f} | {alone['p99']:.1f} | {alone['non_2xx']:.0f} |",
            f"| POST /v1/api/call (worker dispatching) | {accept['rps']:.0f} | "
            f"{accept['p50']:.1f} | {accept['p99']:.1f} | {accept['non_2xx']:.0f} |",
            "",
            f"Accept throughput = {alone['rps'] / bare['rps'] * 100:.0f}% of the reference alone, "
            f"{accept['rps'] / bare['rps'] * 100:.0f}% with the worker dispatching beside it.",
            f"The oldest {backlog} of the no-worker run's {accepted_alone} queued calls "
            f"drained in {drained_in:.1f} s "
            f"({backlog / max(drained_in, 0.001):.0f} dispatches/s with the API idle; worker "
            f"{drain_worker_cpu:.0f}% of a core, LiveKit test server (own process) "
            f"{drain_server_cpu:.0f}%, on the same 2 cores).",
            "",
        ]

        stack.start_worker()
        time.sleep(6)
        report += [
            "| offered calls/s | accepted | refused | dialed | dial requests | not dialing | "
            "time-to-dial p50 ms | p99 ms | worker CPU | server CPU |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for rate, seconds in ((1, 15), (50, 20), (200, 15)):
            row = await offered_load(stack, tenant, rate, seconds)
            report.append(
                f"| {rate} | {row['accepted']} | {row['refused']} | {row['dialed']} | "
                f"{row['dial_requests']} | "
                f"{row['not_dialing']} | {row['p50']:.1f} | {row['p99']:.1f} | "
                f"{row['worker_cpu']:.0f}% | {row['server_cpu']:.0f}% |"
            )
        stack.stop_worker()

        recoveries = await crash_recovery(stack, tenant)
        report += [
            "",
            "SIGKILLed worker, its in-flight call dialed by the next worker after "
            + ", ".join(f"{value:.1f} s" for value in recoveries)
            + f" (median {statistics.median(recoveries):.1f} s).",
            "",
            "| worker idle poll (`dramatiq_worker_timeout`) | idle CPU (master + child) |",
            "|---|---|",
        ]
        for timeout_ms in (10, 20, 1000):
            report.append(f"| {timeout_ms} ms | {idle_cpu(stack, timeout_ms):.1f}% of a core |")
    finally:
        print("\n".join(report))  # whatever was measured, even if a later phase failed
        stack.close()


if __name__ == "__main__":
    asyncio.run(main())
