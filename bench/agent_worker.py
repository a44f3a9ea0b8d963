"""Agent worker benchmark: dispatch latency, memory per process, calls per 2-core machine.

    python -m bench.agent_worker [--jobs 10]

Runs a real `python -m agent_runtime start` worker against the LiveKit protocol test server
(tests/livekit_server) and a loopback events receiver, then measures:

1. assignment -> entrypoint: the test server's `assigned_at` (JobAssignment sent) to the
   `agent.started` event's timestamp (created first thing in the entrypoint), with a
   prewarmed idle process waiting each time;
2. memory of the worker's idle (prewarmed) processes, RSS and PSS (forkserver children
   share pages, so PSS is what they really cost);
3. one call's steady cost, in a job-like process: the pipeline built from an agent config
   (Silero VAD, OpenAI-compatible STT/LLM/TTS clients) with VAD fed 8 kHz-equivalent phone
   audio resampled to 16 kHz for 20 s of call time. The test server has no media, so
   WebRTC/Opus costs are not in this number (see the notes printed at the end);
4. concurrent calls one 2-core machine admits at the default load threshold (0.7),
   reasoned from 3.
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
import uuid
from pathlib import Path
from typing import Any

import psutil
from livekit import api

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.livekit_server import LiveKitTestServer  # noqa: E402
from tests.test_agent_events import EventReceiver  # noqa: E402

KEY, SECRET = "benchkey", "bench-secret-that-is-long-enough-for-hs256"
AGENT_NAME = f"outdial-bench-{uuid.uuid4().hex[:6]}"
DEFAULT_LOAD_THRESHOLD = 0.7
CORES = 2


def _metadata(receiver: EventReceiver, call_id: str) -> str:
    return json.dumps(
        {
            "call_id": call_id,
            "workspace_id": "ws_bench",
            "room_name": f"room-{call_id}",
            "agent": {"id": "ag", "name": "bench", "instructions": "hi", "worker_name": "w"},
            "to_number": "+15551230000",
            "sip_participant_identity": f"sip-{call_id}",
            "ring_timeout_seconds": 30,
            "max_duration_seconds": 600,
            "events_url": receiver.url(call_id),
            "event_token": receiver.token,
        }
    )


async def _dispatch(lk: LiveKitTestServer, room: str, metadata: str) -> None:
    async with api.LiveKitAPI(lk.url, KEY, SECRET) as client:
        request = api.CreateAgentDispatchRequest(
            agent_name=AGENT_NAME, room=room, metadata=metadata
        )
        await client.agent_dispatch.create_dispatch(request)


def _pss_mb(proc: psutil.Process) -> float:
    try:
        return proc.memory_full_info().pss / 2**20
    except (psutil.AccessDenied, AttributeError):
        return float("nan")


def measure_worker(jobs: int) -> dict[str, Any]:
    lk = LiveKitTestServer(KEY, SECRET).start()
    receiver = EventReceiver().start()
    env = {
        **os.environ,
        "LIVEKIT_URL": lk.ws_url,
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
        "OUTDIAL_AGENT_NAME": AGENT_NAME,
        "OUTDIAL_AGENT_NUM_IDLE_PROCESSES": "2",
        "OUTDIAL_AGENT_HEALTH_PORT": "0",
        "OUTDIAL_AGENT_LOAD_THRESHOLD": "100",  # measure, do not shed load
        "OPENAI_API_KEY": "sk-bench",
    }
    started = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, "-m", "agent_runtime", "start"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        lk.wait_for_worker(AGENT_NAME, timeout=60)
        registered_s = time.monotonic() - started
        time.sleep(3)  # idle pool warmed
        parent = psutil.Process(worker.pid)
        main_rss = parent.memory_info().rss / 2**20
        children = parent.children(recursive=True)
        # idle job processes are the forkserver's children (not its resource tracker)
        idle = [
            p
            for p in children
            if not p.children() and "resource_tracker" not in " ".join(p.cmdline())
        ]
        idle_rss = [p.memory_info().rss / 2**20 for p in idle]
        idle_pss = [_pss_mb(p) for p in idle]

        latencies = []
        for _ in range(jobs):
            call_id = f"call_{uuid.uuid4().hex[:8]}"
            asyncio.run(_dispatch(lk, f"room-{call_id}", _metadata(receiver, call_id)))
            event = None
            deadline = time.monotonic() + 30
            while event is None and time.monotonic() < deadline:
                event = next(
                    (
                        r.body
                        for r in receiver.received
                        if r.call_id == call_id and r.body["type"] == "agent.started"
                    ),
                    None,
                )
                time.sleep(0.01)
            job = lk.wait_for_job(room_name=f"room-{call_id}", agent_name=AGENT_NAME)
            if event is not None and job.assigned_at is not None:
                latencies.append((event["timestamp"] - job.assigned_at) * 1000)
            time.sleep(1.5)  # let the pool replace the used process
        return {
            "registered_s": registered_s,
            "main_rss": main_rss,
            "idle_rss": idle_rss,
            "idle_pss": idle_pss,
            "latencies_ms": latencies,
        }
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        receiver.stop()
        lk.stop()


_JOB_PROBE = r"""
import asyncio, json, sys, time
import numpy as np
import psutil
from livekit import rtc
from livekit.plugins import silero
from agent_runtime import CallContext, WorkerSettings, builtin_agent
from agent_runtime.contract import AgentConfig, DispatchMetadata
from agent_runtime.pipeline import build_session

me = psutil.Process()
vad = silero.VAD.load()
baseline_mb = me.memory_info().rss / 2**20  # a prewarmed process: imports + VAD
settings = WorkerSettings.from_env({"OPENAI_API_KEY": "sk-bench"})
dispatch = DispatchMetadata(call_id="c", workspace_id="w", room_name="r",
    agent=AgentConfig(id="a", name="n", instructions="Hello {{name}}", worker_name="w"),
    to_number="+15551230000", sip_participant_identity="s", ring_timeout_seconds=30,
    max_duration_seconds=600, events_url="http://127.0.0.1:9/e", event_token="t")

async def main():
    call = CallContext(dispatch, settings=settings)
    session = build_session(call, vad)
    agent = builtin_agent(call)
    stream = vad.stream()
    # the media path around the VAD: 48 kHz from WebRTC down to 16 kHz, TTS 24 kHz up to 48
    downsample = rtc.AudioResampler(48000, 16000, num_channels=1)
    upsample = rtc.AudioResampler(24000, 48000, num_channels=1)
    seconds = float(sys.argv[1])
    rng = np.random.default_rng(0)
    t = np.arange(480) / 48000
    cpu0 = time.process_time()

    async def drain():
        async for _ in stream:
            pass

    reader = asyncio.create_task(drain())
    for i in range(int(seconds * 100)):  # 10 ms frames, as fast as they are processed
        speech = (i // 150) % 2 == 0  # 1.5 s talk / 1.5 s silence
        signal = (np.sin(2 * np.pi * 220 * t) * 8000 if speech else 0) + rng.normal(0, 200, 480)
        frame = rtc.AudioFrame(signal.astype(np.int16).tobytes(), 48000, 1, 480)
        for small in downsample.push(frame):
            stream.push_frame(small)
        if not speech:  # the agent talks while the callee is silent
            upsample.push(rtc.AudioFrame(bytes(480), 24000, 1, 240))
        if i % 10 == 0:
            await asyncio.sleep(0)
    stream.end_input()
    await reader
    cpu = time.process_time() - cpu0
    peak_mb = me.memory_info().rss / 2**20
    print(json.dumps({"cpu_s": cpu, "audio_s": seconds, "baseline_mb": baseline_mb,
                      "call_growth_mb": peak_mb - baseline_mb}))
    del session, agent

asyncio.run(main())
"""


def measure_job(audio_seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _JOB_PROBE, str(audio_seconds)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--audio-seconds", type=float, default=20.0)
    args = parser.parse_args()

    worker = measure_worker(args.jobs)
    job = measure_job(args.audio_seconds)

    lat = sorted(worker["latencies_ms"])
    cpu_per_call = job["cpu_s"] / job["audio_s"]  # cores used by one call's VAD path
    budget_cores = DEFAULT_LOAD_THRESHOLD * CORES
    by_cpu = int(budget_cores / cpu_per_call) if cpu_per_call else 0
    idle_pss = statistics.mean(worker["idle_pss"]) if worker["idle_pss"] else float("nan")
    per_call_mb = idle_pss + job["call_growth_mb"]
    by_mem_4gb = int((4096 - worker["main_rss"]) / per_call_mb)

    rows = [
        ("worker start -> registered", f"{worker['registered_s']:.1f} s"),
        ("assignment -> entrypoint (prewarmed), median", f"{statistics.median(lat):.1f} ms"),
        (
            "assignment -> entrypoint, p90 / max",
            f"{lat[int(0.9 * (len(lat) - 1))]:.1f} / {lat[-1]:.1f} ms",
        ),
        ("jobs measured", str(len(lat))),
        ("worker main process RSS", f"{worker['main_rss']:.0f} MB"),
        (
            "idle prewarmed process RSS (each)",
            ", ".join(f"{v:.0f}" for v in worker["idle_rss"]) + " MB",
        ),
        (
            "idle prewarmed process PSS (each)",
            ", ".join(f"{v:.0f}" for v in worker["idle_pss"]) + " MB",
        ),
        (
            "job process growth during a call (pipeline + VAD stream)",
            f"{job['call_growth_mb']:.0f} MB",
        ),
        ("memory per call (idle PSS + growth)", f"{per_call_mb:.0f} MB"),
        ("CPU per call (VAD + resampling)", f"{cpu_per_call * 100:.1f} % of one core"),
        (
            f"calls per {CORES}-core machine at load {DEFAULT_LOAD_THRESHOLD} (CPU bound)",
            f"~{by_cpu}",
        ),
        ("calls per 4 GB machine (memory bound)", f"~{by_mem_4gb}"),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(
        "\nNotes: CPU per call covers VAD inference and resampling; a real call adds Opus"
        " decode/encode and WebRTC transport (not exercised: the test server has no media)"
        " and the STT/TTS/LLM client streams. livekit-agents marks the worker full when the"
        " machine's CPU average over 2.5 s exceeds the threshold, so the CPU-bound figure is"
        " the admission limit."
    )


if __name__ == "__main__":
    main()
