"""The answer gate, `SipLeg.wait_until_answered`: the agent may speak only once the SIP
participant's `sip.callStatus` is active; a leg that ends first decides the outcome.

`SipLeg` subscribes when it is created, so every change below comes after the
subscription: while the gate waits, or before anyone awaits it (race 2: a leg already gone
when the gate looks must end the call at once, not at the ring timeout).
"""

from __future__ import annotations

import asyncio

import pytest
from livekit.protocol.models import DisconnectReason

from agent_runtime.leg import SipLeg
from tests.fake_room import SIP_IDENTITY, FakeRoom


async def waiting(gate: asyncio.Task[object]) -> None:
    await asyncio.sleep(0)  # one loop turn: the task runs up to its first wait
    assert not gate.done()


async def test_waits_for_active_then_lets_the_agent_speak() -> None:
    room = FakeRoom()
    room.join(call_status="ringing")
    gate = asyncio.create_task(SipLeg(room, SIP_IDENTITY).wait_until_answered(timeout=60))
    await waiting(gate)
    room.set_call_status("active")
    assert await asyncio.wait_for(gate, 1) is None


async def test_another_participant_does_not_open_the_gate() -> None:
    room = FakeRoom()
    room.join(call_status="ringing")
    gate = asyncio.create_task(SipLeg(room, SIP_IDENTITY).wait_until_answered(timeout=60))
    await waiting(gate)
    room.answer("someone-else")
    # the gate is still closed: the callee's own departure is what decides
    room.leave(DisconnectReason.USER_REJECTED)
    outcome = await asyncio.wait_for(gate, 1)
    assert outcome is not None and (outcome.status, outcome.reason) == ("busy", "busy")


async def test_already_active_passes_at_once() -> None:
    room = FakeRoom()
    room.join(call_status="active")
    assert await asyncio.wait_for(SipLeg(room, SIP_IDENTITY).wait_until_answered(60), 1) is None


async def test_leg_gone_before_the_gate_looks_ends_at_once() -> None:
    room = FakeRoom()
    leg = SipLeg(room, SIP_IDENTITY)
    room.join(call_status="ringing")
    room.leave(DisconnectReason.USER_REJECTED)
    outcome = await asyncio.wait_for(leg.wait_until_answered(timeout=60), 1)
    assert outcome is not None and (outcome.status, outcome.reason) == ("busy", "busy")


async def test_ring_timeout_is_no_answer() -> None:
    room = FakeRoom()
    room.join(call_status="ringing")
    outcome = await SipLeg(room, SIP_IDENTITY).wait_until_answered(timeout=0.05)
    assert outcome is not None and (outcome.status, outcome.reason) == ("no_answer", "no_answer")


@pytest.mark.parametrize(
    ("reason", "end_reason"),
    [
        (DisconnectReason.CLIENT_INITIATED, "hangup_by_callee"),
        (DisconnectReason.SIP_TRUNK_FAILURE, "connection_lost"),
    ],
)
async def test_departure_after_answer_is_reported_as_it_happens(
    reason: int, end_reason: str
) -> None:
    room = FakeRoom()
    gone: list[SipLeg] = []
    leg = SipLeg(room, SIP_IDENTITY, on_left=gone.append)
    room.answer()
    room.leave(reason)
    assert gone == [leg]  # synchronously, before any other task runs
    assert (leg.departure().status, leg.departure().reason) == ("completed", end_reason)
