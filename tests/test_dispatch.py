"""The dial job end to end: real API, real Redis, a real Dramatiq worker process, and the
LiveKit protocol test server decoding what the worker sends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent_runtime.contract import DispatchMetadata
from api.security import event_token
from api.settings import Settings
from api.store.keys import Keys
from tests.calls import call_status as _call_status
from tests.calls import place_ready_call as _place_ready_call
from tests.calls import report_ready as _report_ready
from tests.calls import wait_dialed as _wait_dialed
from tests.calls import wait_status as _wait_status
from tests.conftest import Tenant
from tests.support import WorkerProcess, async_wait_until, free_port, report_agent


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # An unconfirmed dial with no leg is settled at the ring deadline (ring timeout +
    # margin from the dial): a short margin keeps those tests short; same mechanism.
    return settings.model_copy(update={"deadline_margin_seconds": 2})


# A short ring timeout for the calls whose dial is never confirmed (decided at its deadline).
SHORT_RING = 5


@pytest.fixture
async def agent(tenant: Tenant) -> dict[str, Any]:
    created = await tenant.create_agent(
        first_message="Hi {{firstName}}, this is Outdial.", ring_timeout_seconds=25
    )
    number = await tenant.register_number("+15105550100")
    return created | {"trunk_id": number["sipTrunkId"]}


async def _wait_room_deleted(lk: Any, room_name: str) -> None:
    """The call's room was deleted: one DeleteRoom for it, answered, and LiveKit closed the
    room (it existed: a room never created is not a deleted one)."""

    def deleted() -> bool:
        return any(
            r.request.room == room_name and r.status == 200
            for r in lk.requests("RoomService", "DeleteRoom")
        )

    await async_wait_until(deleted, what=f"DeleteRoom {room_name}")
    assert [r.request.room for r in lk.requests("RoomService", "DeleteRoom")] == [room_name]
    assert lk.room(room_name) is None
    assert lk.room(room_name, include_closed=True) is not None


async def test_happy_path_creates_room_with_dispatch_then_dials_once(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    accepted = (
        await tenant.place_call(
            to="+44 20 7946 0958",
            call_agent_id=agent["id"],
            dynamic_variables={"firstName": "Ada"},
            metadata={"crm_id": "42"},
            max_duration_seconds=600,
        )
    ).json()
    call_id = accepted["callId"]
    await _wait_status(tenant, call_id, {"waiting_for_agent"})
    # Nobody is rung while the agent is not ready.
    assert lk.count("RoomService", "CreateRoom") == 1
    assert lk.count("SIP", "CreateSIPParticipant") == 0
    ready = await report_agent(tenant.http, settings, call_id)
    assert ready == {
        "applied": True,
        "outcome": "applied",
        "sequence": ready["sequence"],
        "status": "waiting_for_agent",
    }
    view = await _wait_dialed(tenant, call_id)

    create_room = lk.requests("RoomService", "CreateRoom")
    assert len(create_room) == 1
    room_request = create_room[0].request
    assert room_request.name == accepted["roomName"]
    assert json.loads(room_request.metadata)["call_id"] == call_id
    assert room_request.empty_timeout > 0 and room_request.departure_timeout > 0
    assert len(room_request.agents) == 1
    assert room_request.agents[0].agent_name == settings.agent_name
    contract = DispatchMetadata.from_json(room_request.agents[0].metadata)
    assert contract.call_id == call_id
    assert contract.dynamic_variables == {"firstName": "Ada"}
    assert contract.metadata == {"crm_id": "42"}
    assert contract.agent.first_message == "Hi {{firstName}}, this is Outdial."
    assert contract.to_number == "+442079460958"
    assert contract.from_number == "+15105550100"
    assert contract.events_url == f"{settings.public_url}/v1/internal/calls/{call_id}/events"
    assert contract.event_token == event_token(call_id, settings.event_signing_key)

    dials = lk.requests("SIP", "CreateSIPParticipant")
    assert len(dials) == 1
    sip = dials[0].request
    assert sip.sip_trunk_id == agent["trunk_id"]
    assert sip.sip_number == "+15105550100"
    assert sip.sip_call_to == "+442079460958"
    assert sip.room_name == accepted["roomName"]
    assert sip.participant_identity == f"sip-{call_id}"
    assert sip.ringing_timeout.seconds == 25
    assert sip.max_call_duration.seconds == 600
    assert sip.wait_until_answered is False
    # The room existed before the dial was sent.
    assert create_room[0].received_at <= dials[0].received_at

    assert view["status"] == "dialing"
    assert view["sipCallId"]
    events = (await tenant.request("GET", f"/v1/api/call/{call_id}")).json()
    assert list(events["transitions"]) == ["queued", "dispatching", "waiting_for_agent", "dialing"]
    listed = (await tenant.request("GET", f"/v1/api/call/{call_id}/events")).json()
    assert [e["type"] for e in listed["events"]] == [
        "call.queued",
        "call.dispatching",
        "call.waiting_for_agent",
        "agent.ready",
        "call.dialing",
    ]


async def test_create_room_unavailable_is_retried_and_dials_once(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    lk.inject("RoomService", "CreateRoom", code="unavailable", status=503, times=2)
    body = {"to": "+14155552671", "call_agent_id": agent["id"]}
    call_id = (await _place_ready_call(tenant, settings, **body))["callId"]
    await _wait_dialed(tenant, call_id)
    assert lk.count("RoomService", "CreateRoom") == 3
    assert lk.count("SIP", "CreateSIPParticipant") == 1


async def test_sip_error_fails_the_call_and_deletes_the_room(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    lk.inject(
        "SIP",
        "CreateSIPParticipant",
        code="failed_precondition",
        status=412,
        message="twirp error unknown: trunk refused",
        meta={"sip_status_code": "503", "sip_status": "Service Unavailable"},
    )
    body = {"to": "+14155552671", "call_agent_id": agent["id"]}
    accepted = await _place_ready_call(tenant, settings, **body)
    view = await _wait_status(tenant, accepted["callId"], {"failed"})
    assert view["errorCode"] == "LIVEKIT_FAILED_PRECONDITION"
    assert view["endReason"] == "trunk_failure"  # SIP 503: the outcome table's answer
    assert "trunk refused" in view["errorMessage"]
    assert view["sipStatusCode"] == 503
    assert view["sipStatus"] == "Service Unavailable"
    await _wait_room_deleted(lk, accepted["roomName"])
    assert lk.count("SIP", "CreateSIPParticipant") == 1


async def test_a_busy_callee_ends_the_call_busy_not_failed(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    """A dial refused with SIP 486 takes the outcome table's answer, like a webhook would."""
    lk.inject_sip_error(486, "Busy Here")
    body = {"to": "+14155552671", "call_agent_id": agent["id"]}
    accepted = await _place_ready_call(tenant, settings, **body)
    view = await _wait_status(tenant, accepted["callId"], {"busy"})
    assert (view["endReason"], view["sipStatusCode"], view["sipStatus"]) == (
        "busy",
        486,
        "Busy Here",
    )
    events = (await tenant.request("GET", f"/v1/api/call/{accepted['callId']}/events")).json()
    ended = events["events"][-1]
    assert (ended["type"], ended["data"]["status"], ended["data"]["reason"]) == (
        "call.ended",
        "busy",
        "busy",
    )
    await _wait_room_deleted(lk, accepted["roomName"])
    assert lk.count("SIP", "CreateSIPParticipant") == 1


async def test_livekit_unreachable_ends_the_call_failed(
    tenant: Tenant, agent: dict[str, Any], settings: Settings, api_server: Any
) -> None:
    unreachable = settings.model_copy(update={"livekit_url": f"http://127.0.0.1:{free_port()}"})
    process = WorkerProcess(unreachable).start()
    try:
        call_id = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()[
            "callId"
        ]
        view = await _wait_status(tenant, call_id, {"failed"}, timeout=30)
        assert view["errorCode"] == "LIVEKIT_UNAVAILABLE"
        assert "could not create the room" in view["errorMessage"]
    finally:
        process.stop()


async def test_cancel_after_dial_deletes_the_room(
    tenant: Tenant, agent: dict[str, Any], lk: Any, worker: WorkerProcess, settings: Settings
) -> None:
    body = {"to": "+14155552671", "call_agent_id": agent["id"]}
    accepted = await _place_ready_call(tenant, settings, **body)
    await _wait_dialed(tenant, accepted["callId"])
    assert lk.room(accepted["roomName"]) is not None
    response = await tenant.request("POST", f"/v1/api/call/{accepted['callId']}/cancel")
    assert response.json()["status"] == "canceled"
    await _wait_room_deleted(lk, accepted["roomName"])


# Where the worker dies, as seen from the LiveKit side, and what must follow.
CRASH_POINTS = {
    # CreateRoom received but not applied: the redelivered job creates the room and waits.
    "before_create_room": ("RoomService", "CreateRoom", {"delay_before": 30}, "dialing", 1),
    # Room created, answer lost: CreateRoom again is an upsert; then one dial.
    "after_create_room": ("RoomService", "CreateRoom", {"delay_after": 30}, "dialing", 1),
    # Marked dialing, the dial never reached LiveKit: no leg, ever -> failed at the ring
    # deadline (a leg could still have joined until then), no dial.
    "after_dialing_mark": ("SIP", "CreateSIPParticipant", {"delay_before": 30}, "failed", 0),
    # The dial went out, the answer was lost: the room shows the leg -> stays dialing.
    "after_dial": ("SIP", "CreateSIPParticipant", {"delay_after": 30}, "dialing", 1),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
async def test_worker_killed_mid_dispatch_never_dials_twice(
    point: str, tenant: Tenant, agent: dict[str, Any], lk: Any, settings: Settings, api_server: Any
) -> None:
    service, method, fault, final_status, legs = CRASH_POINTS[point]
    # Faster redelivery than production (10 s) keeps the suite short; same mechanism.
    fast = settings.model_copy(update={"heartbeat_timeout_ms": 2_000, "worker_timeout_ms": 500})
    lk.inject(service, method, **fault)
    first = WorkerProcess(fast).start()
    # After the dial the call must still be ringing when the redelivered run looks (on a
    # loaded machine that can take longer than a short ring, whose deadline would end it).
    ring = 60 if point == "after_dial" else SHORT_RING
    body = {"to": "+14155552671", "call_agent_id": agent["id"], "ring_timeout_seconds": ring}
    call_id = (await tenant.place_call(**body)).json()["callId"]
    room_name = (await _call_status(tenant, call_id))["roomName"]
    if service == "SIP":
        # The dial step runs once the agent is ready: it is the job that dies.
        await _report_ready(tenant, settings, call_id)
    await async_wait_until(lambda: lk.count(service, method) >= 1, timeout=20, what=method)
    first.kill()

    looks_before = lk.count("RoomService", "ListParticipants")

    second = WorkerProcess(fast).start()
    try:
        if service != "SIP":
            await _report_ready(tenant, settings, call_id)
        if point == "after_dial":
            # Already `dialing` before the kill: wait for the redelivered run to look at the room.
            await async_wait_until(
                lambda: lk.count("RoomService", "ListParticipants") > looks_before,
                timeout=60,
                what="the redelivered run's ListParticipants",
            )
            view = await _call_status(tenant, call_id)
        elif final_status == "dialing":
            view = await _wait_dialed(tenant, call_id, timeout=60)
        else:
            view = await _wait_status(tenant, call_id, {final_status}, timeout=60)
    finally:
        second.stop()
    assert view["status"] == final_status, (point, view)
    room = lk.room(room_name)
    sip_legs = [] if room is None else [p for p in room.participants if p.startswith("sip-")]
    assert len(sip_legs) == legs, (point, view)
    assert lk.count("SIP", "CreateSIPParticipant") <= 1
    if final_status == "failed":
        assert view["errorCode"] == "DIAL_INTERRUPTED"


async def test_worker_killed_while_the_call_waits_for_its_agent_dials_once_after(
    tenant: Tenant, agent: dict[str, Any], lk: Any, settings: Settings, api_server: Any
) -> None:
    """No job is in flight while a call waits: readiness alone must carry it on."""
    first = WorkerProcess(settings).start()
    call_id = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()[
        "callId"
    ]
    await _wait_status(tenant, call_id, {"waiting_for_agent"})
    first.kill()
    assert (await report_agent(tenant.http, settings, call_id))["applied"]
    second = WorkerProcess(settings).start()
    try:
        await _wait_dialed(tenant, call_id)
    finally:
        second.stop()
    assert lk.count("SIP", "CreateSIPParticipant") == 1


# The dial's answer is lost in each of these ways; the dispatcher must not send it again but
# look at the room (ListParticipants): a leg there means LiveKit rang (the call stays
# `dialing`, settled by webhooks or at its deadline), no leg means it never did.
# (fault on CreateSIPParticipant, final status, SIP legs in the room, dial's recorded status)
UNKNOWN_DIAL_OUTCOMES: dict[str, tuple[dict[str, Any], str, int, int | None]] = {
    # LiveKit rang, then answered 503 (times=3: a client that replays meets it every time).
    "503_after_ringing": (
        {"code": "unavailable", "status": 503, "after_apply": True, "times": 3},
        "dialing",
        1,
        503,
    ),
    # LiveKit rang, then the connection dropped without an answer.
    "dropped_after_ringing": ({"drop": True, "after_apply": True, "times": 3}, "dialing", 1, 0),
    # The connection dropped before LiveKit did anything: nobody rang; no leg by the ring
    # deadline -> failed.
    "dropped_before_ringing": ({"drop": True, "times": 3}, "failed", 0, 0),
    # LiveKit rang but answers later than the dispatcher's LiveKit timeout (the request is
    # held until the test ends).
    "client_timeout_after_ringing": ({"delay_after": 60, "times": 3}, "dialing", 1, None),
}
# The worker's LiveKit request timeout in these tests (OUTDIAL_LIVEKIT_TIMEOUT_SECONDS).
SHORT_LIVEKIT_TIMEOUT = 3.0


@pytest.mark.parametrize("case", list(UNKNOWN_DIAL_OUTCOMES))
async def test_a_dial_with_an_unknown_outcome_is_sent_once_and_settled_from_the_room(
    case: str,
    tenant: Tenant,
    agent: dict[str, Any],
    lk: Any,
    settings: Settings,
    api_server: Any,
    redis_client: Any,
) -> None:
    from tests.test_cloud_dial_once import _pending_dial_jobs

    fault, final_status, legs, dial_status = UNKNOWN_DIAL_OUTCOMES[case]
    quick = settings.model_copy(update={"livekit_timeout_seconds": SHORT_LIVEKIT_TIMEOUT})
    process = WorkerProcess(quick).start()
    try:
        body = {
            "to": "+14155552671",
            "call_agent_id": agent["id"],
            "ring_timeout_seconds": SHORT_RING,
        }
        accepted = (await tenant.place_call(**body)).json()
        call_id, room_name = accepted["callId"], accepted["roomName"]
        await _wait_status(tenant, call_id, {"waiting_for_agent"})
        lk.inject("SIP", "CreateSIPParticipant", **fault)
        looks_before = lk.count("RoomService", "ListParticipants")
        await report_agent(tenant.http, settings, call_id)
        # The readiness report queued the dial job, which dials; Dramatiq removes it once it
        # returned. (Not "the job is pending" right after the report: a worker on a busy
        # machine may have dialed and returned before this test looks.)
        await lk.wait_for_async("SIP", "CreateSIPParticipant", timeout=30)
        await async_wait_until(
            lambda: not _pending_dial_jobs(redis_client, settings),
            timeout=60,
            what="the dial job to finish",
        )
        if final_status == "failed":  # decided by the reconciler at the ring deadline
            await _wait_status(tenant, call_id, {"failed"}, timeout=30)
        view = await _call_status(tenant, call_id)
    finally:
        process.stop()

    dials = lk.requests("SIP", "CreateSIPParticipant")
    assert len(dials) == 1, (case, [(d.status, d.error_code) for d in dials], process.log())
    assert dials[0].request.participant_identity == f"sip-{call_id}"
    assert dials[0].status == dial_status, case
    # The outcome was looked up in the room, after the dial.
    looks = lk.requests("RoomService", "ListParticipants")[looks_before:]
    assert looks and {look.request.room for look in looks} == {room_name}, case
    assert looks[0].received_at >= dials[0].received_at
    room = lk.room(room_name)
    sip_legs = [] if room is None else [p for p in room.participants if p.startswith("sip-")]
    assert len(sip_legs) == legs, (case, view)
    assert view["status"] == final_status, (case, view)
    # Only a successful answer carries the SIP call id.
    assert view["sipCallId"] is None, view
    if final_status == "dialing":
        assert view["errorCode"] is None, view
        assert list(view["transitions"]) == [
            "queued",
            "dispatching",
            "waiting_for_agent",
            "dialing",
        ]
        assert lk.count("RoomService", "DeleteRoom") == 0
    else:
        assert view["errorCode"] == "DIAL_INTERRUPTED", view
        await _wait_room_deleted(lk, room_name)


async def test_a_dial_step_marking_an_unreadable_record_ends_the_call_and_rings_nobody(
    tenant: Tenant,
    agent: dict[str, Any],
    lk: Any,
    worker: WorkerProcess,
    settings: Settings,
    redis_client: Any,
) -> None:
    """The dial step's script marks `dialing` from the raw hash; a record Python cannot read
    (a field missing, say across a rolling deploy) must not stay `dialing` undialed."""
    call_id = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()[
        "callId"
    ]
    await _wait_status(tenant, call_id, {"waiting_for_agent"})
    call_key = Keys(settings.redis_prefix).call(call_id)
    redis_client.hdel(call_key, "agent_id")
    assert (await report_agent(tenant.http, settings, call_id))["applied"]

    def ended() -> bool:
        return redis_client.hget(call_key, "status") == b"failed"

    await async_wait_until(ended, timeout=10, what="the unreadable call failed")
    assert redis_client.hget(call_key, "error_code") == b"INVALID_CALL"
    assert lk.count("SIP", "CreateSIPParticipant") == 0
