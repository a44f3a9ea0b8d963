"""A real worker process (`python -m agent_runtime start`) against the LiveKit test server.

Everything is observed from outside: the worker registers on the test server's `/agent`
websocket, gets jobs through CreateRoom(agents=...) or CreateDispatch, and reports events
to a loopback HTTP receiver. The test server has no media server, so joining the room
fails: that is itself the `call.failed` (cannot_join_room) these tests expect. The last
test stops a worker with SIGTERM while it runs a call: the call finishes, then the worker
exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit import api

from tests.test_agent_events import EventReceiver

ROOT = Path(__file__).resolve().parent.parent
AGENT_NAME = f"outdial-agent-test-{uuid.uuid4().hex[:6]}"
WORKER_LOGS: list[Path] = []


@pytest.fixture(scope="module")
def receiver() -> Iterator[EventReceiver]:
    server = EventReceiver().start()
    yield server
    server.stop()


def start_worker(
    livekit_server: Any, log_path: Path, agent_name: str, **env: str
) -> subprocess.Popen[bytes]:
    """`python -m agent_runtime start` registered as `agent_name`, logging to `log_path`."""
    environment = {
        **os.environ,
        "LIVEKIT_URL": livekit_server.ws_url,
        "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": livekit_server.api_secret,
        "OUTDIAL_AGENT_NAME": agent_name,
        "OUTDIAL_AGENT_NUM_IDLE_PROCESSES": "1",
        "OUTDIAL_AGENT_HEALTH_PORT": "0",
        # the default (0.7 of the machine's CPU) makes a busy 2-core CI box refuse jobs
        "OUTDIAL_AGENT_LOAD_THRESHOLD": "100",
        "OUTDIAL_AGENT_EVENT_FLUSH_TIMEOUT_SECONDS": "3",
        "OPENAI_API_KEY": "sk-test-never-used",
        **env,
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent_runtime", "start"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    WORKER_LOGS.append(log_path)
    return proc


@pytest.fixture(scope="module")
def worker(
    livekit_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path_factory.mktemp("agent-worker") / "worker.log"
    proc = start_worker(livekit_server, log_path, AGENT_NAME)
    try:
        livekit_server.wait_for_worker(AGENT_NAME, timeout=40)
        yield proc
    finally:
        _stop(proc)


def _log_tail(lines: int = 15) -> str:
    if not WORKER_LOGS or not WORKER_LOGS[-1].exists():
        return ""
    return "\n".join(WORKER_LOGS[-1].read_text(errors="replace").splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def dispatch_metadata(receiver: EventReceiver, call_id: str, **overrides: Any) -> dict[str, Any]:
    agent_name = overrides.pop("worker_name", AGENT_NAME)
    return {
        "version": 1,
        "call_id": call_id,
        "workspace_id": "ws_test",
        "room_name": f"room-{call_id}",
        "agent": {
            "id": "ag_1",
            "name": "Reminder",
            "instructions": "Remind {{name}} of {{date}}.",
            "worker_name": agent_name,
        },
        "dynamic_variables": {"name": "Ada"},
        "metadata": {"crm_id": "CRM-1"},
        "to_number": "+15551230000",
        "sip_participant_identity": f"sip-{call_id}",
        "ring_timeout_seconds": 30,
        "max_duration_seconds": 600,
        "events_url": receiver.url(call_id),
        "event_token": receiver.token,
        **overrides,
    }


def create_room_with_agent(lk: Any, room: str, metadata: str) -> None:
    async def create() -> None:
        async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as client:
            dispatch = api.RoomAgentDispatch(agent_name=AGENT_NAME, metadata=metadata)
            await client.room.create_room(api.CreateRoomRequest(name=room, agents=[dispatch]))

    asyncio.run(create())


def create_dispatch(lk: Any, room: str, metadata: str, agent_name: str = AGENT_NAME) -> None:
    async def create() -> None:
        async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as client:
            request = api.CreateAgentDispatchRequest(
                agent_name=agent_name, room=room, metadata=metadata
            )
            await client.agent_dispatch.create_dispatch(request)

    asyncio.run(create())


def events_of(receiver: EventReceiver, call_id: str) -> list[dict[str, Any]]:
    return [r.body for r in receiver.received if r.call_id == call_id and r.status == 200]


def wait_event(receiver: EventReceiver, call_id: str, event_type: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for body in events_of(receiver, call_id):
            if body["type"] == event_type:
                return body
        time.sleep(0.05)
    got = events_of(receiver, call_id)
    raise TimeoutError(f"no {event_type} for {call_id}; got {got}\nworker log:\n{_log_tail()}")


def test_job_parses_metadata_and_reports_cannot_join_room(
    lk: Any, worker: subprocess.Popen[bytes], receiver: EventReceiver
) -> None:
    call_id = f"call_{uuid.uuid4().hex[:8]}"
    metadata = dispatch_metadata(receiver, call_id)
    create_room_with_agent(lk, metadata["room_name"], json.dumps(metadata))

    started = wait_event(receiver, call_id, "agent.started")
    assert started["data"]["agent_id"] == "ag_1"
    assert started["data"]["missing_variables"] == ["date"]
    assert started["data"]["metadata"] == {"crm_id": "CRM-1"}
    assert started["data"]["worker_pid"] != worker.pid  # ran in a job process

    failed = wait_event(receiver, call_id, "call.failed")
    assert failed["data"]["reason"] == "cannot_join_room"
    assert [e["type"] for e in events_of(receiver, call_id)] == ["agent.started", "call.failed"]

    job = lk.wait_for_job(room_name=metadata["room_name"], agent_name=AGENT_NAME)
    lk.wait_for_job_status(job.job_id, ["JS_SUCCESS", "JS_FAILED"], timeout=20)
    # the runtime tried to drop the leg so no phone keeps ringing for a call it gave up on
    deleted = [r.request.room for r in lk.requests("RoomService", "DeleteRoom")]
    assert metadata["room_name"] in deleted


def test_bad_metadata_is_reported_and_worker_takes_next_job(
    lk: Any, worker: subprocess.Popen[bytes], receiver: EventReceiver
) -> None:
    # unknown contract version: call id, URL and token still parse -> call.failed
    bad_id = f"call_{uuid.uuid4().hex[:8]}"
    bad = dispatch_metadata(receiver, bad_id, version=99)
    create_dispatch(lk, bad["room_name"], json.dumps(bad))
    failed = wait_event(receiver, bad_id, "call.failed")
    assert failed["data"]["reason"] == "invalid_metadata"
    assert "version" in failed["data"]["message"]

    # not JSON at all: nothing to report to, the job just ends
    create_dispatch(lk, "room-garbage", "this is not json")
    garbage = lk.wait_for_job(room_name="room-garbage", agent_name=AGENT_NAME)
    lk.wait_for_job_status(garbage.job_id, ["JS_SUCCESS", "JS_FAILED"], timeout=20)

    # the worker is still up and takes the next job
    good_id = f"call_{uuid.uuid4().hex[:8]}"
    good = dispatch_metadata(receiver, good_id)
    create_dispatch(lk, good["room_name"], json.dumps(good))
    assert wait_event(receiver, good_id, "agent.started")
    assert wait_event(receiver, good_id, "call.failed")["data"]["reason"] == "cannot_join_room"
    assert worker.poll() is None


def test_sigterm_lets_the_running_call_finish_then_exits_0(lk: Any, tmp_path: Path) -> None:
    # A slow API keeps the call's job running (it waits for its events to be taken) while
    # the worker is told to stop.
    slow = EventReceiver().start()
    slow.delay_seconds = 2.0
    agent_name = f"outdial-agent-drain-{uuid.uuid4().hex[:6]}"
    proc = start_worker(
        lk, tmp_path / "worker.log", agent_name, OUTDIAL_AGENT_EVENT_FLUSH_TIMEOUT_SECONDS="10"
    )
    try:
        lk.wait_for_worker(agent_name, timeout=40)
        call_id = f"call_{uuid.uuid4().hex[:8]}"
        metadata = dispatch_metadata(slow, call_id, worker_name=agent_name)
        create_dispatch(lk, metadata["room_name"], json.dumps(metadata), agent_name)
        job = lk.wait_for_job(room_name=metadata["room_name"], agent_name=agent_name)
        lk.wait_for_job_status(job.job_id, ["JS_RUNNING"], timeout=20)

        os.kill(proc.pid, signal.SIGTERM)  # the worker only: its job processes are its to stop
        assert proc.wait(timeout=60) == 0, _log_tail(40)

        # the call ran to its end, every event taken by the API, before the worker left
        assert [e["type"] for e in events_of(slow, call_id)] == ["agent.started", "call.failed"]
        assert lk.job(job.job_id).status in (api.JobStatus.JS_SUCCESS, api.JobStatus.JS_FAILED)
        assert agent_name not in [w.agent_name for w in lk.workers()]
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert "SIGTERM: stopping the worker" in log and "draining worker" in log
    finally:
        _stop(proc)
        slow.stop()
