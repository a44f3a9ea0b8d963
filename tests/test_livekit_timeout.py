"""Outdial's LiveKit clients give up after OUTDIAL_LIVEKIT_TIMEOUT_SECONDS.

livekit-api passes `timeout=None` to each request, which aiohttp takes for "no timeout": the
control test shows a plain client outliving its own timeout. The test server holds each
request here far longer than the clients' timeout (and `reset()` drops it afterwards).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from livekit import api as lkapi
from livekit.protocol.room import CreateRoomRequest

from api.resources import Resources
from api.settings import Settings
from sip import SipLegPlan, dial


@pytest.fixture
async def quick(settings: Settings) -> AsyncIterator[Resources]:
    """Outdial's clients, as the app and the worker hold them, with a 1 s timeout."""
    resources = Resources(settings.model_copy(update={"livekit_timeout_seconds": 1.0}))
    yield resources
    await resources.aclose()


def plain_leg(sip_trunk_id: str, room_name: str) -> SipLegPlan:
    """A leg from +15105550100 to +14155552671 in `room_name`, as the dispatcher plans one."""
    return SipLegPlan(
        room_name=room_name,
        sip_trunk_id=sip_trunk_id,
        caller_number="+15105550100",
        callee_number="+14155552671",
        participant_identity="sip-callee",
        participant_name="+14155552671",
        participant_metadata="{}",
        ringing_timeout_seconds=30,
        max_call_duration_seconds=600,
    )


async def test_an_idempotent_request_that_hangs_times_out(lk: Any, quick: Resources) -> None:
    lk.inject("RoomService", "CreateRoom", delay_after=60)
    with pytest.raises(TimeoutError):
        await quick.livekit.room.create_room(CreateRoomRequest(name="hangs"))
    [held] = lk.requests("RoomService", "CreateRoom")
    assert held.status is None  # the server still holds it: the client gave up by itself


async def test_a_dial_that_hangs_times_out_after_ringing(lk: Any, quick: Resources) -> None:
    plan = plain_leg(lk.add_trunk(["+15105550100"]).sip_trunk_id, "hangs")
    lk.inject("SIP", "CreateSIPParticipant", delay_after=60)
    with pytest.raises(TimeoutError):
        await dial(quick.single_shot_livekit, plan)
    [held] = lk.requests("SIP", "CreateSIPParticipant")
    assert held.status is None
    assert "sip-callee" in lk.room("hangs").participants  # it rang: the outcome is unknown


async def test_control_a_plain_client_ignores_its_own_timeout(lk: Any) -> None:
    """If this fails, livekit-api applies session timeouts again and `_TimedSession` in
    api/livekit.py can go."""
    lk.inject("RoomService", "CreateRoom", delay_after=3)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        client = lkapi.LiveKitAPI(lk.url, lk.api_key, lk.api_secret, session=session)
        room = await client.room.create_room(CreateRoomRequest(name="outlives"))
    assert room.name == "outlives"
    assert [r.status for r in lk.requests("RoomService", "CreateRoom")] == [200]
