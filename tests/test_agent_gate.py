"""The answer gate on a real `rtc.Room` emitter: the agent may speak only once the SIP
participant's `sip.callStatus` is active; a leg that ends first decides the outcome."""

from __future__ import annotations

import asyncio

from livekit import rtc
from livekit.protocol.models import DisconnectReason
from livekit.rtc._proto import participant_pb2

from agent_runtime.call import wait_until_answered


def sip_participant(call_status: str, reason: int = 0) -> rtc.RemoteParticipant:
    info = participant_pb2.ParticipantInfo(
        sid="PA_1",
        identity="sip-callee",
        name="callee",
        metadata="",
        kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
        disconnect_reason=reason,
    )
    info.attributes["sip.callStatus"] = call_status
    # handle 0: a participant object that owns no native resource
    owned = participant_pb2.OwnedParticipant(handle={"id": 0}, info=info)
    return rtc.RemoteParticipant(owned)


async def test_waits_for_active_then_lets_the_agent_speak() -> None:
    room = rtc.Room()
    ringing = sip_participant("ringing")
    gate = asyncio.create_task(wait_until_answered(room, ringing, timeout=5))
    await asyncio.sleep(0.05)
    assert not gate.done(), "answered while still ringing"
    room.emit(
        "participant_attributes_changed", {"sip.callStatus": "active"}, sip_participant("active")
    )
    assert await asyncio.wait_for(gate, 1) is None


async def test_already_active_passes_at_once() -> None:
    assert await wait_until_answered(rtc.Room(), sip_participant("active"), timeout=1) is None


async def test_busy_before_answer_ends_the_call() -> None:
    room = rtc.Room()
    gate = asyncio.create_task(wait_until_answered(room, sip_participant("ringing"), timeout=5))
    await asyncio.sleep(0.01)
    room.emit(
        "participant_disconnected", sip_participant("ringing", DisconnectReason.USER_REJECTED)
    )
    outcome = await asyncio.wait_for(gate, 1)
    assert outcome is not None and (outcome.status, outcome.reason) == ("busy", "busy")


async def test_ring_timeout_is_no_answer() -> None:
    outcome = await wait_until_answered(rtc.Room(), sip_participant("ringing"), timeout=0.05)
    assert outcome is not None and (outcome.status, outcome.reason) == ("no_answer", "no_answer")


async def test_other_participants_do_not_open_the_gate() -> None:
    room = rtc.Room()
    gate = asyncio.create_task(wait_until_answered(room, sip_participant("ringing"), timeout=0.2))
    other = sip_participant("active")
    other._info.identity = "someone-else"
    room.emit("participant_attributes_changed", {"sip.callStatus": "active"}, other)
    outcome = await gate
    assert outcome is not None and outcome.status == "no_answer"
