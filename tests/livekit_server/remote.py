"""LiveKitServerProcess: the parent's side of the test server in its own process.

It starts `python -m tests.livekit_server` (process.py) and offers the part of
LiveKitTestServer's interface that benchmarks use (recorded requests, counts, faults,
reset, participants, scenarios) over the child's control API, so a benchmark swaps one for
the other. The child's `pid` is there for its CPU account. Recorded requests come back
with their request message decoded; `response` is always None.

The child lives no longer than this object's process: it exits when its stdin, held by
the parent, closes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .rpcs import RPCS
from .state import RecordedRequest

ROOT = Path(__file__).resolve().parent.parent.parent
# How long the child may take to print where it serves (imports on a loaded machine).
_START_TIMEOUT_SECONDS = 30.0


def decode_record(raw: dict[str, Any]) -> RecordedRequest:
    request = None
    if raw["request"] is not None:
        request = RPCS[(raw["service"], raw["method"])].request_cls()
        request.ParseFromString(base64.b64decode(raw["request"]))
    return RecordedRequest(
        service=raw["service"],
        method=raw["method"],
        request=request,
        claims=raw["claims"],
        received_at=raw["received_at"],
        status=raw["status"],
        error_code=raw["error_code"],
        request_id=raw["request_id"],
    )


class LiveKitServerProcess:
    def __init__(
        self,
        api_key: str = "testkey",
        api_secret: str = "a-test-secret-that-is-long-enough-32",
        *,
        record_requests: bool = True,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self._record_requests = record_requests
        self._webhook_url: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started: dict[str, Any] = {}

    def start(self) -> LiveKitServerProcess:
        command = [sys.executable, "-m", "tests.livekit_server", "--api-key", self.api_key,
                   "--api-secret", self.api_secret]  # fmt: skip
        if not self._record_requests:
            command.append("--no-records")
        self._process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        assert self._process.stdout is not None
        # Its first line says where it serves; a child that hangs before it must not hang
        # the suite.
        ready, _, _ = select.select([self._process.stdout], [], [], _START_TIMEOUT_SECONDS)
        line = self._process.stdout.readline() if ready else b""
        if not line:
            os.killpg(self._process.pid, signal.SIGKILL)
            code = self._process.wait(timeout=10)
            raise RuntimeError(f"the LiveKit test server process did not serve ({code})")
        self._started = json.loads(line)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> LiveKitServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return int(self._started["pid"])

    @property
    def url(self) -> str:
        return str(self._started["url"])

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    # -- control API -------------------------------------------------------------------------

    def _ask(self, http_method: str, path: str, body: Any = None, **query: Any) -> Any:
        selected = {key: value for key, value in query.items() if value is not None}
        url = f"{self._started['control']}{path}"
        if selected:
            url += "?" + urllib.parse.urlencode(selected)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=http_method)
        request.add_header("content-type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def requests(
        self, service: str | None = None, method: str | None = None
    ) -> list[RecordedRequest]:
        answer = self._ask("GET", "/requests", service=service, method=method)
        return [decode_record(raw) for raw in answer["records"]]

    def requests_from(
        self, start: int, service: str | None = None, method: str | None = None
    ) -> tuple[int, list[RecordedRequest]]:
        """As LiveKitTestServer.requests_from: what is new from `start`, up to the first
        request still unanswered, and where to ask from next."""
        answer = self._ask("GET", "/requests", start=start, service=service, method=method)
        return answer["next"], [decode_record(raw) for raw in answer["records"]]

    async def requests_from_async(
        self, start: int, service: str | None = None, method: str | None = None
    ) -> tuple[int, list[RecordedRequest]]:
        return await asyncio.to_thread(self.requests_from, start, service, method)

    def count(self, service: str | None = None, method: str | None = None) -> int:
        return int(self._ask("GET", "/count", service=service, method=method))

    async def count_async(self, service: str | None = None, method: str | None = None) -> int:
        return await asyncio.to_thread(self.count, service, method)

    @property
    def record_requests(self) -> bool:
        return self._record_requests

    @record_requests.setter
    def record_requests(self, value: bool) -> None:
        self._ask("PUT", "/settings", {"record_requests": value})
        self._record_requests = value

    @property
    def webhook_url(self) -> str | None:
        return self._webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str) -> None:
        self._ask("PUT", "/settings", {"webhook_url": url})
        self._webhook_url = url

    def inject(self, service: str, method: str, **fault: Any) -> None:
        """As LiveKitTestServer.inject (JSON-able arguments); returns nothing to release."""
        self._ask("POST", "/inject", {"service": service, "method": method, **fault})

    def clear_faults(self) -> None:
        self._ask("POST", "/clear_faults", {})

    def reset(self) -> None:
        self._ask("POST", "/reset", {})

    def add_sip_participant(self, room_name: str, identity: str, **details: Any) -> None:
        body = {"kind": "sip", "room_name": room_name, "identity": identity, **details}
        self._ask("POST", "/participants", body)

    def add_agent_participant(self, room_name: str, identity: str) -> None:
        self._ask(
            "POST", "/participants", {"kind": "agent", "room_name": room_name, "identity": identity}
        )

    async def play_scenario_async(
        self, room_name: str, scenario: str, **options: Any
    ) -> list[tuple[str, int]]:
        body = {"room_name": room_name, "scenario": scenario, **options}
        sent = await asyncio.to_thread(self._ask, "POST", "/scenario", body)
        return [(event, status) for event, status in sent]
