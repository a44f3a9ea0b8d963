"""Minute balances over real HTTP against the live API and real Redis: credits, the
accept's refusal, the usage report and the agent's reservation endpoint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis

from api.security import event_token
from api.services.usage import MAX_WORKSPACE_DAYS
from api.settings import Settings
from tests.calls import call_status, report_ready
from tests.conftest import Tenant, create_tenant
from tests.support import ADMIN_TOKEN, WorkerProcess, async_wait_until, redis_snapshot

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def agent(tenant: Tenant) -> dict[str, Any]:
    created = await tenant.create_agent()
    await tenant.register_number("+15105550100")
    return created


async def add_minutes(http: httpx.AsyncClient, workspace_id: str, minutes: float) -> httpx.Response:
    return await http.post(
        f"/v1/admin/workspaces/{workspace_id}/credits", json={"minutes": minutes}, headers=ADMIN
    )


async def test_50_concurrent_accepts_over_http_on_a_balance_for_10_accept_exactly_10(
    client: httpx.AsyncClient, tenant: Tenant, agent: dict[str, Any]
) -> None:
    assert (await add_minutes(client, tenant.id, 10)).status_code == 200
    body = {"to": "+14155552671", "call_agent_id": agent["id"]}
    # Separate connections: the API serves them concurrently.
    async with httpx.AsyncClient(
        base_url=str(client.base_url), timeout=30, limits=httpx.Limits(max_connections=50)
    ) as http:
        answers = await asyncio.gather(
            *(http.post("/v1/api/call", json=body, headers=tenant.headers) for _ in range(50))
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 10 + [402] * 40
    refused = [answer.json() for answer in answers if answer.status_code == 402]
    assert {error["code"] for error in refused} == {"INSUFFICIENT_BALANCE"}
    shown = (await client.get(f"/v1/admin/workspaces/{tenant.id}", headers=ADMIN)).json()
    assert shown["balance"] == {"seconds": 0, "minutes": 0.0}
    listed = (await tenant.request("GET", "/v1/api/calls")).json()
    assert len(listed["calls"]) == 10


async def test_a_refused_call_leaves_nothing_behind(
    client: httpx.AsyncClient,
    tenant: Tenant,
    agent: dict[str, Any],
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    assert (await add_minutes(client, tenant.id, 0.5)).json()["balance"]["seconds"] == 30
    before = redis_snapshot(redis_client, settings.redis_prefix)
    for extra in ({}, {"delay_seconds": 3600}):
        refused = await tenant.place_call(
            to="+14155552671", call_agent_id=agent["id"], headers={"Idempotency-Key": "k"}, **extra
        )
        assert refused.status_code == 402, refused.text
        assert refused.json()["details"] == {"balanceSeconds": 30, "requiredSeconds": 60}
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


async def test_credits_add_show_and_return_to_unlimited(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    shown = (await client.get(f"/v1/admin/workspaces/{tenant.id}", headers=ADMIN)).json()
    assert shown["balance"] is None
    first = await add_minutes(client, tenant.id, 500)
    assert first.json() == {
        "workspaceId": tenant.id,
        "balance": {"seconds": 30_000, "minutes": 500.0},
    }
    assert (await add_minutes(client, tenant.id, 0.25)).json()["balance"]["seconds"] == 30_015
    listed = (await client.get("/v1/admin/workspaces", headers=ADMIN)).json()["workspaces"]
    assert [w["balance"] for w in listed if w["workspaceId"] == tenant.id] == [
        {"seconds": 30_015, "minutes": 500.25}
    ]
    for minutes in (0, -1, "many", 10**9):
        bad = await add_minutes(client, tenant.id, minutes)  # type: ignore[arg-type]
        assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_ERROR")
    missing = await add_minutes(client, "ws_missing", 5)
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
    cleared = await client.delete(f"/v1/admin/workspaces/{tenant.id}/credits", headers=ADMIN)
    assert cleared.json() == {"workspaceId": tenant.id, "balance": None}


async def test_usage_counts_ended_calls_by_day_and_outcome(
    client: httpx.AsyncClient, tenant: Tenant, agent: dict[str, Any]
) -> None:
    other = await create_tenant(client, "other")
    await add_minutes(client, tenant.id, 5)
    placed = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    call_id = placed.json()["callId"]
    canceled = await tenant.request("POST", f"/v1/api/call/{call_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    today = datetime.now(UTC).date().isoformat()
    # A canceled call was never answered: it cost nothing and its minute came back.
    shown = (await client.get(f"/v1/admin/workspaces/{tenant.id}", headers=ADMIN)).json()
    assert shown["balance"]["seconds"] == 300
    report = (await tenant.request("GET", "/v1/api/usage")).json()
    day = {"calls": 1, "minutes": 0.0, "billedSeconds": 0, "outcomes": {"canceled": 1}}
    assert report["to"] == today
    assert report["days"] == [{"date": today} | day]
    assert report["total"] == day
    everyone = (await client.get(f"/v1/admin/usage?from={today}&to={today}", headers=ADMIN)).json()
    by_workspace = {w["workspaceId"]: w["total"]["calls"] for w in everyone["workspaces"]}
    assert by_workspace == {tenant.id: 1, other.id: 0}
    for query in (
        "from=2026-13-01",
        "to=yesterday",
        "from=2026-02-01&to=2026-01-01",
        "from=2024-01-01&to=2026-01-01",
    ):
        bad = await tenant.request("GET", f"/v1/api/usage?{query}")
        assert (bad.status_code, bad.json()["code"]) == (422, "INVALID_DATE_RANGE"), query


async def test_every_workspaces_usage_reads_at_most_100_000_workspace_days(
    client: httpx.AsyncClient,
) -> None:
    """274 workspaces: a 365-day report would read 100,010 usage hashes, refused before
    any is read; 364 days (99,736) are answered."""
    workspaces = 100_000 // 365 + 1
    assert workspaces * 364 <= MAX_WORKSPACE_DAYS < workspaces * 365
    # Created 20 at a time: all at once, a loaded machine ran out the client's pool timeout
    # (the setup, not the subject).
    created: list[httpx.Response] = []
    for first in range(0, workspaces, 20):
        created += await asyncio.gather(
            *(
                client.post("/v1/admin/workspaces", json={"name": f"w{n}"}, headers=ADMIN)
                for n in range(first, min(first + 20, workspaces))
            )
        )
    assert len(created) == workspaces
    assert {answer.status_code for answer in created} == {201}
    year = await client.get("/v1/admin/usage?from=2025-01-01&to=2025-12-31", headers=ADMIN)
    assert (year.status_code, year.json()["code"]) == (422, "INVALID_DATE_RANGE")
    assert year.json()["details"]["maxDays"] == 364
    shorter = await client.get("/v1/admin/usage?from=2025-01-01&to=2025-12-30", headers=ADMIN)
    assert shorter.status_code == 200, shorter.text
    assert len(shorter.json()["workspaces"]) == workspaces


async def test_the_reservation_endpoint_takes_the_calls_token_only(
    client: httpx.AsyncClient, tenant: Tenant, agent: dict[str, Any], settings: Settings
) -> None:
    placed = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
    call_id = placed.json()["callId"]
    url = f"/v1/internal/calls/{call_id}/reservation"
    token = event_token(call_id, settings.event_signing_key)
    wrong = await client.post(url, headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "UNAUTHORIZED")
    # Unmetered: always granted, nothing held.
    granted = await client.post(url, headers={"Authorization": f"Bearer {token}"})
    assert granted.json() == {"granted": True, "reservedSeconds": 0}
    missing = await client.post(
        "/v1/internal/calls/nope/reservation",
        headers={"Authorization": f"Bearer {event_token('nope', settings.event_signing_key)}"},
    )
    assert missing.status_code == 404


async def test_a_worker_killed_mid_call_leaves_the_call_billed_once(
    client: httpx.AsyncClient,
    tenant: Tenant,
    agent: dict[str, Any],
    lk: Any,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    """The worker dies (SIGKILL) with the dial sent and its answer not yet back; a second
    one takes the job over. The call keeps the minute its accept reserved, is answered and
    ended, its end is reported again by another path: billed once, the rest given back."""
    await add_minutes(client, tenant.id, 10)
    # Faster redelivery than production (10 s) keeps the test short; same mechanism.
    fast = settings.model_copy(update={"heartbeat_timeout_ms": 2_000, "worker_timeout_ms": 500})
    lk.inject("SIP", "CreateSIPParticipant", delay_after=60)
    first = WorkerProcess(fast).start()
    call_id = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()[
        "callId"
    ]
    await report_ready(tenant, settings, call_id)
    await async_wait_until(lambda: lk.count("SIP", "CreateSIPParticipant") >= 1, timeout=20)
    first.kill()
    looks_before = lk.count("RoomService", "ListParticipants")
    second = WorkerProcess(fast).start()
    try:
        await async_wait_until(
            lambda: lk.count("RoomService", "ListParticipants") > looks_before,
            timeout=60,
            what="the redelivered run's look at the room",
        )
        # The leg is in the room: the call stays dialing, and the callee answers.
        assert (await call_status(tenant, call_id))["status"] == "dialing"
        await _agent_event(client, settings, call_id, "call.answered")
        await _agent_event(client, settings, call_id, "call.ended", {"status": "completed"})
        again = await _agent_event(client, settings, call_id, "call.ended", {"status": "completed"})
        assert again["outcome"] == "stale"
    finally:
        second.stop()
    assert lk.count("SIP", "CreateSIPParticipant") == 1
    view = await call_status(tenant, call_id)
    billed = int(redis_client.hget(f"{settings.redis_prefix}:call:{call_id}", "billed_s") or -1)
    # answered, then ended by a later request: at least a second, at most what it reserved
    assert view["status"] == "completed" and 1 <= billed <= 60
    shown = (await client.get(f"/v1/admin/workspaces/{tenant.id}", headers=ADMIN)).json()
    assert shown["balance"]["seconds"] == 600 - billed
    report = (await tenant.request("GET", "/v1/api/usage")).json()
    assert report["total"]["calls"] == 1 and report["total"]["billedSeconds"] == billed


async def _agent_event(
    http: httpx.AsyncClient,
    settings: Settings,
    call_id: str,
    event_type: str,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response = await http.post(
        f"/v1/internal/calls/{call_id}/events",
        json={"type": event_type, "data": data or {}},
        headers={"Authorization": f"Bearer {event_token(call_id, settings.event_signing_key)}"},
    )
    assert response.status_code == 200, response.text
    return response.json()
