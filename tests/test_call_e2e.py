"""One call through every real process: API -> dispatch worker -> LiveKit (test server) ->
agent worker -> agent events -> API. The metadata the agent parses is the one the
dispatcher built for a real API call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from api.settings import Settings
from tests.conftest import Tenant
from tests.support import ROOT, WorkerProcess, async_wait_until

AGENT_NAME = f"outdial-e2e-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The operator allows this worker name (the deployment's own is allowed by default).
    return settings.model_copy(update={"allowed_worker_names_text": AGENT_NAME})


@pytest.fixture(scope="module")
def agent_worker(livekit_server: Any) -> Iterator[subprocess.Popen[bytes]]:
    env = os.environ | {
        "LIVEKIT_URL": livekit_server.ws_url,
        "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": livekit_server.api_secret,
        "OUTDIAL_AGENT_NAME": AGENT_NAME,
        "OUTDIAL_AGENT_NUM_IDLE_PROCESSES": "1",
        "OUTDIAL_AGENT_HEALTH_PORT": "0",
        "OUTDIAL_AGENT_LOAD_THRESHOLD": "100",  # a busy 2-core CI box must not refuse jobs
        "OPENAI_API_KEY": "sk-test-never-used",
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_runtime", "start"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        livekit_server.wait_for_worker(AGENT_NAME, timeout=60)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def stored_events(redis_client: redis.Redis, settings: Settings, call_id: str) -> list[dict]:
    raw = redis_client.lrange(f"{settings.redis_prefix}:call:{call_id}:events", 0, -1)
    return [json.loads(item) for item in raw]


async def test_agent_receives_the_dispatchers_contract_and_reports_back(
    agent_worker: subprocess.Popen[bytes],
    tenant: Tenant,
    lk: Any,
    worker: WorkerProcess,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    agent = await tenant.create_agent(
        worker_name=AGENT_NAME,
        instructions="Remind {{firstName}} about {{appointment|the appointment}}.",
    )
    await tenant.register_number()
    accepted = await tenant.place_call(
        to="+14155552671",
        call_agent_id=agent["id"],
        dynamic_variables={"firstName": "Ada"},
        metadata={"crm_id": "secret-42"},
    )
    call_id = accepted.json()["callId"]

    job = await lk.wait_for_job_async(room_name=accepted.json()["roomName"], timeout=30)
    assert job.agent_name == AGENT_NAME
    assert json.loads(job.metadata)["call_id"] == call_id

    def types() -> list[str]:
        return [event["type"] for event in stored_events(redis_client, settings, call_id)]

    # The agent parsed the contract (agent.started), then could not join the room: the test
    # server has no media, so the call must end failed instead of waiting for the agent.
    await async_wait_until(lambda: "call.failed" in types(), timeout=60, what="call.failed")
    events = stored_events(redis_client, settings, call_id)
    started = next(event for event in events if event["type"] == "agent.started")
    assert started["data"]["missing_variables"] == []
    failed = next(event for event in events if event["type"] == "call.failed")
    assert failed["data"]["reason"] == "cannot_join_room"
    assert [event["sequence"] for event in events] == list(range(1, len(events) + 1))

    view = (await tenant.request("GET", f"/v1/api/call/{call_id}")).json()
    assert view["status"] == "failed"
    assert (view["errorCode"], view["endReason"]) == ("CANNOT_JOIN_ROOM", "cannot_join_room")
    # The agent never became ready, so nobody's phone rang.
    assert lk.count("SIP", "CreateSIPParticipant") == 0
