"""The server clients send one signed token, not one per request, and never a stale one.

`Resources.livekit` and `single_shot_livekit` carry a token with the grants of every request
Outdial makes outside one room's scope (CreateRoom, DeleteRoom, ListRooms, the SIP
requests), signed again once half its lifetime is gone; a room's own request
(ListParticipants) goes through `room_admin_livekit`, which signs a token naming the room.
The LiveKit test server checks every token's signature, lifetime and grants.
"""

from __future__ import annotations

import datetime
from typing import Any

import jwt
import pytest
from livekit import api as lkapi
from livekit.protocol.room import (
    CreateRoomRequest,
    DeleteRoomRequest,
    ListParticipantsRequest,
    ListRoomsRequest,
)

import api.livekit
from api.livekit import SERVER_TOKEN_TTL, ServerToken
from api.resources import Resources
from api.settings import Settings
from sip import dial
from tests.test_livekit_timeout import plain_leg


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_is_signed_again_once_half_its_lifetime_is_gone(settings: Settings) -> None:
    clock = _Clock()
    token = ServerToken(settings, clock)
    assert token.due()  # none signed yet
    claims = jwt.decode(token.sign(), settings.livekit_api_secret, algorithms=["HS256"])
    assert claims["exp"] - claims["nbf"] == SERVER_TOKEN_TTL.total_seconds()
    video = claims["video"]
    assert video["roomCreate"] and video["roomList"]
    assert "roomAdmin" not in video and "room" not in video  # no room's own requests
    assert claims["sip"] == {"admin": True, "call": True}
    clock.now += SERVER_TOKEN_TTL.total_seconds() / 2 - 1
    assert not token.due()
    clock.now += 1
    assert token.due()


async def test_the_server_clients_reuse_one_token_until_it_is_due(
    lk: Any, settings: Settings
) -> None:
    resources = Resources(settings)
    try:
        first = resources.livekit
        single_shot = resources.single_shot_livekit
        await first.room.create_room(CreateRoomRequest(name="token-a"))
        await resources.livekit.room.create_room(CreateRoomRequest(name="token-b"))
        assert resources.livekit is first  # same client: the same token, signed once
        assert resources.single_shot_livekit is single_shot
        [a, b] = lk.requests("RoomService", "CreateRoom")
        assert a.status == b.status == 200
        assert a.claims == b.claims
    finally:
        await resources.aclose()


async def test_a_due_token_gives_new_clients_with_a_new_token(
    lk: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = Resources(settings)
    try:
        first = resources.livekit
        monkeypatch.setattr(api.livekit, "SERVER_TOKEN_TTL", datetime.timedelta(seconds=0))
        renewed = resources.livekit
        assert renewed is not first
        await renewed.room.list_rooms(ListRoomsRequest())
        [listed] = lk.requests("RoomService", "ListRooms")
        assert listed.status == 200
    finally:
        await resources.aclose()


async def test_every_server_request_passes_with_the_server_token(
    lk: Any, settings: Settings
) -> None:
    plan = plain_leg(lk.add_trunk(["+15105550100"]).sip_trunk_id, "token-room")
    resources = Resources(settings)
    try:
        await resources.livekit.room.create_room(CreateRoomRequest(name="token-room"))
        await resources.livekit.room.list_rooms(ListRoomsRequest())
        await dial(resources.single_shot_livekit, plan)
        await resources.livekit.room.delete_room(DeleteRoomRequest(room="token-room"))
    finally:
        await resources.aclose()
    assert [r.status for r in lk.requests()] == [200, 200, 200, 200]


async def test_a_room_request_needs_the_room_admin_client(lk: Any, settings: Settings) -> None:
    resources = Resources(settings)
    try:
        await resources.livekit.room.create_room(CreateRoomRequest(name="scoped"))
        request = ListParticipantsRequest(room="scoped")
        with pytest.raises(lkapi.TwirpError) as refused:
            await resources.livekit.room.list_participants(request)
        assert refused.value.code in ("unauthenticated", "permission_denied")
        listed = await resources.room_admin_livekit.room.list_participants(request)
        assert list(listed.participants) == []
    finally:
        await resources.aclose()
