"""CPU per accept, in one process: the measure of the accept path's work that a shared
machine's wall clock cannot give.

The API app (`api.app.create_app`, its lifespan run), the FastAPI reference and the
plain-ASGI floor are each called as ASGI apps, on uvloop as under uvicorn, with the body
`bench.call_path.call_body` sends, `--concurrency` requests in flight at once (as wrk's
connections); `time.process_time` over `--accepts` requests, after a warm-up, divided by
their count. The Redis round trips are real (loopback, a fresh prefix, deleted after), so
the figure is this process's CPU for everything but uvicorn's HTTP parsing and writing.

    PYTHONPATH=. python -m bench.accept_cpu [--accepts 5000] [--limits] [--profile out.prof]

`--profile` writes a cProfile of the API's timed accepts (read it with `python -m pstats`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import uvloop

from api.app import create_app
from api.settings import Settings
from bench.accept_ab import LIMITS_ENV
from bench.call_path import ADMIN, API_KEY, API_SECRET, call_body
from tests.livekit_server import LiveKitTestServer

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def request(
    app: Asgi, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    """One HTTP request through the ASGI app: its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-length", b"%d" % len(body))],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    answer: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # as a client that stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]


async def setup(app: Asgi, limits: bool) -> dict[str, str]:
    """A workspace with an agent and a number, as `bench.call_path.setup_tenant` makes."""
    import json

    admin = {"authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
    status, body = await request(app, "POST", "/v1/admin/workspaces", admin, b'{"name":"b"}')
    assert status == 201, body
    ws = json.loads(body)
    tenant = {"x-workspace-id": ws["workspaceId"], "x-api-key": ws["apiKey"]}
    json_headers = tenant | {"content-type": "application/json"}
    agent = json.dumps({"name": "b", "instructions": "Hi {{firstName}}"}).encode()
    status, body = await request(app, "POST", "/v1/api/agents", json_headers, agent)
    assert status in (200, 201), body
    agent_id = json.loads(body)["id"]
    number = b'{"number": "+15105550100", "trunk": {"address": "sip.example.net"}}'
    status, body = await request(app, "POST", "/v1/api/numbers", json_headers, number)
    assert status == 201, body
    if limits:
        trunk = json.loads(body)["sipTrunkId"]
        workspace_limits = f"/v1/admin/workspaces/{ws['workspaceId']}/limits"
        for path, limit in (
            (workspace_limits, b'{"max_concurrent_calls": 50000}'),
            (f"/v1/admin/trunks/{trunk}/limits", b'{"max_calls_per_second": 500}'),
        ):
            status, body = await request(app, "PUT", path, admin, limit)
            assert status == 200, body
    return tenant | {"agent": agent_id}


async def cpu_per_request(
    app: Asgi, path: str, headers: dict[str, str], body: bytes, count: int, concurrency: int,
    profile: cProfile.Profile | None = None,
) -> float:  # fmt: skip
    """µs of this process's CPU per request, over `count` after `count // 5` of warm-up."""

    async def run(total: int) -> None:
        for _ in range(total // concurrency):
            statuses = await asyncio.gather(
                *(request(app, "POST", path, headers, body) for _ in range(concurrency))
            )
            assert all(status == 200 for status, _ in statuses), statuses[:1]

    await run(count // 5)
    start = time.process_time()
    if profile is not None:
        profile.enable()
    await run(count)
    if profile is not None:
        profile.disable()
    return (time.process_time() - start) / (count // concurrency * concurrency) * 1e6


async def measure(args: argparse.Namespace, prefix: str, livekit_url: str) -> dict[str, float]:
    os.environ |= {
        "REDIS_URL": REDIS_URL,
        "LIVEKIT_URL": livekit_url,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "OUTDIAL_ADMIN_TOKEN": ADMIN,
        "OUTDIAL_REDIS_PREFIX": prefix,
        "OUTDIAL_LOG_LEVEL": "WARNING",
        "OUTDIAL_WORKER_METRICS_PORT": "0",
        **(LIMITS_ENV if args.limits else {}),
    }
    # Imported here: the yardsticks read their key from the environment set above.
    from bench import plain_asgi_app, reference_app

    results: dict[str, float] = {}
    app = create_app(Settings())  # not get_settings(): cached before the prefix was set
    async with app.router.lifespan_context(app):
        # Under valgrind a batch of accepts takes seconds: no reply may count as lost.
        app.state.resources.store.lean.reply_timeout = 600
        tenant = await setup(app, args.limits)
        headers = {k: v for k, v in tenant.items() if k != "agent"}
        headers["content-type"] = "application/json"
        body = call_body(tenant).encode()
        profile = cProfile.Profile(time.process_time) if args.profile else None
        targets = {"floor": plain_asgi_app.app, "reference": reference_app.app, "api": app}
        for name, target in targets.items():
            if args.only and name != args.only:
                continue
            results[name] = await cpu_per_request(
                target, "/v1/api/call", headers, body, args.accepts, args.concurrency,
                profile if name == "api" else None,
            )  # fmt: skip
        if profile is not None:
            profile.dump_stats(args.profile)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accepts", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--limits", action="store_true", help="pacing limits on (never binding)")
    parser.add_argument("--profile", help="write a cProfile of the API's accepts here")
    parser.add_argument(
        "--only", choices=("floor", "reference", "api"), help="measure this app alone "
        "(under `valgrind --tool=callgrind` or `perf stat`, two counts' difference)"
    )  # fmt: skip
    args = parser.parse_args()
    prefix = f"bench-cpu-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    # Only the number's trunk is created there; idle (its own thread) while accepts run.
    livekit = LiveKitTestServer(api_key=API_KEY, api_secret=API_SECRET).start()
    try:
        results = uvloop.run(measure(args, prefix, livekit.url))
    finally:
        livekit.stop()
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    print(f"CPU per request, µs (process_time over {args.accepts}, {args.concurrency} in flight):")
    for name, micros in results.items():
        print(f"  {name:9} {micros:7.1f}")
    if not args.only:
        print(f"  api - reference {results['api'] - results['reference']:.1f}, "
              f"reference - floor {results['reference'] - results['floor']:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
