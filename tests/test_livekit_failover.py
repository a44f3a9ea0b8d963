"""At most one dial, transfer and trunk per request of ours, on LiveKit Cloud too.

livekit-api replays a request that got a 5xx or a transport error when the URL is a LiveKit
Cloud host (`*.livekit.cloud`). Here clients use `http://project-x.livekit.cloud:<port>`,
which their aiohttp session resolves to the loopback LiveKit test server, and the server
applies each request and then fails it (503, or a dropped connection). The SDK then asks
`/settings/regions` for other regions (the test server answers 404: none) and replays the
same request against the same origin. The control tests show those replays with a plain
client; the others show that the clients Outdial uses for non-idempotent requests send one.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from livekit import api as lkapi
from livekit.protocol.room import CreateRoomRequest
from livekit.protocol.sip import TransferSIPParticipantRequest

from agent_runtime.telephony import CallControl
from api.app import create_app
from api.resources import Resources
from api.settings import Settings
from sip import SipLegPlan, TrunkSettings, create_outbound_trunk, dial
from tests.conftest import create_tenant

ROOM = "call-room"
SIP_IDENTITY = "sip-callee"
CALLER = "+15105550100"


class CloudResolver(AbstractResolver):
    """`*.livekit.cloud` -> 127.0.0.1; any other name fails, so nothing leaves loopback."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if not host.endswith(".livekit.cloud"):
            raise OSError(f"{host} is not a LiveKit Cloud name")
        loopback: ResolveResult = {
            "hostname": host,
            "host": "127.0.0.1",
            "port": port,
            "family": socket.AF_INET,
            "proto": 0,
            "flags": socket.AI_NUMERICHOST,
        }
        return [loopback]

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class AppliedThenFailed:
    """A fault the server answers after applying the request, and what the client raises."""

    name: str
    error: type[Exception]
    fault: dict[str, Any] = field(default_factory=dict)

    def inject(self, lk: Any, service: str, method: str) -> None:
        # Every attempt a replaying client can make (3 in livekit-api 1.2.2) fails the same way.
        lk.inject(service, method, times=3, after_apply=True, **self.fault)


FAULTS = [
    AppliedThenFailed("503", lkapi.ServerError, {"code": "unavailable", "status": 503}),
    AppliedThenFailed("dropped", aiohttp.ClientError, {"drop": True}),
]
applied_then_failed = pytest.mark.parametrize("failure", FAULTS, ids=lambda f: f.name)


@pytest.fixture
def cloud_url(lk: Any) -> str:
    return f"http://project-x.livekit.cloud:{lk.port}"


@pytest.fixture
async def cloud_session() -> AsyncIterator[aiohttp.ClientSession]:
    # livekit-api's default timeout: long enough (>= 5 s) for its failover to engage.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=CloudResolver()),
        timeout=aiohttp.ClientTimeout(total=10),
    )
    yield session
    await session.close()


@pytest.fixture
async def replaying(
    lk: Any, cloud_url: str, cloud_session: aiohttp.ClientSession
) -> AsyncIterator[lkapi.LiveKitAPI]:
    """A client as livekit-api builds it by default (`failover=True`), e.g. a job's ctx.api."""
    client = lkapi.LiveKitAPI(cloud_url, lk.api_key, lk.api_secret, session=cloud_session)
    yield client
    await client.aclose()


@pytest.fixture
def cloud_settings(settings: Settings, cloud_url: str) -> Settings:
    """Outdial's settings pointing at the Cloud name."""
    return settings.model_copy(update={"livekit_url": cloud_url})


@pytest.fixture
async def cloud_resources(
    cloud_settings: Settings, cloud_session: aiohttp.ClientSession
) -> AsyncIterator[Resources]:
    """Outdial's clients, as the app and the worker hold them, on the Cloud name."""
    resources = Resources(cloud_settings, livekit_session=cloud_session)
    yield resources
    await resources.aclose()


def leg_plan(trunk_id: str) -> SipLegPlan:
    return SipLegPlan(
        room_name=ROOM,
        sip_trunk_id=trunk_id,
        caller_number=CALLER,
        callee_number="+15550001111",
        participant_identity=SIP_IDENTITY,
        participant_name="+15550001111",
        participant_metadata="{}",
        ringing_timeout_seconds=30,
        max_call_duration_seconds=600,
    )


def transfer_request() -> TransferSIPParticipantRequest:
    return TransferSIPParticipantRequest(
        room_name=ROOM, participant_identity=SIP_IDENTITY, transfer_to="tel:+15550002222"
    )


def assert_replayed(requests: list[Any]) -> None:
    """More than one arrival of one request (the SDK keeps its request id across replays)."""
    assert len(requests) > 1
    assert len({request.request_id for request in requests}) == 1


# -- the dial (CreateSIPParticipant) ---------------------------------------------------------


@applied_then_failed
async def test_a_replaying_client_dials_the_callee_again(
    lk: Any, replaying: lkapi.LiveKitAPI, failure: AppliedThenFailed
) -> None:
    trunk = lk.add_trunk([CALLER])
    failure.inject(lk, "SIP", "CreateSIPParticipant")
    with pytest.raises(failure.error):
        await dial(replaying, leg_plan(trunk.sip_trunk_id))
    assert_replayed(lk.requests("SIP", "CreateSIPParticipant"))


@applied_then_failed
async def test_the_single_shot_client_dials_once(
    lk: Any, cloud_resources: Resources, failure: AppliedThenFailed
) -> None:
    client = cloud_resources.single_shot_livekit
    trunk = lk.add_trunk([CALLER])
    failure.inject(lk, "SIP", "CreateSIPParticipant")
    with pytest.raises(failure.error) as raised:
        await dial(client, leg_plan(trunk.sip_trunk_id))
    assert lk.count("SIP", "CreateSIPParticipant") == 1
    # The server did dial: the error means "outcome unknown", and the room says which.
    assert list(lk.room(ROOM).participants) == [SIP_IDENTITY]
    if isinstance(raised.value, lkapi.ServerError):
        assert (raised.value.code, raised.value.status) == ("unavailable", 503)


async def test_the_idempotent_client_still_fails_over(lk: Any, cloud_resources: Resources) -> None:
    client = cloud_resources.livekit
    assert client is not cloud_resources.single_shot_livekit
    lk.inject("RoomService", "CreateRoom", code="unavailable", status=503)
    room = await client.room.create_room(CreateRoomRequest(name=ROOM))
    assert room.name == ROOM
    assert lk.count("RoomService", "CreateRoom") == 2


# -- the agent's transfer (TransferSIPParticipant) ----------------------------------------------


@applied_then_failed
async def test_a_replaying_client_transfers_again(
    lk: Any, replaying: lkapi.LiveKitAPI, failure: AppliedThenFailed
) -> None:
    lk.add_sip_participant(ROOM, SIP_IDENTITY)
    failure.inject(lk, "SIP", "TransferSIPParticipant")
    with pytest.raises(failure.error):
        await replaying.sip.transfer_sip_participant(transfer_request())
    assert_replayed(lk.requests("SIP", "TransferSIPParticipant"))


def token_client(lk: Any, cloud_url: str, session: aiohttp.ClientSession) -> lkapi.LiveKitAPI:
    """A job client in token mode (LIVEKIT_TOKEN): the grants a transfer and hang-up need."""
    token = (
        lkapi.AccessToken(lk.api_key, lk.api_secret)
        .with_grants(lkapi.VideoGrants(room_admin=True, room=ROOM, room_create=True))
        .with_sip_grants(lkapi.SIPGrants(call=True))
        .to_jwt()
    )
    return lkapi.LiveKitAPI.with_token(token, cloud_url, session=session)


@pytest.fixture(params=["key", "token"])
def job_client(
    request: pytest.FixtureRequest,
    lk: Any,
    cloud_url: str,
    cloud_session: aiohttp.ClientSession,
    replaying: lkapi.LiveKitAPI,
) -> lkapi.LiveKitAPI:
    """The job's ctx.api: a default (replaying) client, from a key pair or a token."""
    if request.param == "key":
        return replaying
    return token_client(lk, cloud_url, cloud_session)


@applied_then_failed
async def test_call_control_transfers_once(
    lk: Any, job_client: lkapi.LiveKitAPI, failure: AppliedThenFailed
) -> None:
    lk.add_sip_participant(ROOM, SIP_IDENTITY)
    control = CallControl(job_client, ROOM, SIP_IDENTITY)
    failure.inject(lk, "SIP", "TransferSIPParticipant")
    try:
        with pytest.raises(failure.error):
            await control.transfer("+15550002222")
    finally:
        await control.aclose()
    [transfer] = lk.requests("SIP", "TransferSIPParticipant")
    assert (transfer.request.room_name, transfer.request.participant_identity) == (
        ROOM,
        SIP_IDENTITY,
    )
    assert transfer.request.transfer_to == "tel:+15550002222"


async def test_call_control_transfers_with_the_jobs_server_and_credentials(
    lk: Any, job_client: lkapi.LiveKitAPI
) -> None:
    lk.add_sip_participant(ROOM, SIP_IDENTITY)
    control = CallControl(job_client, ROOM, SIP_IDENTITY)
    await control.aclose()  # nothing to release before the first transfer
    await control.transfer("sip:desk@example.com")
    await control.aclose()
    # The transfer client shared the job client's session: closing it left that open.
    await control.hang_up()
    [transfer] = lk.requests("SIP", "TransferSIPParticipant")
    assert (transfer.status, transfer.request.transfer_to) == (200, "sip:desk@example.com")
    assert lk.room(ROOM) is None


# -- trunk creation (CreateSIPOutboundTrunk) ------------------------------------------------


@applied_then_failed
async def test_a_replaying_client_creates_extra_trunks(
    lk: Any, replaying: lkapi.LiveKitAPI, failure: AppliedThenFailed
) -> None:
    failure.inject(lk, "SIP", "CreateSIPOutboundTrunk")
    with pytest.raises(failure.error):
        await create_outbound_trunk(replaying, CALLER, TrunkSettings("sip.example.net"), "x")
    assert_replayed(lk.requests("SIP", "CreateSIPOutboundTrunk"))
    assert len(lk.trunks) > 1


@applied_then_failed
async def test_registering_a_number_creates_at_most_one_trunk(
    lk: Any,
    cloud_settings: Settings,
    cloud_session: aiohttp.ClientSession,
    failure: AppliedThenFailed,
) -> None:
    # The app's LiveKit requests go through the resolver's session.
    app = create_app(cloud_settings, livekit_session=cloud_session)
    body = {"number": CALLER, "trunk": {"address": "sip.example.net"}}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://outdial.test") as http:
            tenant = await create_tenant(http)
            failure.inject(lk, "SIP", "CreateSIPOutboundTrunk")
            refused = await tenant.request("POST", "/v1/api/numbers", json=body)
            listed = await tenant.request("GET", "/v1/api/numbers")
            lk.clear_faults()
            created = await tenant.request("POST", "/v1/api/numbers", json=body)
    assert (refused.status_code, refused.json()["code"]) == (502, "LIVEKIT_ERROR")
    assert listed.json() == {"numbers": []}
    # The refused request reached LiveKit once (and, applied, left one trunk); the next one,
    # unfaulted, adds the number's trunk.
    assert created.status_code == 201, created.text
    assert lk.count("SIP", "CreateSIPOutboundTrunk") == 2
    assert created.json()["sipTrunkId"] in lk.trunks
