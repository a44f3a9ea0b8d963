"""The event relay end to end: the LiveKit test server sends signed webhooks to the real API,
a real `dramatiq api.worker` delivers callbacks to real HTTP receivers on loopback."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from api.security import event_token, verify_signature
from api.settings import Settings
from tests.callback_receiver import Receiver
from tests.conftest import Tenant, create_tenant
from tests.support import ApiServer, WorkerProcess, async_wait_until, has_sip_leg

# The call's order is not this module's subject: calls dial right after CreateRoom.
pytestmark = pytest.mark.dial_immediately

FAST_RETRIES: dict[str, Any] = {"callback_retry_schedule": [0.2, 0.5, 1.0]}
TERMINAL_TYPES = {"call.ended", "call.failed", "call.canceled"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A room that is gone with its call open is rechecked one answer grace later.
    return settings.model_copy(update={"agent_answer_grace_seconds": 2})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
def relay_worker(settings: Settings, api_server: ApiServer) -> Iterator[WorkerProcess]:
    process = WorkerProcess(settings.model_copy(update=FAST_RETRIES)).start()
    yield process
    process.stop()


@pytest.fixture
async def agent_id(tenant: Tenant) -> str:
    await tenant.register_number()
    return (await tenant.create_agent())["id"]


async def _place(tenant: Tenant, agent_id: str, callback_url: str | None, **extra: Any) -> dict:
    body = {"to": "+14155550123", "call_agent_id": agent_id, **extra}
    if callback_url:
        body["callback_url"] = callback_url
    response = await tenant.place_call(**body)
    assert response.status_code == 200, response.text
    return response.json()


async def _agent_event(
    client: httpx.AsyncClient, settings: Settings, call_id: str, event_type: str, **data: Any
) -> None:
    token = event_token(call_id, settings.event_signing_key)
    response = await client.post(
        f"/v1/internal/calls/{call_id}/events",
        json={"type": event_type, "data": data},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text


async def _events(tenant: Tenant, call_id: str) -> list[dict[str, Any]]:
    response = await tenant.request("GET", f"/v1/api/call/{call_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["events"]


async def _all_delivered(tenant: Tenant, call_id: str) -> list[dict[str, Any]] | None:
    """The call's events once every one of them is recorded as delivered."""
    listed = await _events(tenant, call_id)
    return listed if listed and {e["delivery"]["state"] for e in listed} == {"delivered"} else None


async def _wait_dialed(lk: Any, tenant: Tenant, call: dict[str, Any]) -> None:
    async def dialed() -> bool:
        return has_sip_leg(lk, call["roomName"], call["callId"])

    await async_wait_until(dialed, timeout=20, what=f"call {call['callId']} dialed")


def _assert_delivered_once_in_order(
    receiver: Receiver, path: str, secret: str, metadata: dict[str, Any]
) -> list[dict[str, Any]]:
    delivered = receiver.delivered(path)
    counts = Counter(payload["id"] for payload in delivered)
    assert all(n == 1 for n in counts.values()), counts
    assert [p["sequence"] for p in delivered] == list(range(1, len(delivered) + 1))
    for attempt in receiver.attempts(path):
        assert verify_signature(attempt.body, attempt.headers["X-Outdial-Signature"], secret)
        assert attempt.headers["X-Outdial-Event-Id"] == attempt.payload["id"]
        assert attempt.headers["X-Outdial-Event"] == attempt.payload["type"]
        assert attempt.headers["User-Agent"].startswith("Outdial/")
        assert attempt.payload["metadata"] == metadata
    return delivered


EXPECTED = {
    "answered_completed": [("call.answered", "in_progress"), ("call.ended", "completed")],
    "busy": [("call.ended", "busy")],
    "no_answer": [("call.ended", "no_answer")],
    "trunk_failure": [("call.failed", "failed")],
    "agent_crashed": [("call.answered", "in_progress"), ("call.ended", "completed")],
}
START = [
    ("call.queued", "queued"),
    ("call.dispatching", "dispatching"),
    ("call.dialing", "dialing"),
]


async def test_scenarios_deliver_every_event_once_in_order_signed_with_metadata(
    tenant: Tenant,
    agent_id: str,
    lk: Any,
    api_server: ApiServer,
    client: httpx.AsyncClient,
    receiver: Receiver,
    relay_worker: WorkerProcess,
    settings: Settings,
) -> None:
    lk.webhook_url = api_server.url + "/v1/livekit/webhook"
    calls = {}
    for scenario in EXPECTED:
        metadata = {"scenario": scenario, "crm": {"id": 7, "tags": ["vip"]}}
        calls[scenario] = await _place(
            tenant, agent_id, f"{receiver.url}/{scenario}", metadata=metadata
        )
    for call in calls.values():
        await _wait_dialed(lk, tenant, call)
    # "Agent crashed mid-call": the agent had reported the answer, then the room just ends
    # (no end report from anyone): the reconciler settles it one answer grace later.
    await _agent_event(client, settings, calls["agent_crashed"]["callId"], "call.answered")
    await asyncio.gather(
        *(lk.play_scenario_async(calls[name]["roomName"], name) for name in EXPECTED)
    )

    def finished() -> bool:
        return all(
            any(p["type"] in TERMINAL_TYPES for p in receiver.delivered(f"/{name}"))
            for name in EXPECTED
        )

    await async_wait_until(finished, timeout=20, what="terminal callbacks")
    for name, tail in EXPECTED.items():
        # Every call is terminal (its terminal callback arrived), so its stored events are
        # final: once all are delivered, the receiver must hold exactly those.
        listed = await async_wait_until(
            lambda name=name: _all_delivered(tenant, calls[name]["callId"]),
            timeout=20,
            what=f"{name}: every event delivered",
        )
        metadata = {"scenario": name, "crm": {"id": 7, "tags": ["vip"]}}
        delivered = _assert_delivered_once_in_order(
            receiver, f"/{name}", tenant.webhook_secret, metadata
        )
        assert [p["id"] for p in delivered] == [e["id"] for e in listed], name
        assert [(p["type"], p["status"]) for p in delivered] == START + tail, name
        assert {p["callId"] for p in delivered} == {calls[name]["callId"]}
        assert {p["roomName"] for p in delivered} == {calls[name]["roomName"]}
    ends = {name: receiver.delivered(f"/{name}")[-1]["data"]["reason"] for name in EXPECTED}
    assert ends == {
        "answered_completed": "hangup_by_callee",
        "busy": "busy",
        "no_answer": "no_answer",
        "trunk_failure": "trunk_failure",
        "agent_crashed": "completed",
    }
    crashed = receiver.delivered("/agent_crashed")[-1]["data"]
    assert crashed["source"] == "reconciler"


async def _post_transcripts(
    client: httpx.AsyncClient, settings: Settings, call_id: str, count: int
) -> None:
    for turn in range(count):
        await _agent_event(
            client,
            settings,
            call_id,
            "call.transcript",
            turns=[{"role": "user", "text": f"{turn}"}],
        )


async def test_receiver_down_then_up_gets_everything_once_in_order_others_unaffected(
    tenant: Tenant,
    agent_id: str,
    lk: Any,
    client: httpx.AsyncClient,
    receiver: Receiver,
    relay_worker: WorkerProcess,
    settings: Settings,
) -> None:
    flaky = await Receiver().start()

    async def unavailable(_: web.Request) -> web.StreamResponse:
        return web.Response(status=503, text="down for maintenance")

    flaky.behaviours["/a"] = unavailable
    metadata = {"who": "a"}
    call_a = await _place(tenant, agent_id, f"{flaky.url}/a", metadata=metadata)
    call_b = await _place(tenant, agent_id, f"{receiver.url}/b", metadata={"who": "b"})
    for call in (call_a, call_b):
        await _wait_dialed(lk, tenant, call)
    for call in (call_a, call_b):
        await _post_transcripts(client, settings, call["callId"], 10)

    # While A answers 503, B keeps getting its events.
    await async_wait_until(lambda: len(receiver.delivered("/b")) == 13, timeout=10, what="B")
    assert flaky.delivered("/a") == [] and len(flaky.attempts("/a")) >= 1
    # Then A's host is gone altogether (connection refused), then back.
    answered_503 = (await _events(tenant, call_a["callId"]))[0]["delivery"]["attempts"]
    await flaky.stop()

    async def refused() -> bool:
        delivery = (await _events(tenant, call_a["callId"]))[0]["delivery"]
        return delivery["attempts"] > answered_503 and delivery["lastStatus"] is None

    await async_wait_until(refused, timeout=15, what="an attempt while A's host is down")
    flaky.behaviours.clear()
    await flaky.start()
    try:
        listed = await async_wait_until(
            lambda: _all_delivered(tenant, call_a["callId"]), timeout=15, what="A"
        )
        delivered = _assert_delivered_once_in_order(flaky, "/a", tenant.webhook_secret, metadata)
        assert len(delivered) == 13
        assert [p["id"] for p in delivered] == [e["id"] for e in listed]
        assert {r.status for r in flaky.attempts("/a")} == {200, 503}
        # 503s, at least one refused connection, then the delivery.
        assert listed[0]["delivery"]["attempts"] >= answered_503 + 2
    finally:
        await flaky.stop()
    _assert_delivered_once_in_order(receiver, "/b", tenant.webhook_secret, {"who": "b"})


async def test_refusals_redirects_and_redelivery(
    tenant: Tenant,
    agent_id: str,
    lk: Any,
    client: httpx.AsyncClient,
    receiver: Receiver,
    relay_worker: WorkerProcess,
) -> None:
    async def bad_request(_: web.Request) -> web.StreamResponse:
        return web.Response(status=400, text="unknown call")

    async def moved(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(location="/landing")

    receiver.behaviours = {"/bad": bad_request, "/moved": moved}
    bad = await _place(tenant, agent_id, f"{receiver.url}/bad")
    redirected = await _place(tenant, agent_id, f"{receiver.url}/moved")

    async def all_final(call_id: str) -> list[dict[str, Any]] | None:
        listed = await _events(tenant, call_id)
        states = [e["delivery"]["state"] for e in listed]
        return listed if len(listed) == 3 and set(states) == {"failed"} else None

    listed = await async_wait_until(lambda: all_final(bad["callId"]), timeout=15, what="400s")
    assert [e["delivery"]["attempts"] for e in listed] == [1, 1, 1]
    assert {e["delivery"]["lastStatus"] for e in listed} == {400}
    assert "unknown call" in listed[0]["delivery"]["lastError"]
    assert len(receiver.attempts("/bad")) == 3

    listed = await async_wait_until(
        lambda: all_final(redirected["callId"]), timeout=15, what="redirects"
    )
    assert {e["delivery"]["lastStatus"] for e in listed} == {302}
    assert "not followed" in listed[0]["delivery"]["lastError"]
    assert receiver.attempts("/landing") == []

    # The receiver is fixed: one event is sent again on request, out of band.
    receiver.behaviours.pop("/bad")
    first = (await _events(tenant, bad["callId"]))[0]
    path = f"/v1/api/call/{bad['callId']}/events/{first['id']}/redeliver"
    response = await tenant.request("POST", path)
    assert response.status_code == 202, response.text
    await async_wait_until(lambda: receiver.delivered("/bad"), timeout=10, what="redelivery")
    assert [p["id"] for p in receiver.delivered("/bad")] == [first["id"]]

    async def redelivered() -> dict[str, Any] | None:
        delivery = (await _events(tenant, bad["callId"]))[0]["delivery"]
        return delivery if delivery["state"] == "delivered" else None

    delivery = await async_wait_until(redelivered, timeout=5, what="redelivery recorded")
    assert delivery["attempts"] == 1 and delivery["redelivery"]["lastStatus"] == 200

    # Another workspace sees none of it.
    from tests.conftest import create_tenant

    other = await create_tenant(client, "other")
    assert (await other.request("GET", f"/v1/api/call/{bad['callId']}/events")).status_code == 404
    assert (await other.request("POST", path)).status_code == 404


async def test_callback_host_resolving_to_loopback_is_refused_at_delivery(
    tenant: Tenant, agent_id: str, receiver: Receiver, settings: Settings, api_server: ApiServer
) -> None:
    # Accepted by an API that allows private hosts, delivered by a worker that does not.
    strict = settings.model_copy(update={"callback_allow_private": False, **FAST_RETRIES})
    worker = WorkerProcess(strict).start()
    try:
        call = await _place(tenant, agent_id, f"http://localhost:{receiver.port}/private")

        async def failed() -> list[dict[str, Any]] | None:
            listed = await _events(tenant, call["callId"])
            return listed if listed[0]["delivery"]["state"] == "failed" else None

        listed = await async_wait_until(failed, timeout=15, what="refused delivery")
    finally:
        worker.stop()
    delivery = listed[0]["delivery"]
    assert delivery["attempts"] == 1 and delivery["lastStatus"] is None
    assert "non-public address" in delivery["lastError"]
    assert "localhost" in delivery["lastError"]
    assert receiver.attempts("/private") == []


async def test_worker_killed_during_delivery_still_delivers_after_restart(
    tenant: Tenant, agent_id: str, receiver: Receiver, settings: Settings, api_server: ApiServer
) -> None:
    # A short attempt timeout keeps the dead drain's lease (timeout + 5 s) short, and a short
    # heartbeat timeout brings the dead worker's message back in ~2 s instead of 10.
    quick = settings.model_copy(
        update={
            "callback_timeout_seconds": 3.0,
            "heartbeat_timeout_ms": 2_000,
            "worker_timeout_ms": 500,
            **FAST_RETRIES,
        }
    )
    held, released = asyncio.Event(), asyncio.Event()

    async def hold_first(_: web.Request) -> web.StreamResponse:
        if not held.is_set():
            held.set()
            await released.wait()  # never answered in time: the worker dies meanwhile
            return web.Response(status=503)
        return web.json_response({"ok": True})

    receiver.behaviours["/slow"] = hold_first
    first_worker = WorkerProcess(quick).start()
    second_worker = WorkerProcess(quick)
    try:
        call = await _place(tenant, agent_id, f"{receiver.url}/slow", metadata={"k": "v"})
        await asyncio.wait_for(held.wait(), timeout=30)

        async def dialed() -> bool:
            view = (await tenant.request("GET", f"/v1/api/call/{call['callId']}")).json()
            return bool(view.get("sipCallId"))

        # Kill only the delivery: the same worker dispatched the call, and a dispatch cut
        # short would (rightly) add a call.failed event this test does not expect.
        await async_wait_until(dialed, timeout=30, what="the dial to be confirmed")
        first_worker.kill()
        second_worker.start()

        async def complete() -> bool:
            listed = await _events(tenant, call["callId"])
            return len(listed) == 3 and all(e["delivery"]["state"] == "delivered" for e in listed)

        # The second worker's boot, the dead lease and a retry: ~15 s on quiet cores, twice
        # that on a busy machine (the suite runs on more processes than cores).
        await async_wait_until(complete, timeout=90, what="delivery after the crash")
    finally:
        released.set()
        first_worker.kill()
        second_worker.stop()
    delivered = _assert_delivered_once_in_order(
        receiver, "/slow", tenant.webhook_secret, {"k": "v"}
    )
    assert [p["type"] for p in delivered] == ["call.queued", "call.dispatching", "call.dialing"]


class TestWorkspaceInFlightCap:
    """`OUTDIAL_CALLBACK_MAX_IN_FLIGHT_PER_WORKSPACE=1`, seen by the API and the worker."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"callback_max_in_flight_per_workspace": 1})

    async def test_one_delivery_in_flight_per_workspace_others_unaffected(
        self,
        tenant: Tenant,
        agent_id: str,
        lk: Any,
        client: httpx.AsyncClient,
        receiver: Receiver,
        relay_worker: WorkerProcess,
        settings: Settings,
        redis_client: Any,
    ) -> None:
        assert relay_worker.settings.callback_max_in_flight_per_workspace == 1
        held, released = asyncio.Event(), asyncio.Event()
        in_flight = max_in_flight = 0
        arrivals: list[str] = []  # the workspace's requests, in arrival order

        async def capped(request: web.Request) -> web.StreamResponse:
            nonlocal in_flight, max_in_flight
            in_flight += 1
            max_in_flight = max(max_in_flight, in_flight)
            arrivals.append(request.path)
            try:
                if not held.is_set():  # the first request of the workspace, whichever call
                    held.set()
                    await released.wait()
                return web.json_response({"ok": True})
            finally:
                in_flight -= 1

        receiver.behaviours = {"/a": capped, "/b": capped}
        other = await create_tenant(client, "other")
        await other.register_number("+15105550199")  # a number belongs to one workspace
        other_agent = (await other.create_agent())["id"]

        calls = {
            path: await _place(tenant, agent_id, f"{receiver.url}{path}", metadata={"p": path})
            for path in ("/a", "/b")
        }
        await asyncio.wait_for(held.wait(), timeout=15)
        try:
            held_path = arrivals[0]
            waiting_path = "/b" if held_path == "/a" else "/a"
            # Another workspace is not held back by this one's cap.
            elsewhere = await _place(
                other, other_agent, f"{receiver.url}/other", metadata={"p": "/other"}
            )
            await async_wait_until(
                lambda: receiver.delivered("/other"), timeout=15, what="the other workspace"
            )
            assert not released.is_set()
            # The other call of the workspace was turned away by the cap: it waits for the
            # held call's slot (not polling), and was not sent anything meanwhile.
            waiting_key = f"{settings.redis_prefix}:relay:waiting:{tenant.id}"
            waiting_id = calls[waiting_path]["callId"].encode()
            await async_wait_until(
                lambda: waiting_id in redis_client.zrange(waiting_key, 0, -1),
                timeout=15,
                what="the other call to wait for a slot",
            )
            assert arrivals == [held_path], arrivals
            assert receiver.attempts(waiting_path) == []
            inflight_key = f"{settings.redis_prefix}:relay:inflight:{tenant.id}"
            slots = [m.decode() for m in redis_client.zrange(inflight_key, 0, -1)]
            assert slots == [calls[held_path]["callId"]]
            waiting = await _events(tenant, calls[waiting_path]["callId"])
            assert waiting and {e["delivery"]["state"] for e in waiting} == {"pending"}
        finally:
            released.set()

        async def all_delivered() -> bool:
            for who, call in [(tenant, c) for c in calls.values()] + [(other, elsewhere)]:
                listed = await _events(who, call["callId"])
                if len(listed) < 3 or {e["delivery"]["state"] for e in listed} != {"delivered"}:
                    return False
            return True

        await async_wait_until(all_delivered, timeout=15, what="every event delivered")
        assert max_in_flight == 1
        for path, call in calls.items():
            delivered = _assert_delivered_once_in_order(
                receiver, path, tenant.webhook_secret, {"p": path}
            )
            listed = await _events(tenant, call["callId"])
            assert [p["id"] for p in delivered] == [e["id"] for e in listed]
            ids = Counter(r.headers["X-Outdial-Event-Id"] for r in receiver.attempts(path))
            assert set(ids.values()) == {1}, ids  # no attempt was repeated either
        _assert_delivered_once_in_order(receiver, "/other", other.webhook_secret, {"p": "/other"})
