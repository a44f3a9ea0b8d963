"""Tests of tests/livekit_server: the real livekit-api client, webhook receiver and agent
worker protocol against the project's LiveKit test server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from livekit import api
from livekit.protocol import agent, models
from livekit.protocol.agent_dispatch import CreateAgentDispatchRequest, RoomAgentDispatch
from livekit.protocol.room import CreateRoomRequest
from livekit.protocol.webhook import WebhookEvent

from tests.livekit_server import SCENARIOS, LiveKitTestServer
from tests.support import async_wait_until

KEY = "testkey"
SECRET = "a-test-secret-that-is-long-enough-32"
Reason = models.DisconnectReason


@pytest.fixture(scope="module")
def server() -> Iterator[LiveKitTestServer]:
    with LiveKitTestServer(api_key=KEY, api_secret=SECRET) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server: LiveKitTestServer) -> Iterator[None]:
    server.reset()
    yield
    server.reset()


@pytest.fixture
async def lkapi(server: LiveKitTestServer) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(url=server.url, api_key=KEY, api_secret=SECRET)
    yield client
    await client.aclose()


async def make_trunk(lkapi: api.LiveKitAPI) -> str:
    trunk = await lkapi.sip.create_outbound_trunk(
        api.CreateSIPOutboundTrunkRequest(
            trunk=api.SIPOutboundTrunkInfo(
                name="carrier", address="sip.carrier.test", numbers=["+15550100"]
            )
        )
    )
    return trunk.sip_trunk_id


def dial(
    trunk_id: str, room: str = "call-1", identity: str = "callee"
) -> api.CreateSIPParticipantRequest:
    return api.CreateSIPParticipantRequest(
        sip_trunk_id=trunk_id,
        sip_call_to="+15550199",
        room_name=room,
        participant_identity=identity,
        participant_attributes={"outdial.call_id": "c-1"},
    )


# -- Twirp API -------------------------------------------------------------------------------


async def test_create_room_is_an_upsert_and_records_agents(server, lkapi) -> None:
    req = CreateRoomRequest(
        name="call-1",
        empty_timeout=60,
        metadata='{"call":"c-1"}',
        agents=[RoomAgentDispatch(agent_name="caller", metadata='{"script":"s1"}')],
    )
    first = await lkapi.room.create_room(req)
    second = await lkapi.room.create_room(req)

    assert first.sid.startswith("RM_") and second.sid == first.sid
    assert first.empty_timeout == 60 and first.departure_timeout == 20
    recorded = server.requests("RoomService", "CreateRoom")
    assert [r.status for r in recorded] == [200, 200]
    assert recorded[0].request.agents[0].metadata == '{"script":"s1"}'
    assert recorded[0].claims["video"]["roomCreate"] is True
    assert recorded[0].claims["iss"] == KEY
    state = server.room("call-1")
    assert state is not None and state.room.metadata == '{"call":"c-1"}'
    assert [a.agent_name for a in state.agents] == ["caller"]
    # the second CreateRoom did not dispatch again
    assert [(j.agent_name, j.metadata) for j in server.jobs()] == [("caller", '{"script":"s1"}')]
    rooms = await lkapi.room.list_rooms(api.ListRoomsRequest(names=["call-1"]))
    assert [r.sid for r in rooms.rooms] == [first.sid]


async def test_create_dispatch_is_not_idempotent(server, lkapi) -> None:
    req = CreateAgentDispatchRequest(agent_name="caller", room="call-2", metadata="m")
    one = await lkapi.agent_dispatch.create_dispatch(req)
    two = await lkapi.agent_dispatch.create_dispatch(req)
    assert one.id != two.id and one.id.startswith("AD_")
    assert len(await lkapi.agent_dispatch.list_dispatch("call-2")) == 2
    assert len(server.jobs()) == 2
    await lkapi.agent_dispatch.delete_dispatch(one.id, "call-2")
    assert [d.id for d in await lkapi.agent_dispatch.list_dispatch("call-2")] == [two.id]


@pytest.mark.parametrize(
    ("key", "secret"), [(KEY, "another-secret-that-is-long-enough-32"), ("otherkey", SECRET)]
)
async def test_bad_credentials_are_401(server, key, secret) -> None:
    async with api.LiveKitAPI(url=server.url, api_key=key, api_secret=secret) as bad:
        with pytest.raises(api.ServerError) as err:
            await bad.room.list_rooms(api.ListRoomsRequest())
    assert err.value.status == 401
    assert server.requests("RoomService", "ListRooms")[0].status == 401


async def test_missing_grant_is_rejected_like_livekit(server) -> None:
    # a token for a different room: roomAdmin does not cover "call-1"
    token = (
        api.AccessToken(KEY, SECRET)
        .with_grants(api.VideoGrants(room_admin=True, room="other-room"))
        .to_jwt()
    )
    async with api.LiveKitAPI.with_token(token, url=server.url) as scoped:
        with pytest.raises(api.ServerError) as err:
            await scoped.room.list_participants(api.ListParticipantsRequest(room="call-1"))
        assert (err.value.status, err.value.code) == (401, "unauthenticated")
        assert err.value.message == "permissions denied"
        # the right room passes
        ok = await scoped.room.list_participants(api.ListParticipantsRequest(room="other-room"))
        assert list(ok.participants) == []


async def test_missing_grant_is_403_in_strict_mode() -> None:
    with LiveKitTestServer(api_key=KEY, api_secret=SECRET, auth_style="strict") as strict:
        token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_list=True)).to_jwt()
        async with api.LiveKitAPI.with_token(token, url=strict.url) as client:
            await client.room.list_rooms(api.ListRoomsRequest())
            with pytest.raises(api.ServerError) as err:
                await client.room.create_room(CreateRoomRequest(name="x"))
        assert (err.value.status, err.value.code) == (403, "permission_denied")
        assert strict.room("x") is None


async def test_create_sip_participant_joins_a_sip_participant(server, lkapi) -> None:
    trunk_id = await make_trunk(lkapi)
    assert trunk_id.startswith("ST_") and trunk_id in server.trunks
    info = await lkapi.sip.create_sip_participant(dial(trunk_id))
    assert info.sip_call_id.startswith("SCL_") and info.participant_identity == "callee"

    listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room="call-1"))
    [p] = listed.participants
    assert p.kind == models.ParticipantInfo.SIP and p.sid == info.participant_id
    assert p.attributes["sip.callStatus"] == "dialing"
    assert p.attributes["sip.phoneNumber"] == "+15550199"
    assert p.attributes["sip.trunkPhoneNumber"] == "+15550100"
    assert p.attributes["sip.trunkID"] == trunk_id
    assert p.attributes["sip.callID"] == info.sip_call_id
    assert p.attributes["outdial.call_id"] == "c-1"
    recorded = server.requests("SIP", "CreateSIPParticipant")[0]
    assert recorded.claims["sip"]["call"] is True and recorded.request.sip_call_to == "+15550199"

    # an unknown trunk is not found, like the real server
    with pytest.raises(api.ServerError) as err:
        await lkapi.sip.create_sip_participant(dial("ST_missing"))
    assert err.value.status == 404


async def test_delete_missing_room_is_not_found(lkapi) -> None:
    with pytest.raises(api.ServerError) as err:
        await lkapi.room.delete_room(api.DeleteRoomRequest(room="nope"))
    assert (err.value.status, err.value.code) == (404, "not_found")


async def test_unknown_method_is_bad_route(server) -> None:
    token = api.AccessToken(KEY, SECRET).to_jwt()
    async with aiohttp.ClientSession() as http:
        url = f"{server.url}/twirp/livekit.RoomService/Explode"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/protobuf"}
        async with http.post(url, data=b"", headers=headers) as resp:
            assert resp.status == 404
            assert (await resp.json())["code"] == "bad_route"


async def test_json_requests_are_answered_in_json(server) -> None:
    token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_create=True)).to_jwt()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/twirp/livekit.RoomService/CreateRoom",
            json={"name": "json-room", "emptyTimeout": 30},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        assert resp.status == 200
        body = await resp.json()
    assert body["name"] == "json-room" and body["emptyTimeout"] == 30


# -- fault injection ---------------------------------------------------------------------------


async def test_injected_503_then_success(server, lkapi) -> None:
    server.inject("RoomService", "CreateRoom", code="unavailable")
    with pytest.raises(api.ServerError) as err:
        await lkapi.room.create_room(CreateRoomRequest(name="retry-me"))
    assert (err.value.status, err.value.code, err.value.message) == (503, "unavailable", "injected")
    assert server.room("retry-me") is None  # an error fault answers instead of applying

    room = await lkapi.room.create_room(CreateRoomRequest(name="retry-me"))
    assert room.name == "retry-me" and server.room("retry-me") is not None
    assert [r.status for r in server.requests("RoomService", "CreateRoom")] == [503, 200]


async def test_injected_sip_error_is_a_sip_call_error(server, lkapi) -> None:
    trunk_id = await make_trunk(lkapi)
    server.inject(
        "SIP",
        "CreateSIPParticipant",
        code="resource_exhausted",
        message="sip status 486: Busy Here",
        meta={"sip_status_code": "486", "sip_status": "Busy Here"},
    )
    with pytest.raises(api.SipCallError) as err:
        await lkapi.sip.create_sip_participant(dial(trunk_id))
    assert err.value.sip_status_code == 486 and err.value.sip_status == "Busy Here"
    assert err.value.status == 429
    assert server.room("call-1") is None

    server.inject_sip_error(603, "Decline")
    with pytest.raises(api.SipCallError) as err:
        await lkapi.sip.create_sip_participant(dial(trunk_id))
    assert (err.value.sip_status_code, err.value.code) == (603, "permission_denied")
    # faults are consumed: the next dial goes through
    await lkapi.sip.create_sip_participant(dial(trunk_id))
    assert "callee" in server.room("call-1").participants


async def test_delay_after_applies_before_answering(server, lkapi) -> None:
    fault = server.inject("RoomService", "CreateRoom", delay_after=60)
    task = asyncio.create_task(lkapi.room.create_room(CreateRoomRequest(name="slow")))
    [rec] = await server.wait_for_async("RoomService", "CreateRoom")
    await async_wait_until(lambda: server.room("slow"), what="the room applied")
    # Applied, and held (60 s): not answered yet.
    assert [r.request.name for r in server.held()] == ["slow"]
    assert server.requests("RoomService", "CreateRoom")[0].status is None  # still in flight
    assert not task.done()
    assert server.release(fault) == 1
    assert (await task).name == "slow"
    assert server.requests("RoomService", "CreateRoom")[0].status == 200
    assert rec.received_at <= time.time() and server.held() == []


async def test_delay_before_changes_nothing_until_it_ends(server, lkapi) -> None:
    server.inject("RoomService", "CreateRoom", delay_before=60)
    task = asyncio.create_task(lkapi.room.create_room(CreateRoomRequest(name="later")))
    await server.wait_for_async("RoomService", "CreateRoom")
    assert [r.request.name for r in server.held()] == ["later"]
    assert server.room("later") is None and not task.done()
    assert server.release() == 1
    await task
    assert server.room("later") is not None


@pytest.mark.parametrize("where", ["delay_before", "delay_after"])
async def test_reset_drops_held_requests_so_they_never_reach_the_next_test(
    server, lkapi, where: str
) -> None:
    server.inject("RoomService", "CreateRoom", **{where: 60})
    task = asyncio.create_task(lkapi.room.create_room(CreateRoomRequest(name="held")))
    await server.wait_for_async("RoomService", "CreateRoom")
    assert len(server.held()) == 1
    await asyncio.to_thread(server.reset)
    with pytest.raises(aiohttp.ClientError):  # dropped, not answered
        await task
    assert server.held() == [] and server.room_names() == [] and server.count() == 0
    # What the next test does is not touched by the dropped request (it cannot apply later:
    # it is no longer waiting anywhere).
    await lkapi.room.create_room(CreateRoomRequest(name="next"))
    assert server.room_names() == ["next"] and server.count() == 1


async def test_drop_closes_the_connection(server, lkapi) -> None:
    trunk_id = await make_trunk(lkapi)
    server.inject("SIP", "CreateSIPParticipant", drop=True)
    with pytest.raises(aiohttp.ClientError):
        await lkapi.sip.create_sip_participant(dial(trunk_id))
    assert server.room("call-1") is None  # dropped before applying

    # after applying: the callee is dialled although the client saw a failure
    server.inject("SIP", "CreateSIPParticipant", drop=True, delay_after=0.05)
    with pytest.raises(aiohttp.ClientError):
        await lkapi.sip.create_sip_participant(dial(trunk_id))
    assert "callee" in server.room("call-1").participants
    assert [r.status for r in server.requests("SIP", "CreateSIPParticipant")] == [0, 0]


async def test_error_after_applying_hides_a_placed_call(server, lkapi) -> None:
    # the hazard of retrying CreateSIPParticipant: the call was placed, the client saw 503
    trunk_id = await make_trunk(lkapi)
    server.inject("SIP", "CreateSIPParticipant", status=503, after_apply=True, times=None)
    for _ in range(2):
        with pytest.raises(api.ServerError) as err:
            await lkapi.sip.create_sip_participant(dial(trunk_id, identity="callee"))
        assert (err.value.status, err.value.code) == (503, "unavailable")
    state = server.room("call-1")
    assert state is not None and list(state.participants) == ["callee"]
    # both dials were applied (recorded answers), the second replaced the first session
    first, second = (r.response for r in server.requests("SIP", "CreateSIPParticipant"))
    assert first.participant_id != second.participant_id
    assert state.participants["callee"].sid == second.participant_id
    server.clear_faults()
    await lkapi.sip.create_sip_participant(dial(trunk_id, identity="second"))
    assert server.count("SIP", "CreateSIPParticipant") == 3


async def test_counting_only_mode_for_benchmarks(lkapi) -> None:
    with LiveKitTestServer(api_key=KEY, api_secret=SECRET, record_requests=False) as bench:
        async with api.LiveKitAPI(url=bench.url, api_key=KEY, api_secret=SECRET) as client:
            for i in range(20):
                await client.room.create_room(CreateRoomRequest(name=f"b{i}"))
        assert bench.count("RoomService", "CreateRoom") == 20 and bench.requests() == []
        assert await bench.wait_for_async("RoomService", "CreateRoom", count=20) == []
        assert len(bench.room_names()) == 20


def test_wait_for_times_out_with_a_helpful_message(server) -> None:
    with pytest.raises(TimeoutError, match=r"SIP\.CreateSIPParticipant"):
        server.wait_for("SIP", "CreateSIPParticipant", timeout=0.05)


# -- webhooks --------------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    events: list[WebhookEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    """A loopback endpoint that verifies webhooks exactly like the API will."""
    verifier = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET))
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)

    async def handle(request: web.Request) -> web.Response:
        assert request.content_type == "application/webhook+json"
        body = await request.text()
        try:
            receiver.events.append(verifier.receive(body, request.headers.get("Authorization", "")))
        except Exception as exc:
            receiver.rejected.append(str(exc))
            return web.Response(status=401, text="rejected")
        return web.Response(text="ok")

    app.router.add_post("/livekit", handle)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver = Receiver(url=f"http://127.0.0.1:{port}/livekit")
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def test_signed_webhook_verifies_and_forgeries_fail(server, lkapi) -> None:
    trunk_id = await make_trunk(lkapi)
    await lkapi.sip.create_sip_participant(dial(trunk_id))
    async with webhook_receiver() as rx:
        server.webhook_url = rx.url
        status, text = await server.send_webhook_async(
            "participant_joined", "call-1", "callee", event_id="EV_fixed"
        )
        assert (status, text) == (200, "ok")
        [event] = rx.events
        assert event.event == "participant_joined" and event.id == "EV_fixed"
        assert event.participant.kind == models.ParticipantInfo.SIP
        assert event.participant.attributes["sip.callStatus"] == "dialing"
        assert event.room.name == "call-1" and event.created_at > 0
        sent = server.webhooks()[0]
        assert '"createdAt":"' in sent.body and '"kind":"SIP"' in sent.body  # Go protojson style

        for forge in ("bad_signature", "altered_body", "stale", "unknown_key", "missing_auth"):
            status, _ = await server.send_webhook_async(
                "participant_joined", "call-1", "callee", forge=forge
            )
            assert status == 401, forge
        assert len(rx.events) == 1 and len(rx.rejected) == 5


def test_blocking_send_webhook_from_a_test_thread(server) -> None:
    received: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(request.headers["Authorization"])
        return web.Response(status=202, text="queued")

    async def serve() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # host the receiver on the server's own loop, so this test thread can block
    runner, port = server._call(serve())
    try:
        server.add_sip_participant("room-b", "callee")
        server.webhook_url = f"http://127.0.0.1:{port}/hook"
        assert server.send_webhook("room_started", "room-b") == (202, "queued")
        assert received and not received[0].startswith("Bearer")  # bare JWT like LiveKit
    finally:
        server._call(runner.cleanup())


EXPECTED = {
    # scenario: (events, participant_left reason, sip.callStatus at participant_left)
    "answered_completed": (
        ["participant_joined", "track_published", "participant_left", "room_finished"],
        Reason.CLIENT_INITIATED,
        "hangup",
    ),
    "busy": (
        ["participant_joined", "track_published", "participant_left", "room_finished"],
        Reason.USER_REJECTED,
        "ringing",
    ),
    "no_answer": (
        ["participant_joined", "track_published", "participant_left", "room_finished"],
        Reason.USER_UNAVAILABLE,
        "ringing",
    ),
    "trunk_failure": (
        ["participant_joined", "track_published", "participant_left", "room_finished"],
        Reason.SIP_TRUNK_FAILURE,
        "dialing",
    ),
    "agent_crashed": (["room_finished"], None, None),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_scenarios_send_the_livekit_sequence(server, lkapi, scenario) -> None:
    events, reason, final_status = EXPECTED[scenario]
    await lkapi.room.create_room(
        CreateRoomRequest(name="call-1", agents=[RoomAgentDispatch(agent_name="caller")])
    )
    if scenario != "agent_crashed":
        await lkapi.sip.create_sip_participant(dial(await make_trunk(lkapi)))
    async with webhook_receiver() as rx:
        server.webhook_url = rx.url
        sent = await server.play_scenario_async("call-1", scenario, delay=0.01)
    assert sent == [(e, 200) for e in events]
    assert [e.event for e in rx.events] == events
    assert len({e.id for e in rx.events}) == len(events)
    assert server.room("call-1") is None  # room_finished ends the room
    if reason is not None:
        joined, left = rx.events[0], rx.events[2]
        assert joined.participant.attributes["sip.callStatus"] == "dialing"
        assert rx.events[1].track.type == models.TrackType.AUDIO
        assert left.participant.disconnect_reason == reason
        assert left.participant.attributes["sip.callStatus"] == final_status
        assert left.participant.kind == models.ParticipantInfo.SIP
    if scenario == "busy":
        state = server._state.lookup_room("call-1")
        assert state is not None and state.sip_status["callee"] == ("486", "Busy Here")


# -- agent worker websocket ---------------------------------------------------------------------


class RawWorker:
    """A minimal worker speaking WorkerMessage/ServerMessage protobuf over the websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, msg: agent.WorkerMessage) -> None:
        await self.ws.send_bytes(msg.SerializeToString())

    async def recv(self) -> agent.ServerMessage:
        data = await asyncio.wait_for(self.ws.receive_bytes(), 5)
        return agent.ServerMessage.FromString(data)


@contextlib.asynccontextmanager
async def raw_worker(server: LiveKitTestServer, agent_name: str) -> AsyncIterator[RawWorker]:
    token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(agent=True)).to_jwt()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            server.ws_url + "/agent", headers={"Authorization": f"Bearer {token}"}
        ) as ws,
    ):
        worker = RawWorker(ws)
        await worker.send(
            agent.WorkerMessage(
                register=agent.RegisterWorkerRequest(
                    type=agent.JT_ROOM, agent_name=agent_name, version="raw-1"
                )
            )
        )
        reply = await worker.recv()
        assert reply.WhichOneof("message") == "register"
        assert reply.register.worker_id.startswith("AW_")
        assert reply.register.server_info.agent_protocol == 1
        yield worker


async def test_raw_worker_gets_assignment_after_create_room(server, lkapi) -> None:
    async with raw_worker(server, "caller") as worker:
        await worker.send(agent.WorkerMessage(ping=agent.WorkerPing(timestamp=42)))
        assert (await worker.recv()).pong.last_timestamp == 42
        assert [w.agent_name for w in server.workers()] == ["caller"]

        await lkapi.room.create_room(
            CreateRoomRequest(
                name="call-1", agents=[RoomAgentDispatch(agent_name="caller", metadata="m1")]
            )
        )
        offer = await worker.recv()
        job = offer.availability.job
        assert (job.agent_name, job.metadata, job.room.name) == ("caller", "m1", "call-1")
        await worker.send(
            agent.WorkerMessage(
                availability=agent.AvailabilityResponse(
                    job_id=job.id, available=True, participant_identity="agent-1"
                )
            )
        )
        assignment = (await worker.recv()).assignment
        assert assignment.job.id == job.id and assignment.url == server.ws_url
        claims = api.TokenVerifier(KEY, SECRET).verify(assignment.token)
        assert claims.identity == "agent-1" and claims.kind == "agent"
        assert claims.video.room == "call-1" and claims.video.room_join
        assert claims.attributes["lk.agent.name"] == "caller"

        await worker.send(
            agent.WorkerMessage(
                update_job=agent.UpdateJobStatus(job_id=job.id, status=agent.JS_RUNNING)
            )
        )
        info = await server.wait_for_job_status_async(job.id, "running", 5)
        assert info.worker_id == server.workers()[0].worker_id and info.metadata == "m1"
        assert [u.status for u in info.status_updates] == [agent.JS_RUNNING]

        # deleting the room terminates the job on its worker
        await lkapi.room.delete_room(api.DeleteRoomRequest(room="call-1"))
        assert (await worker.recv()).termination.job_id == job.id


async def test_job_waits_for_a_worker_and_is_offered_on_register(server, lkapi) -> None:
    await lkapi.agent_dispatch.create_dispatch(
        CreateAgentDispatchRequest(agent_name="late", room="call-9", metadata="later")
    )
    assert server.jobs()[0].assigned_at is None
    async with raw_worker(server, "late") as worker:
        offer = (await worker.recv()).availability
        assert offer.job.metadata == "later"
        # declining leaves it pending (no other worker)
        await worker.send(
            agent.WorkerMessage(
                availability=agent.AvailabilityResponse(job_id=offer.job.id, available=False)
            )
        )
        declined = await asyncio.to_thread(
            server.wait_for_declined, offer.job.id, server.workers()[0].worker_id
        )
        assert declined.assigned_at is None


async def test_agent_websocket_needs_the_agent_grant(server) -> None:
    token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_list=True)).to_jwt()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(
                server.ws_url + "/agent", headers={"Authorization": f"Bearer {token}"}
            )
    assert err.value.status == 401


async def test_real_agent_server_receives_the_job(server, lkapi) -> None:
    from livekit.agents import AgentServer, JobContext, JobExecutorType

    seen: list[str] = []
    worker = AgentServer(
        ws_url=server.ws_url,
        api_key=KEY,
        api_secret=SECRET,
        job_executor_type=JobExecutorType.THREAD,
        num_idle_processes=0,
        port=0,
        max_retry=1,
    )

    @worker.rtc_session(agent_name="outdial-real")
    async def entrypoint(ctx: JobContext) -> None:
        seen.append(ctx.job.metadata)

    run = asyncio.create_task(worker.run(devmode=True))
    try:
        await asyncio.to_thread(server.wait_for_worker, "outdial-real", 15)
        await lkapi.room.create_room(
            CreateRoomRequest(
                name="real-1",
                agents=[RoomAgentDispatch(agent_name="outdial-real", metadata='{"n":1}')],
            )
        )
        job = await asyncio.to_thread(server.wait_for_job, room_name="real-1", timeout=10)
        await asyncio.to_thread(server.wait_for_job_status, job.job_id, "running", 10)
        await async_wait_until(lambda: seen, what="the entrypoint to run")
        assert seen == ['{"n":1}']
    finally:
        await worker.aclose()
        run.cancel()
        with contextlib.suppress(BaseException):
            await run


def test_reset_keeps_workers_but_forgets_the_rest(server) -> None:
    async def scenario() -> None:
        async with raw_worker(server, "keeper"):
            async with api.LiveKitAPI(url=server.url, api_key=KEY, api_secret=SECRET) as client:
                await client.room.create_room(CreateRoomRequest(name="r"))
            server.inject("RoomService", "ListRooms", code="internal", times=None)
            await asyncio.to_thread(server.reset)
            assert server.room_names() == [] and server.count() == 0
            assert [w.agent_name for w in server.workers()] == ["keeper"]
            async with api.LiveKitAPI(url=server.url, api_key=KEY, api_secret=SECRET) as client:
                await client.room.list_rooms(api.ListRoomsRequest())  # fault was cleared

    asyncio.run(scenario())
