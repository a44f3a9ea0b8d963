"""Slots never leak (issue 11, item 4), end to end: real API, Redis, Dramatiq worker and the
LiveKit test server. The trunk takes one call at a time, so a second call waits
(`trunk_concurrency`) while the first holds the slot; on every way the first call can end
(failed dial, no answer, canceled, a killed worker's redelivered job, an end only the
reconciler finds) its slot must come back in the step that records the end, and the
waiting call must be admitted with it: nothing lost, nothing held twice.

Also here: the dial step re-sent after the trunk's dial-rate wait in `agent_ready` mode
(two agents ready at the same moment on a 1 call/s trunk are dialed a turn apart, once
each). Budgets are shortened through the settings; the mechanism is the production one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from api.settings import Settings
from api.store.keys import Keys
from tests.calls import report_ready, wait_dialed, wait_status
from tests.conftest import Tenant
from tests.support import WorkerProcess, async_wait_until, report_agent

SHORT = {
    "trunk_max_concurrent_calls": 1,
    "agent_ready_timeout_seconds": 3,
    "deadline_margin_seconds": 2,
    "reconcile_interval_seconds": 0.2,
    "reconcile_lease_seconds": 3,
}
BODY = {"to": "+14155552671"}
DIAL_RATE = 1


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=SHORT)


class Slots:
    """The trunk's and the workspace's slot sets, read from Redis."""

    def __init__(self, client: redis.Redis, settings: Settings, tenant: Tenant) -> None:
        self._client = client
        self._keys = Keys(settings.redis_prefix)
        self._tenant = tenant
        self.trunk = ""

    def holders(self) -> tuple[set[str], set[str]]:
        trunk = self._client.zrange(self._keys.trunk_slots(self.trunk), 0, -1)
        ws = self._client.zrange(self._keys.workspace_slots(self._tenant.id), 0, -1)
        return {m.decode() for m in trunk}, {m.decode() for m in ws}

    def waiting_for(self, call_id: str) -> str | None:
        value = self._client.hget(self._keys.call(call_id), "waiting_for")
        return value.decode() if value else None

    async def wait_held_by(self, *call_ids: str) -> None:
        expected = set(call_ids)
        await async_wait_until(
            lambda: self.holders() == (expected, expected),
            timeout=30,
            what=f"slots held by {sorted(expected)}",
        )


@pytest.fixture
async def slots(
    tenant: Tenant, redis_client: redis.Redis, settings: Settings, lk: Any, api_server: Any
) -> Slots:
    lk.webhook_url = api_server.url + "/v1/livekit/webhook"
    held = Slots(redis_client, settings, tenant)
    held.trunk = (await tenant.register_number("+15105550100"))["sipTrunkId"]
    return held


@pytest.fixture
async def agent_id(tenant: Tenant) -> str:
    return str((await tenant.create_agent(ring_timeout_seconds=5, max_duration_seconds=10))["id"])


async def _place(tenant: Tenant, agent_id: str) -> str:
    response = await tenant.place_call(**BODY, call_agent_id=agent_id)
    assert response.status_code == 200, response.text
    return str(response.json()["callId"])


async def _first_holds_second_waits(tenant: Tenant, agent_id: str, slots: Slots) -> tuple[str, str]:
    """The first call takes the trunk's one slot; the second waits for it."""
    first = await _place(tenant, agent_id)
    await slots.wait_held_by(first)
    second = await _place(tenant, agent_id)
    await async_wait_until(
        lambda: slots.waiting_for(second) == "trunk_concurrency",
        what="the second call waits for the trunk",
    )
    assert slots.holders() == ({first}, {first})
    return first, second


async def _released_and_passed_on(tenant: Tenant, slots: Slots, first: str, second: str) -> None:
    """The first call's slot came back and went to the waiting call, which is dispatched."""
    await slots.wait_held_by(second)
    view = await wait_status(tenant, second, {"waiting_for_agent"})
    assert "waitingFor" not in view or view["waitingFor"] is None
    assert slots.waiting_for(second) is None


async def test_a_failed_dial_gives_its_slot_back(
    tenant: Tenant, agent_id: str, slots: Slots, lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    lk.inject_sip_error(503, "Service Unavailable")
    first, second = await _first_holds_second_waits(tenant, agent_id, slots)
    await report_ready(tenant, settings, first)
    view = await wait_status(tenant, first, {"failed"})
    assert view["endReason"] == "trunk_failure"
    await _released_and_passed_on(tenant, slots, first, second)
    assert lk.count("SIP", "CreateSIPParticipant") == 1


async def test_no_answer_gives_its_slot_back(
    tenant: Tenant, agent_id: str, slots: Slots, lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    first, second = await _first_holds_second_waits(tenant, agent_id, slots)
    await report_ready(tenant, settings, first)
    room = (await wait_dialed(tenant, first))["roomName"]
    await lk.play_scenario_async(room, "no_answer")
    assert (await wait_status(tenant, first, {"no_answer"}))["endReason"] == "no_answer"
    await _released_and_passed_on(tenant, slots, first, second)


async def test_a_canceled_call_gives_its_slot_back(
    tenant: Tenant, agent_id: str, slots: Slots, worker: WorkerProcess, settings: Settings
) -> None:
    first, second = await _first_holds_second_waits(tenant, agent_id, slots)
    await report_ready(tenant, settings, first)
    await wait_dialed(tenant, first)
    response = await tenant.request("POST", f"/v1/api/call/{first}/cancel")
    assert response.json()["status"] == "canceled"
    await _released_and_passed_on(tenant, slots, first, second)


async def test_an_end_only_the_reconciler_finds_gives_its_slot_back(
    tenant: Tenant, agent_id: str, slots: Slots, lk: Any, worker: WorkerProcess
) -> None:
    """No agent ever reports ready and no webhook comes: the call's deadline ends it."""
    first, second = await _first_holds_second_waits(tenant, agent_id, slots)
    view = await wait_status(tenant, first, {"failed"}, timeout=30)
    assert view["errorCode"] == "AGENT_UNAVAILABLE"
    await _released_and_passed_on(tenant, slots, first, second)
    # The second call's end is the reconciler's too: nothing is held afterwards.
    await wait_status(tenant, second, {"failed"}, timeout=30)
    await slots.wait_held_by()
    assert lk.count("SIP", "CreateSIPParticipant") == 0


async def test_a_killed_workers_call_keeps_one_slot_and_gives_it_back_once(
    tenant: Tenant, agent_id: str, slots: Slots, lk: Any, settings: Settings, api_server: Any
) -> None:
    """The worker dies in the first call's dispatch after its admission; the redelivered job
    finds the slots held by its call (no second admission, the waiting call stays waiting),
    carries the call on, and its end gives the slot back."""
    # Faster redelivery than production (10 s) keeps the suite short; same mechanism (the
    # settings want it at least four idle polls long). Short polls: a message maintenance
    # moves back is not announced by a wake-up, the next poll finds it.
    fast = settings.model_copy(update={"heartbeat_timeout_ms": 2_000, "worker_timeout_ms": 100})
    lk.inject("RoomService", "CreateRoom", delay_before=30)
    first_worker = WorkerProcess(fast).start()
    try:
        first, second = await _first_holds_second_waits(tenant, agent_id, slots)
        await async_wait_until(lambda: lk.count("RoomService", "CreateRoom") >= 1, timeout=20)
    finally:
        first_worker.kill()
    lk.clear_faults()
    lk.release()
    second_worker = WorkerProcess(fast).start()
    try:
        await report_ready(tenant, settings, first)
        await wait_dialed(tenant, first, timeout=30)
        # Redelivered and dialed: still one slot, still the first call's.
        assert slots.holders() == ({first}, {first})
        assert slots.waiting_for(second) == "trunk_concurrency"
        await tenant.request("POST", f"/v1/api/call/{first}/cancel")
        await _released_and_passed_on(tenant, slots, first, second)
    finally:
        second_worker.stop()
    assert lk.count("SIP", "CreateSIPParticipant") == 1


async def test_a_dial_over_the_trunks_rate_is_sent_again_after_its_turn(
    tenant: Tenant, agent_id: str, lk: Any, settings: Settings, api_server: Any
) -> None:
    """Two agents ready at the same moment on a 1 call/s trunk: the second dial step finds
    the trunk's dial turn taken and is sent again (delayed) for the next turn; each call is
    dialed once, the second at least one turn after the first."""
    paced = settings.model_copy(
        update={"trunk_max_calls_per_second": DIAL_RATE, "trunk_max_concurrent_calls": 0}
    )
    await tenant.register_number("+15105550100")
    process = WorkerProcess(paced).start()
    try:
        calls = [await _place(tenant, agent_id) for _ in range(2)]
        for call_id in calls:
            await wait_status(tenant, call_id, {"waiting_for_agent"})
        await asyncio.gather(*(report_agent(tenant.http, paced, c) for c in calls))
        await asyncio.gather(*(wait_dialed(tenant, c) for c in calls))
    finally:
        process.stop()
    dials = sorted(lk.requests("SIP", "CreateSIPParticipant"), key=lambda d: d.received_at)
    assert len(dials) == 2
    assert len({d.request.room_name for d in dials}) == 2
    # One turn is (1000 + guard) / rate ms from the script's clock; the receipt times at the
    # test server may differ from it by the requests' own jitter, far below 100 ms here.
    turn = (1000 + paced.trunk_rate_guard_ms) / DIAL_RATE / 1000
    assert dials[1].received_at - dials[0].received_at >= turn - 0.1
