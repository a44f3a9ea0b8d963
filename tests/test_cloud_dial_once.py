"""End to end: a dispatcher pointed at LiveKit Cloud rings the callee once.

livekit-api replays a request that got a 5xx or a transport error when its URL is a LiveKit
Cloud host (`*.livekit.cloud`), and LiveKit may have applied the request before failing it.
The dispatcher sends CreateSIPParticipant through a client that never replays it. Here a
real worker process has `LIVEKIT_URL=http://project-x.livekit.cloud:<port>`; a
`sitecustomize` on its PYTHONPATH (and only on its) makes `socket.getaddrinfo` answer
127.0.0.1 for `*.livekit.cloud`, so that name reaches the loopback LiveKit test server. The
API server of the test keeps the loopback URL.

The control test shows that the same fault, against the same name, makes a plain
(replaying) client dial more than once: the e2e test's "exactly one dial" can fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp.resolver import DefaultResolver, ThreadedResolver
from livekit import api as lkapi

from api.settings import Settings
from api.store.messages import DIAL_ACTOR, DIAL_QUEUE
from sip import SipLegPlan, dial
from tests.conftest import Tenant
from tests.support import WorkerProcess, async_wait_until, report_agent
from tests.test_livekit_failover import CloudResolver

CLOUD_HOST = "project-x.livekit.cloud"
CALLER = "+15105550100"

# Imported by the worker's interpreter at startup (`site`), before any of its code runs.
# aiohttp's default resolver here is the threaded one (no aiodns), which resolves through
# `loop.getaddrinfo`, i.e. `socket.getaddrinfo` in an executor thread.
SITECUSTOMIZE = """
import socket

_getaddrinfo = socket.getaddrinfo


def _loopback_for_livekit_cloud(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and name.lower().rstrip(".").endswith(".livekit.cloud"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_for_livekit_cloud
"""


def inject_dial_applied_then_503(lk: Any) -> None:
    """LiveKit rings the callee, then answers 503, on every attempt a replaying client can
    make (3 in livekit-api 1.2.2)."""
    lk.inject(
        "SIP", "CreateSIPParticipant", code="unavailable", status=503, after_apply=True, times=3
    )


async def _view(tenant: Tenant, call_id: str) -> dict[str, Any]:
    return (await tenant.request("GET", f"/v1/api/call/{call_id}")).json()


async def _wait_status(tenant: Tenant, call_id: str, statuses: set[str]) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        view = await _view(tenant, call_id)
        return view if view["status"] in statuses else None

    return await async_wait_until(reached, timeout=30, what=f"call {call_id} in {statuses}")


def _pending_dial_jobs(redis_client: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    """`dial_call` messages still in the broker (queued, in progress or delayed for a retry);
    Dramatiq removes a message once its actor has returned."""
    namespace = settings.broker_namespace
    pending = []
    for key in (f"{namespace}:{DIAL_QUEUE}.msgs", f"{namespace}:{DIAL_QUEUE}.DQ.msgs"):
        for body in redis_client.hvals(key):
            message = json.loads(body)
            if message["actor_name"] == DIAL_ACTOR:
                pending.append(message)
    return pending


@pytest.fixture
async def agent(tenant: Tenant) -> dict[str, Any]:
    created = await tenant.create_agent()
    number = await tenant.register_number(CALLER)
    return created | {"trunk_id": number["sipTrunkId"]}


@pytest.fixture
def cloud_worker(
    settings: Settings, api_server: Any, lk: Any, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """The dispatcher, with LIVEKIT_URL on the Cloud name that resolves to the test server."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    cloud = settings.model_copy(update={"livekit_url": f"http://{CLOUD_HOST}:{lk.port}"})
    process = WorkerProcess(cloud, extra_pythonpath=[str(tmp_path)]).start()
    yield process
    process.stop()


async def test_a_dispatcher_on_livekit_cloud_dials_once_when_the_dial_fails_after_ringing(
    tenant: Tenant,
    agent: dict[str, Any],
    lk: Any,
    settings: Settings,
    redis_client: redis.Redis,
    cloud_worker: WorkerProcess,
) -> None:
    assert DefaultResolver is ThreadedResolver, "aiohttp no longer resolves via getaddrinfo"
    # One failed CreateRoom (an upsert, which the worker's replaying client may send again):
    # a replay carries the first attempt's request id, which proves that the worker reached
    # the test server through the Cloud name and that its failover is armed there.
    lk.inject("RoomService", "CreateRoom", code="unavailable", status=503)
    accepted = (await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])).json()
    call_id = accepted["callId"]
    # Unresolved, the name ends the call failed (LIVEKIT_UNAVAILABLE) before it waits.
    waiting = await _wait_status(tenant, call_id, {"waiting_for_agent", "failed"})
    assert waiting["status"] == "waiting_for_agent", (waiting, cloud_worker.log())
    create_room = lk.requests("RoomService", "CreateRoom")
    assert len(create_room) == 2
    assert len({request.request_id for request in create_room}) == 1
    assert lk.count("SIP", "CreateSIPParticipant") == 0

    inject_dial_applied_then_503(lk)
    looks_before = lk.count("RoomService", "ListParticipants")
    await report_agent(tenant.http, settings, call_id)
    # The 503 leaves the dial's outcome unknown: the dispatcher looks at the room.
    await async_wait_until(
        lambda: lk.count("RoomService", "ListParticipants") > looks_before,
        timeout=30,
        what="the ListParticipants after the dial",
    )
    await async_wait_until(
        lambda: not _pending_dial_jobs(redis_client, settings),
        timeout=30,
        what="the dial job to finish",
    )

    dials = lk.requests("SIP", "CreateSIPParticipant")
    assert len(dials) == 1, (dials, cloud_worker.log())
    assert (dials[0].status, dials[0].error_code) == (503, "unavailable")
    assert dials[0].request.participant_identity == f"sip-{call_id}"
    looks = lk.requests("RoomService", "ListParticipants")[looks_before:]
    assert looks and {look.request.room for look in looks} == {accepted["roomName"]}
    assert looks[0].received_at >= dials[0].received_at
    # LiveKit rang (the leg is in the room): the call stays `dialing`, without the SIP call
    # id that only a successful answer carries, and its webhooks will settle it.
    room = lk.room(accepted["roomName"])
    assert room is not None and list(room.participants) == [f"sip-{call_id}"]
    view = await _view(tenant, call_id)
    assert view["status"] == "dialing", view
    assert view["sipCallId"] is None and view["errorCode"] is None
    assert list(view["transitions"]) == ["queued", "dispatching", "waiting_for_agent", "dialing"]
    assert lk.count("RoomService", "DeleteRoom") == 0


async def test_control_a_replaying_client_on_the_cloud_name_dials_again(lk: Any) -> None:
    """The same fault through a plain LiveKitAPI (failover on, livekit-api's 10 s timeout, as
    the worker's clients have) on the same Cloud name: LiveKit records several dials."""
    trunk = lk.add_trunk([CALLER])
    plan = SipLegPlan(
        room_name="call-room",
        sip_trunk_id=trunk.sip_trunk_id,
        caller_number=CALLER,
        callee_number="+14155552671",
        participant_identity="sip-callee",
        participant_name="+14155552671",
        participant_metadata="{}",
        ringing_timeout_seconds=30,
        max_call_duration_seconds=600,
    )
    inject_dial_applied_then_503(lk)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=CloudResolver()),
        timeout=aiohttp.ClientTimeout(total=10),
    ) as session:
        client = lkapi.LiveKitAPI(
            url=f"http://{CLOUD_HOST}:{lk.port}",
            api_key=lk.api_key,
            api_secret=lk.api_secret,
            session=session,
        )
        with pytest.raises(lkapi.ServerError):
            await dial(client, plan)
        await client.aclose()
    dials = lk.requests("SIP", "CreateSIPParticipant")
    assert len(dials) > 1
    assert len({request.request_id for request in dials}) == 1  # the SDK's replays of one call
