"""The call runtime end to end in a room that holds participants only (`tests/call_harness.py`).

Each test drives the SIP leg as the SIP bridge would (join, `sip.callStatus`, leave with
a disconnect reason) and asserts the events the API received, in order, the call's end
status and reason, and what reached the LiveKit test server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from livekit import api
from livekit.agents import Agent, APIConnectionError
from livekit.protocol.models import DisconnectReason

from agent_runtime import CallContext, WorkerSettings, builtin_agent
from agent_runtime import metering as metering_module
from agent_runtime.contract import Metering, VoicemailConfig
from tests.call_harness import (
    ROOM_NAME,
    CallHarness,
    EventSink,
    ReservationReply,
    call_dispatch,
)
from tests.fake_room import SIP_IDENTITY, FakeRoom
from tests.scripted_llm import Step, tool_call

SETTINGS = WorkerSettings(
    ring_timeout_margin_seconds=0.0, leg_join_timeout_seconds=0.0, event_flush_timeout_seconds=3.0
)
STARTED, READY, ANSWERED = "agent.started", "agent.ready", "call.answered"
TRANSCRIPT, ENDED, FAILED = "call.transcript", "call.ended", "call.failed"
ANSWERED_CALL = [STARTED, READY, ANSWERED, TRANSCRIPT, ENDED]

MakeCall = Callable[..., Awaitable[CallHarness]]


@pytest.fixture
async def lkapi(lk: Any) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(url=lk.url, api_key=lk.api_key, api_secret=lk.api_secret)
    yield client
    await client.aclose()


@pytest.fixture
async def sink() -> AsyncIterator[EventSink]:
    server = await EventSink().start()
    yield server
    await server.stop()


@pytest.fixture
def make_call(lkapi: api.LiveKitAPI, sink: EventSink) -> MakeCall:
    async def make(
        script: list[Step] | None = None,
        settings: WorkerSettings = SETTINGS,
        factory: Callable[[CallContext], Any] | None = None,
        room: FakeRoom | None = None,
        leg: str | None = None,
        **dispatch: Any,
    ) -> CallHarness:
        """`leg`: the SIP leg's `sip.callStatus` when the agent joins (default: no leg)."""
        dispatched = call_dispatch(sink.url, **dispatch)
        harness = CallHarness(lkapi, sink, dispatched, settings, script or [], factory, room)
        if leg is not None:
            harness.room.join(call_status=leg)
        return await harness.start()

    return make


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def data_of(event: dict[str, Any]) -> dict[str, Any]:
    """An event's own data, without the client's metadata every event carries."""
    return {key: value for key, value in event["data"].items() if key != "metadata"}


def end_of(events: list[dict[str, Any]]) -> tuple[str, str, str]:
    data = events[-1]["data"]
    return events[-1]["type"], data["status"], data["reason"]


def deletes(lk: Any) -> int:
    return lk.count("RoomService", "DeleteRoom")


async def answered(make_call: MakeCall, *script: Step, **dispatch: Any) -> CallHarness:
    harness = await make_call(list(script), **dispatch)
    await harness.event(READY)
    harness.room.answer()
    await harness.event(ANSWERED)
    return harness


async def test_silent_until_answered_then_greets_and_callee_hangs_up(
    make_call: MakeCall, lk: Any
) -> None:
    call = await make_call()
    await call.event(READY)
    call.room.join()
    call.room.set_call_status("ringing")
    for _ in range(20):  # every ready task gets to run: a leaky gate would speak now
        await asyncio.sleep(0)
    assert call.spoken_while == []

    call.room.set_call_status("active")
    await call.said.wait(lambda item: item == ("assistant", "Hi Ada!"))
    call.room.leave(DisconnectReason.CLIENT_INITIATED)
    events = await call.finished()

    assert types(events) == ANSWERED_CALL
    assert end_of(events) == (ENDED, "completed", "hangup_by_callee")
    assert call.spoken_while == ["active"]
    assert events[2]["data"]["sip_call_id"] == "SCL_sip-callee"
    assert [t["text"] for t in events[3]["data"]["turns"]] == ["Hi Ada!"]
    assert deletes(lk) == 1
    assert call.ctx.shutdown_reasons == ["call ended: completed (hangup_by_callee)"]


async def test_agent_ends_the_call_and_the_leg_is_dropped_once(
    make_call: MakeCall, lk: Any
) -> None:
    call = await answered(
        make_call, tool_call("end_call", goodbye="Goodbye Ada!"), first_message=""
    )
    events = await call.finished()
    assert types(events) == ANSWERED_CALL
    assert end_of(events) == (ENDED, "completed", "hangup_by_agent")
    assert call.assistant_lines() == ["Goodbye Ada!"]
    assert deletes(lk) == 1
    assert lk.room(ROOM_NAME) is None


async def test_the_end_is_reported_before_the_room_is_deleted(
    make_call: MakeCall, lk: Any, sink: EventSink
) -> None:
    """The room's deletion reaches the API as webhooks as well: the agent's own report (with
    its precise reason) must arrive first, so the API records that one."""
    call = await answered(make_call, tool_call("end_call", goodbye="Bye!"), first_message="")
    events = await call.finished()
    assert end_of(events) == (ENDED, "completed", "hangup_by_agent")
    [delete] = lk.requests("RoomService", "DeleteRoom")
    assert sink.arrived_at[-1] <= delete.received_at


async def test_a_dial_that_reaches_the_room_late_still_rings_its_full_time(
    make_call: MakeCall, lk: Any
) -> None:
    """The ring time counts from the leg's join, not from agent.ready: the API may dial a
    while after readiness (its queue, its retries)."""
    slow_dial = WorkerSettings(ring_timeout_margin_seconds=0.0, leg_join_timeout_seconds=10.0)
    call = await make_call(settings=slow_dial, ring_timeout=1)
    await call.event(READY)
    await asyncio.sleep(1.5)  # the scenario: the dial arrives after the ring time has passed
    call.room.join()
    call.room.answer()
    await call.event(ANSWERED)
    call.room.leave(DisconnectReason.CLIENT_INITIATED)
    events = await call.finished()
    assert end_of(events) == (ENDED, "completed", "hangup_by_callee")


@pytest.mark.parametrize("action", ["hangup", "leave_message"])
@pytest.mark.parametrize("source", ["llm", "amd"])
async def test_voicemail(make_call: MakeCall, lk: Any, source: str, action: str) -> None:
    voicemail = VoicemailConfig(action=action, message="Please call {{name}} back.")
    if source == "llm":
        script = [tool_call("report_voicemail", greeting="Leave a message after the tone")]
        call = await answered(make_call, *script, first_message="", voicemail=voicemail)
    else:
        call = await answered(make_call, voicemail=voicemail)
        assert call.call is not None
        call.call.handle_voicemail("amd", "machine_vm")
    events = await call.finished()

    assert types(events) == [STARTED, READY, ANSWERED, "call.voicemail", TRANSCRIPT, ENDED]
    assert data_of(events[3]) == {
        "decision": "machine",
        "action": action,
        "source": source,
        "detail": "machine_vm" if source == "amd" else "Leave a message after the tone",
    }
    assert end_of(events) == (ENDED, "completed", "voicemail")
    left_message = "Please call Ada back." in call.assistant_lines()
    assert left_message is (action == "leave_message")
    assert deletes(lk) == 1


async def test_transfer(make_call: MakeCall, lk: Any) -> None:
    lk.add_sip_participant(ROOM_NAME, SIP_IDENTITY)
    call = await answered(
        make_call, tool_call("transfer_call"), first_message="", transfer_to="+15550001111"
    )
    events = await call.finished()
    assert types(events) == ANSWERED_CALL
    assert end_of(events) == (ENDED, "completed", "transferred")
    [transfer] = lk.requests("SIP", "TransferSIPParticipant")
    assert transfer.request.transfer_to == "tel:+15550001111"
    assert deletes(lk) == 1


@pytest.mark.parametrize("goodbye", ["", "Sorry to bother you, Ada. Goodbye!"])
async def test_opt_out_reports_says_goodbye_and_hangs_up(
    make_call: MakeCall, lk: Any, sink: EventSink, goodbye: str
) -> None:
    """The callee asks not to be called again: `call.opted_out` (on which the API lists the
    number) goes before the end, the goodbye is said, and the call ends `opted_out`."""
    call = await answered(make_call, tool_call("opt_out", goodbye=goodbye), first_message="")
    events = await call.finished()
    assert types(events) == [STARTED, READY, ANSWERED, "call.opted_out", TRANSCRIPT, ENDED]
    assert data_of(events[3]) == {"number": "+15551230000"}
    assert end_of(events) == (ENDED, "completed", "opted_out")
    assert call.assistant_lines() == [goodbye or SETTINGS.opt_out_message]
    [delete] = lk.requests("RoomService", "DeleteRoom")
    assert sink.arrived_at[-1] <= delete.received_at


async def test_max_duration_says_goodbye_then_hangs_up(
    make_call: MakeCall, sink: EventSink, lk: Any
) -> None:
    call = await answered(make_call, max_duration=1)
    events = await call.finished()
    assert types(events) == ANSWERED_CALL
    assert end_of(events) == (ENDED, "completed", "max_duration")
    assert call.assistant_lines() == ["Hi Ada!", SETTINGS.max_duration_message]
    assert 1.0 <= events[-1]["data"]["duration_seconds"] < 5.0
    assert deletes(lk) == 1
    assert sink.asked_at == []  # not metered: never asks for minutes


async def test_balance_exhausted_says_goodbye_then_hangs_up(
    make_call: MakeCall, sink: EventSink, lk: Any
) -> None:
    """A metered call asks for a minute `reservation_lead_seconds` before its reservation
    runs out (here 2 s reserved, asked 1.5 s before): granted once (4 s in all), refused the
    second time, it says goodbye and ends `balance_exhausted`."""
    settings = SETTINGS.model_copy(update={"reservation_lead_seconds": 1.5})
    sink.grants = [4]
    metering = Metering(reserved_seconds=2, reservation_url=sink.reservation_url)
    call = await answered(make_call, settings=settings, metering=metering)
    events = await call.finished()
    assert types(events) == ANSWERED_CALL
    assert end_of(events) == (ENDED, "completed", "balance_exhausted")
    assert call.assistant_lines() == ["Hi Ada!", settings.balance_exhausted_message]
    assert len(sink.asked_at) == 2
    assert sink.asked_holding == [2, 4]  # each ask names what the call held then
    # The second ask waited for the granted reservation: 4 - 1.5 s from the answer.
    assert 2.5 <= events[-1]["data"]["duration_seconds"] < 8.0
    assert deletes(lk) == 1


UNMETERED_NOW = ReservationReply(body={"granted": True, "reservedSeconds": 0})


@pytest.mark.parametrize(
    ("grants", "holding"),
    [([UNMETERED_NOW], [1]), ([2, 2], [1, 2])],
    ids=["unmetered-now", "whole-max-duration"],
)
async def test_a_grant_that_does_not_grow_the_reservation_stops_the_asks(
    make_call: MakeCall, sink: EventSink, grants: list[int | ReservationReply], holding: list[int]
) -> None:
    """The API answers `granted` without adding anything (the workspace is unlimited now,
    or the call holds its whole max duration): the agent asks no more, and the call goes
    on to its max duration."""
    settings = SETTINGS.model_copy(update={"reservation_lead_seconds": 0.5})
    sink.grants = list(grants)
    metering = Metering(reserved_seconds=1, reservation_url=sink.reservation_url)
    call = await answered(make_call, settings=settings, metering=metering, max_duration=3)
    events = await call.finished()
    assert end_of(events) == (ENDED, "completed", "max_duration")
    # the call ran 3 s after the last ask: a busy loop would have asked again and again
    assert sink.asked_holding == holding


async def test_an_answer_the_agent_cannot_read_is_asked_again(
    make_call: MakeCall, sink: EventSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metering_module, "RETRY_SECONDS", 0.05)
    settings = SETTINGS.model_copy(update={"reservation_lead_seconds": 0.5})
    sink.grants = [
        ReservationReply(body={"unexpected": 1}),
        ReservationReply(body=["granted"]),
        ReservationReply(body={"granted": "yes", "reservedSeconds": 4}),
        ReservationReply(body={"granted": True, "reservedSeconds": "4"}),
        0,
    ]
    metering = Metering(reserved_seconds=1, reservation_url=sink.reservation_url)
    call = await answered(make_call, settings=settings, metering=metering, max_duration=30)
    events = await call.finished()
    assert end_of(events) == (ENDED, "completed", "balance_exhausted")
    assert sink.asked_holding == [1] * 5


async def test_an_unreachable_api_ends_the_call_a_grace_past_its_reservation(
    make_call: MakeCall, sink: EventSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reservation endpoint answers 500 to every ask: the agent keeps asking, and once
    the reservation ran out by the grace, the minutes cannot be confirmed: it says goodbye
    and ends the call `balance_exhausted`."""
    monkeypatch.setattr(metering_module, "RETRY_SECONDS", 0.1)
    monkeypatch.setattr(metering_module, "UNCONFIRMED_GRACE_SECONDS", 1.0)
    settings = SETTINGS.model_copy(update={"reservation_lead_seconds": 0.5})
    sink.after_grants = ReservationReply(status=500, body={"code": "STORAGE_UNAVAILABLE"})
    metering = Metering(reserved_seconds=1, reservation_url=sink.reservation_url)
    call = await answered(make_call, settings=settings, metering=metering, max_duration=30)
    events = await call.finished()
    assert end_of(events) == (ENDED, "completed", "balance_exhausted")
    assert call.assistant_lines() == ["Hi Ada!", settings.balance_exhausted_message]
    # asked from 0.5 s on, every 0.1 s, until 1 s reserved + 1 s of grace
    assert len(sink.asked_at) >= 5 and set(sink.asked_holding) == {1}
    assert 2.0 <= events[-1]["data"]["duration_seconds"] < 8.0


async def test_silence_timeout(make_call: MakeCall, lk: Any) -> None:
    settings = WorkerSettings(ring_timeout_margin_seconds=0.0, silence_timeout_seconds=0.2)
    call = await make_call(settings=settings)
    await call.event(READY)
    call.room.answer()
    events = await call.finished()
    assert types(events) == ANSWERED_CALL
    assert end_of(events) == (ENDED, "completed", "silence_timeout")
    assert call.assistant_lines() == ["Hi Ada!", settings.silence_message]
    assert deletes(lk) == 1


async def test_session_error_fails_the_call_and_drops_the_leg(make_call: MakeCall, lk: Any) -> None:
    failure = APIConnectionError("model server unreachable", retryable=False)
    call = await answered(make_call, failure, first_message="")
    events = await call.finished()
    assert types(events) == [STARTED, READY, ANSWERED, TRANSCRIPT, FAILED]
    assert end_of(events) == (FAILED, "failed", "agent_failed")
    assert "model server unreachable" in events[-1]["data"]["message"]
    assert deletes(lk) == 1
    assert call.ctx.shutdown_reasons == ["call ended: failed (agent_failed)"]


async def test_agent_that_cannot_be_built_fails_before_the_dial(
    make_call: MakeCall, lk: Any
) -> None:
    def broken(_: CallContext) -> Agent:
        raise RuntimeError("no such prompt")

    events = await (await make_call(factory=broken)).finished()
    assert types(events) == [STARTED, FAILED]
    assert end_of(events) == (FAILED, "failed", "agent_failed")
    assert deletes(lk) == 1


@pytest.mark.parametrize(
    ("reason", "status"),
    [(DisconnectReason.USER_UNAVAILABLE, "no_answer"), (DisconnectReason.USER_REJECTED, "busy")],
    ids=["no_answer", "busy"],
)
async def test_unanswered(make_call: MakeCall, lk: Any, reason: int, status: str) -> None:
    """Also race 2: the leg joins, rings and leaves before the runtime's wait for it has
    resumed, so before any gate could subscribe; the ring timeout is beyond the test's
    patience, so only noticing the departure ends the call in time."""
    call = await make_call(ring_timeout=30)
    await call.event(READY)
    call.room.join()
    call.room.set_call_status("ringing")
    call.room.leave(reason)
    events = await call.finished()
    assert types(events) == [STARTED, READY, ENDED]
    assert end_of(events) == (ENDED, status, status)
    assert call.spoken_while == []
    assert deletes(lk) == 1


async def test_ready_after_the_session_started_and_before_the_leg_exists(
    make_call: MakeCall, lk: Any
) -> None:
    call = await make_call(ring_timeout=0)
    ready = await call.event(READY)
    assert call.session_started_at is not None
    assert call.session_started_at <= ready["timestamp"]
    assert data_of(ready) == {"job_id": "AJ_test", "agent_id": "ag_1"}
    # nobody ever joins: the dial produced no leg
    events = await call.finished()
    assert types(events) == [STARTED, READY, FAILED]
    assert end_of(events) == (FAILED, "failed", "trunk_failure")
    assert call.spoken_while == []
    assert deletes(lk) == 1


async def test_callee_hangs_up_while_the_agent_is_built(make_call: MakeCall, lk: Any) -> None:
    """Race 1: a leg already answered when the agent joins leaves while the agent is being
    built; it is watched from the moment the room is joined."""
    room = FakeRoom()

    def factory(call: CallContext) -> Agent:
        room.leave(DisconnectReason.CLIENT_INITIATED)
        return builtin_agent(call)

    # a runtime that missed the departure would talk on until this limit
    call = await make_call(factory=factory, room=room, leg="active", max_duration=1)
    events = await call.finished()
    assert types(events) == [STARTED, ANSWERED, TRANSCRIPT, ENDED]
    assert end_of(events) == (ENDED, "completed", "hangup_by_callee")
    assert events[2]["data"]["turns"] == []
    assert call.spoken_while == []
    assert deletes(lk) == 1


async def test_leg_rejected_during_a_slow_build_ends_the_call_at_once(
    make_call: MakeCall, lk: Any
) -> None:
    """The same for a leg still ringing: busy, and the build is abandoned, not awaited."""
    room = FakeRoom()
    abandoned = asyncio.Event()

    async def factory(_: CallContext) -> Agent:
        room.leave(DisconnectReason.USER_REJECTED)
        try:
            await asyncio.Event().wait()  # a build that never finishes
        finally:
            abandoned.set()
        raise AssertionError("unreachable")

    call = await make_call(factory=factory, room=room, leg="ringing", ring_timeout=30)
    events = await call.finished()
    assert types(events) == [STARTED, ENDED]
    assert end_of(events) == (ENDED, "busy", "busy")
    assert abandoned.is_set()
    assert call.session is None
    assert deletes(lk) == 1


async def test_room_deleted_by_the_api_ends_the_call_at_once(make_call: MakeCall, lk: Any) -> None:
    """The API ended the call and deleted the room (cancel, a deadline): the agent stops
    talking now instead of waiting to be cancelled, and reports how the call ended."""
    call = await answered(make_call, max_duration=30)
    call.room.disconnect(DisconnectReason.ROOM_DELETED)
    events = await call.finished()
    assert types(events) == ANSWERED_CALL
    assert end_of(events) == (ENDED, "completed", "room_closed")
    assert deletes(lk) == 1  # its own drop finds the room gone: still one request
