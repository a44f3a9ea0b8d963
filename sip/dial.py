"""The dial sequence on LiveKit: room with the agent dispatch inside, then one SIP leg.

`CreateRoom` is an upsert, so it is retried on transient errors. `CreateSIPParticipant`
dials every time it is called, so it is sent once and never retried here: when its
outcome is unknown, look at the room (`find_sip_participant`) instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from google.protobuf.duration_pb2 import Duration
from livekit import api as lkapi
from livekit.protocol.agent_dispatch import RoomAgentDispatch
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.room import (
    CreateRoomRequest,
    DeleteRoomRequest,
    ListParticipantsRequest,
)
from livekit.protocol.sip import CreateSIPParticipantRequest, SIPParticipantInfo

logger = logging.getLogger("outdial.sip")
T = TypeVar("T")

_TRANSIENT_CODES = frozenset({"unavailable", "internal", "unknown", "deadline_exceeded"})


@dataclass(frozen=True, slots=True)
class RoomPlan:
    name: str
    agent_name: str
    dispatch_metadata: str
    room_metadata: str
    # A room nobody joined closes after this; one everybody left, after departure_timeout.
    empty_timeout_seconds: int = 120
    departure_timeout_seconds: int = 20


@dataclass(frozen=True, slots=True)
class SipLegPlan:
    room_name: str
    sip_trunk_id: str
    caller_number: str | None
    callee_number: str
    participant_identity: str
    participant_name: str
    participant_metadata: str
    ringing_timeout_seconds: int
    max_call_duration_seconds: int


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    first_delay: float = 0.2
    max_delay: float = 3.0

    def delays(self) -> list[float]:
        return [min(self.first_delay * 2**i, self.max_delay) for i in range(self.attempts - 1)]


def is_transient(error: BaseException) -> bool:
    """Worth retrying for an idempotent request: transport errors, timeouts, 5xx."""
    if isinstance(error, aiohttp.ClientError | asyncio.TimeoutError):
        return True
    if isinstance(error, lkapi.ServerError):
        return error.status >= 500 or error.code in _TRANSIENT_CODES
    return False


async def _with_retries(label: str, policy: RetryPolicy, attempt: Callable[[], Awaitable[T]]) -> T:
    for delay in policy.delays():
        try:
            return await attempt()
        except Exception as error:
            if not is_transient(error):
                raise
            logger.warning("%s failed (%s), retrying in %.1fs", label, error, delay)
            await asyncio.sleep(delay)
    return await attempt()


async def ensure_room(
    client: lkapi.LiveKitAPI, plan: RoomPlan, policy: RetryPolicy = RetryPolicy()
) -> Room:
    """Create the room with the agent dispatch inside it (idempotent, retried)."""
    request = CreateRoomRequest(
        name=plan.name,
        empty_timeout=plan.empty_timeout_seconds,
        departure_timeout=plan.departure_timeout_seconds,
        metadata=plan.room_metadata,
        agents=[RoomAgentDispatch(agent_name=plan.agent_name, metadata=plan.dispatch_metadata)],
    )
    return await _with_retries(
        f"CreateRoom {plan.name}", policy, lambda: client.room.create_room(request)
    )


async def dial(client: lkapi.LiveKitAPI, plan: SipLegPlan) -> SIPParticipantInfo:
    """Ask LiveKit SIP to call `callee_number`, once. Does not wait for the answer."""
    request = CreateSIPParticipantRequest(
        sip_trunk_id=plan.sip_trunk_id,
        sip_call_to=plan.callee_number,
        sip_number=plan.caller_number or "",
        room_name=plan.room_name,
        participant_identity=plan.participant_identity,
        participant_name=plan.participant_name,
        participant_metadata=plan.participant_metadata,
        ringing_timeout=Duration(seconds=plan.ringing_timeout_seconds),
        max_call_duration=Duration(seconds=plan.max_call_duration_seconds),
        wait_until_answered=False,
    )
    return await client.sip.create_sip_participant(request)


async def list_participants(
    client: lkapi.LiveKitAPI, room_name: str, policy: RetryPolicy = RetryPolicy()
) -> list[ParticipantInfo]:
    """Who is in the room now (nobody when the room is gone); retried on transient errors."""
    try:
        response = await _with_retries(
            f"ListParticipants {room_name}",
            policy,
            lambda: client.room.list_participants(ListParticipantsRequest(room=room_name)),
        )
    except lkapi.ServerError as error:
        if error.code == "not_found":
            return []
        raise
    return list(response.participants)


async def find_sip_participant(
    client: lkapi.LiveKitAPI, room_name: str, identity: str, policy: RetryPolicy = RetryPolicy()
) -> ParticipantInfo | None:
    """The SIP participant if the room has it; None when the room or participant is absent."""
    for participant in await list_participants(client, room_name, policy):
        if participant.identity == identity:
            return participant
    return None


async def delete_room(
    client: lkapi.LiveKitAPI, room_name: str, policy: RetryPolicy = RetryPolicy()
) -> None:
    """Delete the room (drops every leg in it). A room that is already gone is fine."""
    try:
        await _with_retries(
            f"DeleteRoom {room_name}",
            policy,
            lambda: client.room.delete_room(DeleteRoomRequest(room=room_name)),
        )
    except lkapi.ServerError as error:
        if error.code != "not_found":
            raise
