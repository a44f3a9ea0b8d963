"""The LiveKit test server in its own process (tests/livekit_server/process.py, remote.py):
what benchmarks read and change through its control API is the child's real state."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import aiohttp
import pytest
from livekit import api
from livekit.protocol.room import CreateRoomRequest
from livekit.protocol.sip import (
    CreateSIPOutboundTrunkRequest,
    CreateSIPParticipantRequest,
    SIPOutboundTrunkInfo,
)

from tests.livekit_server.remote import LiveKitServerProcess

KEY = "testkey"
SECRET = "a-test-secret-that-is-long-enough-32"


@pytest.fixture(scope="module")
def server() -> Iterator[LiveKitServerProcess]:
    with LiveKitServerProcess(KEY, SECRET) as child:
        yield child


@pytest.fixture(autouse=True)
def fresh(server: LiveKitServerProcess) -> Iterator[None]:
    server.reset()
    yield
    server.reset()


async def dial_once(url: str, room: str) -> None:
    async with api.LiveKitAPI(url, KEY, SECRET) as client:
        trunk = await client.sip.create_outbound_trunk(
            CreateSIPOutboundTrunkRequest(
                trunk=SIPOutboundTrunkInfo(name="t", address="sip.example.net", numbers=["+1555"])
            )
        )
        await client.room.create_room(CreateRoomRequest(name=room, metadata='{"call_id": "c1"}'))
        await client.sip.create_sip_participant(
            CreateSIPParticipantRequest(
                sip_trunk_id=trunk.sip_trunk_id, sip_call_to="+14155552671", room_name=room
            )
        )


def test_runs_in_another_process(server: LiveKitServerProcess) -> None:
    assert server.pid != os.getpid()
    assert os.path.exists(f"/proc/{server.pid}")


async def test_recorded_requests_come_back_decoded(server: LiveKitServerProcess) -> None:
    before = time.time()
    await dial_once(server.url, "room-1")

    dials = server.requests("SIP", "CreateSIPParticipant")
    assert [(d.request.room_name, d.request.sip_call_to, d.status) for d in dials] == [
        ("room-1", "+14155552671", 200)
    ]
    assert before <= dials[0].received_at <= time.time()
    assert server.count("RoomService", "CreateRoom") == 1
    assert server.count() == 3
    position, rooms = await server.requests_from_async(0, "RoomService", "CreateRoom")
    assert [r.request.metadata for r in rooms] == ['{"call_id": "c1"}']
    assert position == 3  # the whole log was read: the next look starts after it
    assert server.requests_from(position, "RoomService", "CreateRoom") == (3, [])


async def test_injected_fault_and_reset_apply_in_the_child(server: LiveKitServerProcess) -> None:
    server.inject("RoomService", "CreateRoom", code="unavailable")
    with pytest.raises(api.TwirpError) as failed:
        await dial_once(server.url, "room-2")
    assert failed.value.code == "unavailable"
    assert [r.status for r in server.requests("RoomService", "CreateRoom")] == [503]

    server.reset()
    assert server.count() == 0
    await dial_once(server.url, "room-2")  # the fault was consumed, not kept by reset
    assert server.count("SIP", "CreateSIPParticipant") == 1


async def test_counts_only_when_records_are_off(server: LiveKitServerProcess) -> None:
    server.record_requests = False
    try:
        await dial_once(server.url, "room-3")
        assert server.requests() == []
        assert server.count("SIP", "CreateSIPParticipant") == 1
    finally:
        server.record_requests = True


async def test_scenario_sends_webhooks_from_the_child(server: LiveKitServerProcess) -> None:
    received: list[str] = []

    async def hook(request: aiohttp.web.Request) -> aiohttp.web.Response:
        received.append((await request.read()).decode())
        return aiohttp.web.Response(text="ok")

    app = aiohttp.web.Application()
    app.router.add_post("/hook", hook)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        server.webhook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        await dial_once(server.url, "room-4")
        sent = await server.play_scenario_async("room-4", "busy")
        assert [event for event, _ in sent] == [
            "participant_joined", "track_published", "participant_left", "room_finished",
        ]  # fmt: skip
        assert {status for _, status in sent} == {200}
        assert len(received) == 4 and all('"room-4"' in body for body in received)
    finally:
        await runner.cleanup()


def test_child_exits_when_its_parent_goes() -> None:
    child = LiveKitServerProcess(KEY, SECRET).start()
    process = child._process
    assert process is not None and process.stdin is not None
    process.stdin.close()  # what the parent's death does to the pipe
    try:
        assert process.wait(timeout=10) == 0
    finally:
        child.stop()
