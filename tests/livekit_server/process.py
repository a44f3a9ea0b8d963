"""The test server in a process of its own, controlled over a small JSON API on loopback.

`python -m tests.livekit_server` starts a LiveKitTestServer and a control app on a second
port, prints one JSON line (`url`, `control`, `pid`) and serves until SIGTERM or until its
stdin closes (the parent died): a benchmark's server then has its own interpreter, GIL and
CPU account instead of sharing the benchmark's. `remote.LiveKitServerProcess` is the
parent's side.

Recorded requests cross as JSON with the request message in binary protobuf (base64); the
response messages stay in the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import sys
from typing import Any

from aiohttp import web

from .server import LiveKitTestServer
from .state import RecordedRequest


def encode_record(record: RecordedRequest) -> dict[str, Any]:
    return {
        "service": record.service,
        "method": record.method,
        "request": None
        if record.request is None
        else base64.b64encode(record.request.SerializeToString()).decode(),
        "claims": record.claims,
        "received_at": record.received_at,
        "status": record.status,
        "error_code": record.error_code,
        "request_id": record.request_id,
    }


def control_app(server: LiveKitTestServer) -> web.Application:
    """Routes for what benchmarks and tests read or change from outside the process."""

    def selector(request: web.Request) -> tuple[str | None, str | None]:
        return request.query.get("service"), request.query.get("method")

    async def requests(request: web.Request) -> web.Response:
        service, method = selector(request)
        if "start" in request.query:
            position, records = server.requests_from(int(request.query["start"]), service, method)
        else:
            records = server.requests(service, method)
            position = -1
        return web.json_response(
            {"next": position, "records": [encode_record(record) for record in records]}
        )

    async def count(request: web.Request) -> web.Response:
        return web.json_response(server.count(*selector(request)))

    async def settings(request: web.Request) -> web.Response:
        body = await request.json()
        if "record_requests" in body:
            server.record_requests = bool(body["record_requests"])
        if "webhook_url" in body:
            server.webhook_url = body["webhook_url"]
        return web.json_response({})

    async def inject(request: web.Request) -> web.Response:
        body = await request.json()
        server.inject(body.pop("service"), body.pop("method"), **body)
        return web.json_response({})

    async def clear_faults(request: web.Request) -> web.Response:
        server.clear_faults()
        return web.json_response({})

    async def reset(request: web.Request) -> web.Response:
        await asyncio.to_thread(server.reset)  # blocks on the server loop
        return web.json_response({})

    async def participant(request: web.Request) -> web.Response:
        body = await request.json()
        if body.pop("kind") == "agent":
            server.add_agent_participant(body["room_name"], body["identity"])
        else:
            server.add_sip_participant(body.pop("room_name"), body.pop("identity"), **body)
        return web.json_response({})

    async def scenario(request: web.Request) -> web.Response:
        body = await request.json()
        sent = await server.play_scenario_async(body.pop("room_name"), body.pop("scenario"), **body)
        return web.json_response(sent)

    app = web.Application()
    app.router.add_get("/requests", requests)
    app.router.add_get("/count", count)
    app.router.add_put("/settings", settings)
    app.router.add_post("/inject", inject)
    app.router.add_post("/clear_faults", clear_faults)
    app.router.add_post("/reset", reset)
    app.router.add_post("/participants", participant)
    app.router.add_post("/scenario", scenario)
    return app


async def serve(api_key: str, api_secret: str, record_requests: bool) -> None:
    server = LiveKitTestServer(api_key, api_secret, record_requests=record_requests).start()
    runner = web.AppRunner(control_app(server), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    control_port = runner.addresses[0][1]
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    # The parent holds our stdin open for as long as it lives: EOF means it is gone.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    watcher = asyncio.create_task(reader.read())
    watcher.add_done_callback(lambda _: done.set())
    started = {"url": server.url, "control": f"http://127.0.0.1:{control_port}", "pid": os.getpid()}
    print(json.dumps(started), flush=True)
    try:
        await done.wait()
    finally:
        watcher.cancel()
        await runner.cleanup()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-key", default="testkey")
    parser.add_argument("--api-secret", default="a-test-secret-that-is-long-enough-32")
    parser.add_argument(
        "--no-records", action="store_true", help="only count requests (long benchmarks)"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.api_key, args.api_secret, not args.no_records))
