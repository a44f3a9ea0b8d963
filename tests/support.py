"""Test plumbing: real servers and real worker processes on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import redis
import uvicorn
from dramatiq.broker import MessageProxy

from api.app import create_app
from api.jobs.wakeup import WakeableRedisBroker
from api.security import event_token
from api.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEST_API_KEY = "testkey"
TEST_API_SECRET = "test-secret-that-is-long-enough-for-hs256"
ADMIN_TOKEN = "test-admin-token"


# Ports this process handed out: a port is free again the moment its probe socket closes,
# so two servers told their ports before either binds (a Sentinel cluster's five nodes)
# could be given the same one; the second then fails to listen.
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never one this process handed out before."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def has_sip_leg(lk: Any, room_name: str, call_id: str) -> bool:
    """The call's SIP participant is in its room at the LiveKit test server."""
    room = lk.room(room_name)
    return room is not None and f"sip-{call_id}" in room.participants


async def report_agent(
    http: httpx.AsyncClient, settings: Settings, call_id: str, event_type: str = "agent.ready"
) -> dict[str, Any]:
    """Post an agent event for the call with its token, as the agent runtime does."""
    response = await http.post(
        f"/v1/internal/calls/{call_id}/events",
        json={"type": event_type, "data": {"job_id": "AJ_test"}},
        headers={"Authorization": f"Bearer {event_token(call_id, settings.event_signing_key)}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def redis_snapshot(client: redis.Redis, prefix: str) -> dict[bytes, tuple[bytes | None, bool]]:
    """Every key under `prefix` (the store's keys and, as `{prefix}-dramatiq`, the broker's):
    its serialized value (DUMP) and whether it expires. Equal snapshots mean nothing under
    the prefix was written, added or deleted in between."""
    return {
        key: (client.dump(key), client.pttl(key) >= 0)
        for key in client.scan_iter(match=f"{prefix}*", count=1000)
    }


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces `settings` in a subprocess."""
    env: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list):
            value = "[" + ",".join(str(item) for item in value) + "]"
        env[field.alias or name.upper()] = str(value)
    return env


def wakeable_broker(url: str, **options: Any) -> WakeableRedisBroker:
    """The wake-up broker on `url`, its listener on a client of its own (as
    `api.jobs.broker.build_broker` gives it one)."""
    return WakeableRedisBroker(url=url, listener_client=redis.Redis.from_url(url), **options)


def dies_holding(
    url: str, namespace: str, queue_name: str, actor_name: str
) -> tuple[WakeableRedisBroker, MessageProxy]:
    """A worker that fetched a message of `queue_name` (for `actor_name`) and then went
    silent: what a SIGKILLed process leaves in Redis (tests/test_dead_workers.py kills a real
    one). Its last command, the fetch, is its last heartbeat. Close the broker when done."""
    broker = wakeable_broker(url, namespace=namespace)
    actor = dramatiq.actor(
        lambda _: None, broker=broker, queue_name=queue_name, actor_name=actor_name
    )
    actor.send("held")
    consumer = broker.consume(queue_name, prefetch=1, timeout=60_000)
    message = next(consumer)
    assert message is not None
    broker.wakeups.stop()  # its listener thread; the broker's own client stays silent
    return broker, message


class ApiServer:
    """The real FastAPI app under uvicorn, in a thread, on a loopback port."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> ApiServer:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=10, what="uvicorn to start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class WorkerProcess:
    """`dramatiq api.worker` as a real subprocess (its own process group, so it can be killed)."""

    def __init__(
        self,
        settings: Settings,
        threads: int = 4,
        extra_env: dict[str, str] | None = None,
        extra_pythonpath: list[str] | None = None,
    ):
        self.settings = settings
        self.threads = threads
        self.extra_env = extra_env or {}
        # Directories put before the repo on the worker's PYTHONPATH (e.g. a sitecustomize).
        self.extra_pythonpath = extra_pythonpath or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self) -> WorkerProcess:
        env = os.environ | settings_env(self.settings) | self.extra_env
        env["PYTHONPATH"] = os.pathsep.join([*self.extra_pythonpath, str(ROOT)])
        env.setdefault("dramatiq_worker_timeout", str(self.settings.worker_timeout_ms))
        env.setdefault("dramatiq_queue_prefetch", str(self.threads))
        self.log_path = Path(
            f"/tmp/outdial-worker-{self.settings.redis_prefix}-{time.time_ns()}.log"
        )
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "api.worker",
                "--processes",
                "1",
                "--threads",
                str(self.threads),
            ],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: what a crashed container looks like."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM to the master only: Dramatiq's graceful stop."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Ends the worker at once, once a test is done with it. Not `terminate`: Dramatiq's
        graceful stop waits out its one-second polls (3-5 s a worker), and only the tests
        whose subject it is (test_operations.py) need it."""
        self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


class SpareRedis:
    """A throwaway redis-server on a spare port that tests may stop and start."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
