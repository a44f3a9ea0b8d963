"""Operations: readiness against a Redis that goes away and comes back, metrics, graceful
worker shutdown, and the command-line entry points."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
import redis

from api.settings import Settings
from tests.conftest import Tenant, create_tenant, delete_prefix
from tests.support import (
    ROOT,
    ApiServer,
    SpareRedis,
    WorkerProcess,
    async_wait_until,
    free_port,
)

# The call's order is not this module's subject: calls dial right after CreateRoom.
pytestmark = pytest.mark.dial_immediately


async def _place_one(http: httpx.AsyncClient, name: str) -> httpx.Response:
    tenant = await create_tenant(http, name)
    agent = await tenant.create_agent()
    await tenant.register_number("+15105550100", sip_trunk_id="ST_spare")
    return await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])


async def test_readiness_and_calls_follow_redis_down_and_back(
    spare_redis: SpareRedis, settings: Settings, lk: Any
) -> None:
    server = ApiServer(settings.model_copy(update={"redis_url": spare_redis.url}), free_port())
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {
                "redis": "ok",
                "livekit": "ok",
                "livekitWebhooks": "none received yet",
            }
            before = await _place_one(http, "before")
            assert before.status_code == 200, before.text
            headers = {"x-workspace-id": "ws_any", "x-api-key": "od_any"}

            spare_redis.stop()
            down = await http.get("/readyz")
            assert down.status_code == 503
            assert down.json()["checks"]["redis"].startswith("error")
            assert (await http.get("/healthz")).status_code == 200  # alive, just not ready
            refused = await http.post("/v1/api/call", json={}, headers=headers)
            assert refused.status_code == 503
            assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
            assert refused.headers["retry-after"] == "1"

            spare_redis.start()

            async def recovered() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await async_wait_until(recovered, timeout=15, what="readiness to recover")
            # The accept path's connection comes back too, and reloads its script into the
            # restarted Redis.
            after = await _place_one(http, "after")
            assert after.status_code == 200, after.text
    finally:
        server.stop()


async def test_readiness_reports_livekit_down_but_stays_ready(settings: Settings, lk: Any) -> None:
    dead = settings.model_copy(update={"livekit_url": f"http://127.0.0.1:{free_port()}"})
    server = ApiServer(dead, free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.get("/readyz")
        # Every replica shares LiveKit: the API stays in the Service and says it is degraded.
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["checks"]["redis"] == "ok"
        assert response.json()["checks"]["livekit"].startswith("error")
    finally:
        server.stop()


def _metric(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{labels} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_accepted_and_refused_calls(
    tenant: Tenant, client: httpx.AsyncClient
) -> None:
    before = (await client.get("/metrics")).text
    agent = await tenant.create_agent()
    await tenant.register_number()
    assert (
        await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    ).status_code == 200
    assert (await tenant.place_call(to="12", call_agent_id=agent["id"])).status_code == 400
    after = (await client.get("/metrics")).text
    accepted = "outdial_calls_accepted_total"
    refused = ("outdial_calls_refused_total", '{code="INVALID_NUMBER"}')
    assert _metric(after, accepted) == _metric(before, accepted) + 1
    assert _metric(after, *refused) == _metric(before, *refused) + 1
    assert 'outdial_queue_depth{queue="outdial.dial"} 1.0' in after


async def test_worker_finishes_its_message_on_sigterm(
    tenant: Tenant, lk: Any, settings: Settings, api_server: Any
) -> None:
    agent = await tenant.create_agent()
    await tenant.register_number()
    lk.inject("RoomService", "CreateRoom", delay_before=2.0)
    worker = WorkerProcess(settings).start()
    call_id = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()[
        "callId"
    ]
    await lk.wait_for_async("RoomService", "CreateRoom", timeout=20)
    started = time.monotonic()
    exit_code = worker.terminate(timeout=30)
    assert exit_code == 0, worker.log()
    view = (await tenant.request("GET", f"/v1/api/call/{call_id}")).json()
    # The in-flight dial finished before the process left; nothing was left half done.
    assert view["status"] == "dialing" and view["sipCallId"], view
    assert lk.count("SIP", "CreateSIPParticipant") == 1
    assert time.monotonic() - started < 30


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", [[], ["api"], ["worker"], ["workspace", "create"]])
def test_cli_entry_points_start(command: list[str]) -> None:
    result = _cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: outdial" in result.stdout


def test_cli_agent_entry_point_starts() -> None:
    result = _cli("agent", "--help")
    assert result.returncode == 0, result.stderr
    assert "start" in result.stdout and "dev" in result.stdout


def test_cli_creates_a_workspace(redis_client: redis.Redis, settings: Settings) -> None:
    from tests.support import settings_env

    env = {**settings_env(settings), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    # no API URL given: written straight into Redis (api/cli/client/commands.py)
    result = _cli("workspace", "create", "--name", "cli-made", "--json", env=env)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["apiKey"].startswith("od_") and created["webhookSecret"].startswith("whsec_")
    stored = redis_client.hgetall(f"{settings.redis_prefix}:ws:{created['workspaceId']}")
    assert stored[b"name"] == b"cli-made"
    assert created["apiKey"].encode() not in stored.values()  # only its hash is kept
    delete_prefix(redis_client, settings.redis_prefix)


async def test_api_drains_in_flight_requests_on_sigterm(settings: Settings, lk: Any) -> None:
    from tests.support import settings_env

    port = free_port()
    env = {**settings_env(settings), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    api = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await async_wait_until(up, timeout=30, what="the API to start")
            # A readiness probe held 1 s by LiveKit is in flight when SIGTERM arrives.
            lk.inject("RoomService", "ListRooms", delay_before=1.0)
            probe = asyncio.create_task(http.get("/readyz"))
            await lk.wait_for_async("RoomService", "ListRooms", timeout=10)
            api.send_signal(signal.SIGTERM)
            response = await probe
        assert response.status_code == 200, response.text
        # uvicorn re-raises the signal once it has drained: the exit is the SIGTERM itself.
        assert api.wait(timeout=20) in (0, -signal.SIGTERM)
    finally:
        if api.poll() is None:
            api.kill()


async def test_metrics_show_the_dialers_backlog(
    tenant: Tenant, client: httpx.AsyncClient, settings: Settings, monkeypatch: Any
) -> None:
    """No worker runs: the admissions are made here, on limits the operator set, and nobody
    paces or claims, so the waiting calls, held slots and overdue looks stay put."""
    from api.store import probes
    from api.store.base import open_store
    from api.store.pacing import admit

    admin = {"Authorization": "Bearer " + settings.admin_token}
    trunks = {"ST_metricsbusy": "+15105550101", "ST_metricsslow": "+15105550102"}
    for trunk, number in trunks.items():
        await tenant.register_number(number, sip_trunk_id=trunk)
    limits: dict[str, dict[str, float]] = {
        "ST_metricsbusy": {"max_concurrent_calls": 1},
        "ST_metricsslow": {"max_calls_per_second": 0.1},  # one admission per 10 s
    }
    for trunk, body in limits.items():
        answer = await client.put(f"/v1/admin/trunks/{trunk}/limits", json=body, headers=admin)
        assert answer.status_code == 200, answer.text
    agent_id = (await tenant.create_agent())["id"]
    calls: dict[str, list[str]] = {}
    for trunk, number in trunks.items():
        for _ in range(2):
            placed = await tenant.place_call(
                to="+14155552671", call_agent_id=agent_id, from_number=number
            )
            calls.setdefault(trunk, []).append(placed.json()["callId"])
    store = open_store(settings)
    try:
        outcomes = [(await admit(store, c)) for pair in calls.values() for c in pair]
        assert [(o.outcome, o.reason) for o in outcomes] == [
            ("admitted", None),
            ("waiting", "trunk_concurrency"),
            ("admitted", None),
            ("waiting", "trunk_rate"),
        ]
        # The series cap: with room for one trunk, the other's slot is counted as "other"
        # (the API serves from this process: the cap is back before it is scraped).
        with monkeypatch.context() as patched:
            patched.setattr(probes, "SLOT_TRUNKS_SHOWN", 1)
            capped = await probes.read_pacing_backlog(store)
    finally:
        await store.aclose()
    assert capped.slots == {"ST_metricsbusy": 1, "other": 1}
    for seconds in (1, 3600):
        later = await tenant.place_call(
            to="+14155552671", call_agent_id=agent_id, delay_seconds=seconds
        )
        assert later.status_code == 200, later.text

    text = (await client.get("/metrics")).text
    assert _metric(text, "outdial_calls_waiting", '{reason="trunk_concurrency"}') == 1
    assert _metric(text, "outdial_calls_waiting", '{reason="trunk_rate"}') == 1
    assert 'outdial_calls_waiting{reason="workspace_concurrency"} 0.0' in text
    assert _metric(text, "outdial_trunk_slots_in_use", '{trunk="ST_metricsbusy"}') == 1
    assert _metric(text, "outdial_trunk_slots_in_use", '{trunk="ST_metricsslow"}') == 1
    assert _metric(text, "outdial_scheduled_calls", '{state="later"}') >= 1

    # Nobody claims the call due in 1 s, nor looks at the trunks the pacer should look at
    # again (held by concurrency: within 5 s): both lags grow.
    async def overdue() -> bool:
        text = (await client.get("/metrics")).text
        return (
            _metric(text, "outdial_scheduled_calls", '{state="due"}') == 1
            and _metric(text, "outdial_scheduled_calls", '{state="later"}') == 1
            and _metric(text, "outdial_scheduler_lag_seconds") > 0
            and _metric(text, "outdial_pacer_lag_seconds") > 0
        )

    await async_wait_until(overdue, timeout=20, interval=0.25, what="both lags seen")
