"""Call windows end to end: real API, real Redis, a real worker, the LiveKit test server.
A call is never started outside its window: it waits `scheduled` for the next opening,
and one claimed or dispatched after its window closed goes back to `scheduled`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from api.settings import Settings
from tests.calls import call_status, dial_times, ms_from_iso, wait_dialed, wait_status
from tests.conftest import Tenant
from tests.support import ADMIN_TOKEN, WorkerProcess, async_wait_until, redis_snapshot

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # immediate: the dial follows the dispatch without an agent; a short agent-ready
    # timeout is the time an opening must last for a call to start in it
    return settings.model_copy(update={"dial_mode": "immediate", "agent_ready_timeout_seconds": 2})


@pytest.fixture
async def agent(tenant: Tenant) -> dict[str, Any]:
    await tenant.register_number("+15105550100")
    return await tenant.create_agent()


def _wall(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


async def _events(tenant: Tenant, call_id: str) -> list[dict[str, Any]]:
    response = await tenant.request("GET", f"/v1/api/call/{call_id}/events")
    return list(response.json()["events"])


async def test_a_window_that_opens_in_2_s_holds_the_call_until_then(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess
) -> None:
    # Whole seconds (window times carry seconds): at least 4 s left for the accept, so a
    # slow machine still accepts before the opening.
    opens = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    window = {"days": EVERY_DAY, "start": _wall(opens), "end": _wall(opens + timedelta(hours=1))}
    accepted = (
        await tenant.place_call(
            to="+14155552671", call_agent_id=agent["id"], call_window=window | {"timezone": "UTC"}
        )
    ).json()
    view = await call_status(tenant, accepted["callId"])
    assert view["status"] == "scheduled"
    assert view["scheduledReason"] == "call_window"
    assert ms_from_iso(view["scheduledAt"]) == int(opens.timestamp() * 1000)
    await wait_dialed(tenant, accepted["callId"])
    (dialed_at,) = dial_times(lk, accepted["roomName"])
    assert dialed_at >= opens.timestamp()
    scheduled = (await _events(tenant, accepted["callId"]))[0]
    assert scheduled["type"] == "call.scheduled"
    assert scheduled["data"]["reason"] == "call_window"


async def test_a_call_dispatched_after_its_window_closed_waits_for_the_next_opening(
    tenant: Tenant,
    agent: dict[str, Any],
    lk: Any,
    settings: Settings,
    redis_client: redis.Redis,
) -> None:
    """Accepted while its window is open (queued at once), dispatched only once it closes
    (no worker ran): the dispatcher sends it back to `scheduled` for tomorrow's opening."""
    now = datetime.now(UTC).replace(microsecond=0)
    # At least 5 s for the accept before the last start the window admits (close - 2 s).
    closes = now + timedelta(seconds=8)
    window = {"days": EVERY_DAY, "start": _wall(now - timedelta(hours=1)), "end": _wall(closes)}
    window["timezone"] = "UTC"
    accepted = (
        await tenant.place_call(to="+14155552671", call_agent_id=agent["id"], call_window=window)
    ).json()
    call_id = accepted["callId"]
    assert (await call_status(tenant, call_id))["status"] == "queued"
    # Within the agent-ready timeout (2 s) of its close the window no longer admits a start.
    await async_wait_until(
        lambda: time.time() > closes.timestamp() - 2, timeout=10, what="the window closing"
    )
    worker = WorkerProcess(settings).start()
    try:
        view = await wait_status(tenant, call_id, {"scheduled"})
    finally:
        worker.stop()
    assert view["scheduledReason"] == "call_window"
    tomorrow = now - timedelta(hours=1) + timedelta(days=1)
    assert ms_from_iso(view["scheduledAt"]) == int(tomorrow.timestamp() * 1000)
    assert view["jobId"] != accepted["jobId"]  # the claim will write a new message
    events = await _events(tenant, call_id)
    assert [event["type"] for event in events] == ["call.queued", "call.scheduled"]
    assert events[1]["data"]["reason"] == "call_window"
    assert lk.count("RoomService", "CreateRoom") == 0
    due = redis_client.zscore(f"{settings.redis_prefix}:scheduled:due", call_id)
    assert due == ms_from_iso(view["scheduledAt"])


async def test_a_move_lands_on_the_windows_next_opening(
    tenant: Tenant, agent: dict[str, Any]
) -> None:
    opens = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    window = {"days": EVERY_DAY, "start": _wall(opens), "end": _wall(opens + timedelta(hours=1))}
    accepted = (
        await tenant.place_call(
            to="+14155552671",
            call_agent_id=agent["id"],
            delay_seconds=9000,  # 2.5 h: inside the window
            call_window=window | {"timezone": "UTC"},
        )
    ).json()
    view = await call_status(tenant, accepted["callId"])
    assert view["scheduledReason"] == "scheduled_time"  # the window is open at that time
    moved = await tenant.request(
        "PATCH", f"/v1/api/call/{accepted['callId']}", json={"delay_seconds": 0}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["scheduledReason"] == "call_window"
    assert ms_from_iso(moved.json()["scheduledAt"]) == int(opens.timestamp() * 1000)


@pytest.mark.parametrize(
    "window",
    [
        {"days": ["mon", "funday"], "start": "09:00", "end": "17:00"},
        {"days": [], "start": "09:00", "end": "17:00"},
        {"days": ["mon", "mon"], "start": "09:00", "end": "17:00"},
        {"days": ["mon"], "start": "25:00", "end": "17:00"},
        {"days": ["mon"], "start": "9:00", "end": "17:00"},
        {"days": ["mon"], "start": "09:00", "end": "09:00:00"},
        {"days": ["mon"], "start": "09:00", "end": "17:00", "timezone": "Mars/Olympus"},
        {"days": ["mon"], "start": "09:00", "end": "17:00", "timezone": "../etc"},
        {"days": ["mon"], "start": "09:00", "end": "17:00", "timezone": "localtime"},
        {"days": ["mon"], "start": "09:00", "end": "17:00", "extra": 1},
    ],
)
async def test_a_bad_window_is_refused_and_writes_nothing(
    tenant: Tenant,
    agent: dict[str, Any],
    redis_client: redis.Redis,
    settings: Settings,
    window: dict[str, Any],
) -> None:
    before = redis_snapshot(redis_client, settings.redis_prefix)
    response = await tenant.place_call(
        to="+14155552671", call_agent_id=agent["id"], call_window=window
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert redis_snapshot(redis_client, settings.redis_prefix) == before


def _later_window() -> tuple[datetime, dict[str, Any]]:
    """A UTC window opening in 2 hours (closed now), one hour long."""
    opens = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    end = _wall(opens + timedelta(hours=1))
    return opens, {"days": EVERY_DAY, "start": _wall(opens), "end": end, "timezone": "UTC"}


async def test_an_agents_window_holds_its_calls_unless_a_call_names_its_own(
    tenant: Tenant,
) -> None:
    await tenant.register_number("+15105550100")
    opens, window = _later_window()
    agent = await tenant.create_agent(call_window=window)
    shown = (await tenant.request("GET", f"/v1/api/agents/{agent['id']}")).json()
    assert shown["callWindow"] == window | {"days": EVERY_DAY}
    held = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()
    view = await call_status(tenant, held["callId"])
    assert (view["status"], view["scheduledReason"]) == ("scheduled", "call_window")
    assert ms_from_iso(view["scheduledAt"]) == int(opens.timestamp() * 1000)
    now = datetime.now(UTC)
    own = {
        "days": EVERY_DAY,
        "start": _wall(now - timedelta(hours=1)),
        "end": _wall(now + timedelta(hours=1)),
        "timezone": "UTC",
    }
    placed = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"], call_window=own)
    assert (await call_status(tenant, placed.json()["callId"]))["status"] == "queued"


async def test_the_workspace_default_window_holds_calls_that_name_none(
    tenant: Tenant, agent: dict[str, Any], redis_client: redis.Redis, settings: Settings
) -> None:
    opens, window = _later_window()
    path = f"/v1/admin/workspaces/{tenant.id}/call-window"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    before = redis_snapshot(redis_client, settings.redis_prefix)
    bad = window | {"timezone": "Mars/Olympus"}
    refused = await tenant.http.put(path, json={"call_window": bad}, headers=admin)
    assert refused.status_code == 422, refused.text
    assert redis_snapshot(redis_client, settings.redis_prefix) == before
    response = await tenant.http.put(path, json={"call_window": window}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["callWindow"] == window
    held = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()
    view = await call_status(tenant, held["callId"])
    assert (view["status"], view["scheduledReason"]) == ("scheduled", "call_window")
    assert ms_from_iso(view["scheduledAt"]) == int(opens.timestamp() * 1000)
    cleared = await tenant.http.put(path, json={"call_window": None}, headers=admin)
    assert cleared.json()["callWindow"] is None
    placed = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()
    assert (await call_status(tenant, placed["callId"]))["status"] == "queued"
