"""What one Redis on this machine carries, in the commands Outdial sends (redis-benchmark).

    PYTHONPATH=. python -m bench.redis_ops       # prints a markdown table

A redis-server of its own on a spare port (append-only file on, fsync every second, as the
compose file runs it; a throwaway directory), so nobody else's load is in the numbers and
the shared Redis is left alone. Measured, each with redis-benchmark, 50 clients, no
pipelining (Outdial's round trips are single commands): GET and SET, and EVALSHA of two of
Outdial's own scripts on a real call record: `call_with_workspace` (the dial step's read:
the call's 58 fields and its workspace's) and `apply_event` recording an informational event
(a new event id each time: the most frequent script of a call's life, and one of its
heaviest: append, sequence, feed, relay message).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import tempfile
import time

import redis

from api.settings import Settings
from api.store.base import open_store
from api.store.call_workspace import CallWithWorkspaceScript
from api.store.calls import accept_call
from api.store.clock import now_ms
from api.store.events import ApplyEvent, EventSpec, apply_args, event_keys
from api.store.scripts import SCRIPTS
from tests.support import free_port
from tests.test_store import draft

REQUESTS = 200_000


def benchmark(port: int, *command: str, tests: str = "") -> dict[str, float]:
    """redis-benchmark's requests per second for `command` (or `-t tests`)."""
    args = ["redis-benchmark", "-p", str(port), "-q", "-n", str(REQUESTS), "-c", "50"]
    args += ["-t", tests] if tests else ["-r", "100000000", *command]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    found = re.findall(r"^(.*): ([\d.]+) requests per second", out.replace("\r", "\n"), re.M)
    return {name.strip(): float(rps) for name, rps in found}


async def script_commands(url: str) -> dict[str, list[str]]:
    """EVALSHA command lines of Outdial's scripts on one accepted call."""
    store = open_store(Settings(REDIS_URL=url, OUTDIAL_REDIS_PREFIX="ops"))
    try:
        call = draft()
        assert (await accept_call(store, call, {"callId": call.id}, None)).created
        for source in SCRIPTS.values():
            await store.redis.script_load(source)
        read = CallWithWorkspaceScript(
            call=store.keys.call(call.id), workspace_prefix=store.keys.workspace("")
        )
        event = EventSpec("call.transcript", {"turns": []}, id="ev__rand_int__")
        apply = ApplyEvent(
            event_keys=event_keys(store, call.id),
            event=apply_args(store, event, now_ms(), call.id),
        )
        lines = {}
        for name, script in (("call_with_workspace", read), ("apply_event", apply)):
            keys, args = script.keys(), [str(arg) for arg in script.args()]
            sha = hashlib.sha1(SCRIPTS[script.NAME].encode()).hexdigest()
            lines[name] = ["EVALSHA", sha, str(len(keys)), *keys, *args]
        return lines
    finally:
        await store.aclose()


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", folder,
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            lines = asyncio.run(script_commands(f"redis://127.0.0.1:{port}/0"))
            results = benchmark(port, tests="get,set")
            for name, line in lines.items():
                results[f"EVALSHA {name}"] = next(iter(benchmark(port, *line).values()))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print("| command (redis-benchmark, 50 clients, no pipelining) | requests/s |")
    print("|---|---|")
    for name, rps in results.items():
        print(f"| {name} | {rps:,.0f} |")


if __name__ == "__main__":
    main()
