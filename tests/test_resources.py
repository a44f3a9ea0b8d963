"""One resources holder per event loop: its owner (the API's lifespan, the worker's
middleware) gets the store, the LiveKit clients and the callback session from it, on its own
loop, and closing it closes every one of them: no Redis connection, no HTTP session is left
open (the "Unclosed client session" noise at exit)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiohttp
import dramatiq
import httpx
import psutil
import pytest
from livekit import api as lkapi
from livekit.protocol.room import ListRoomsRequest

from api.app import create_app
from api.jobs.broker import build_broker
from api.jobs.resources import WorkerResources, worker_settings
from api.resources import Resources
from api.settings import Settings
from tests.support import wait_until


def redis_connections(settings: Settings) -> set[tuple[str, int]]:
    """This process's open TCP connections to the Redis server of `settings`, by local
    address. A set, not a count: the tests compare the connections opened since `before`,
    which a connection of an earlier test closing meanwhile (its pool collected) leaves alone."""
    port = int(settings.redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    return {
        (connection.laddr.ip, connection.laddr.port)
        for connection in psutil.Process().net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == port
    }


async def use_all(resources: Resources) -> tuple[aiohttp.ClientSession, list[lkapi.LiveKitAPI]]:
    """Opens everything the holder holds by using it; returns the session and clients."""
    await resources.store.redis.ping()
    await resources.store.lean.execute(["PING"])
    clients = [resources.livekit, resources.single_shot_livekit]
    for client in clients:
        await client.room.list_rooms(ListRoomsRequest())
    session = resources.callback_session
    async with session.get(f"{resources.settings.livekit_url}/") as response:
        await response.read()
    return session, clients


async def assert_closed(session: aiohttp.ClientSession, clients: list[lkapi.LiveKitAPI]) -> None:
    assert session.closed
    for client in clients:
        with pytest.raises(RuntimeError, match="closed"):
            await client.room.list_rooms(ListRoomsRequest())


async def test_aclose_closes_what_the_holder_opened_and_a_next_use_reopens(
    settings: Settings, lk: Any
) -> None:
    before = redis_connections(settings)
    resources = Resources(settings)
    session, clients = await use_all(resources)
    assert redis_connections(settings) - before  # it opened some
    assert clients[0] is not clients[1]  # replaying and single-shot (see api/livekit.py)
    await resources.aclose()
    await assert_closed(session, clients)
    assert redis_connections(settings) - before == set()
    assert resources.livekit not in clients
    await resources.livekit.room.list_rooms(ListRoomsRequest())
    await resources.aclose()


async def test_a_callers_livekit_session_is_used_and_left_open(settings: Settings, lk: Any) -> None:
    async with aiohttp.ClientSession() as given:
        resources = Resources(settings, livekit_session=given)
        await resources.livekit.room.list_rooms(ListRoomsRequest())
        await resources.aclose()
        assert not given.closed
    assert [r.status for r in lk.requests("RoomService", "ListRooms")] == [200]


async def test_a_holder_refuses_a_second_event_loop(settings: Settings) -> None:
    resources = Resources(settings)
    store = resources.store
    await store.lean.execute(["PING"])
    outcomes: list[str] = []

    async def use_on_another_loop() -> None:
        for name in ("store", "livekit", "single_shot_livekit", "callback_session"):
            try:
                getattr(resources, name)
            except RuntimeError as exc:
                outcomes.append(str(exc))
        # The store's lean client, reached past the holder, refuses that loop too.
        try:
            await store.lean.execute(["PING"])
        except RuntimeError as exc:
            outcomes.append(str(exc))

    thread = threading.Thread(target=asyncio.run, args=(use_on_another_loop(),))
    thread.start()
    thread.join(timeout=10)
    assert len(outcomes) == 5 and all("another event loop" in text for text in outcomes)
    assert await store.lean.execute(["PING"]) == ["PONG"]  # its own loop is still served
    await resources.aclose()


async def test_the_apps_lifespan_owns_its_resources_and_closes_them(
    settings: Settings, lk: Any
) -> None:
    before = redis_connections(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://outdial.test") as http:
            ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        session, clients = await use_all(app.state.resources)
    await assert_closed(session, clients)
    assert redis_connections(settings) - before == set()


async def test_the_worker_middleware_owns_its_resources_on_the_workers_loop(
    settings: Settings, lk: Any
) -> None:
    """A real Dramatiq worker in this process: its actor gets the middleware's holder on the
    worker's event-loop thread; stopping the worker closes it there."""
    before = redis_connections(settings)
    broker = build_broker(settings)
    [middleware] = [m for m in broker.middleware if isinstance(m, WorkerResources)]
    used: dict[str, Any] = {}

    async def use_resources() -> None:
        used["loop"] = asyncio.get_running_loop()
        used["session"], used["clients"] = await use_all(middleware.resources)

    actor = dramatiq.actor(
        use_resources, broker=broker, queue_name="resources", actor_name="use_resources"
    )
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        actor.send()
        await asyncio.to_thread(wait_until, lambda: "clients" in used, 15, 0.05, "the actor")
    finally:
        await asyncio.to_thread(worker.stop)
        broker.close()  # as Dramatiq's CLI does at exit: the wake-up listener stops
        broker.client.connection_pool.disconnect()  # the broker's own; it never closes them
    assert used["loop"] is not asyncio.get_running_loop()
    await assert_closed(used["session"], used["clients"])
    assert redis_connections(settings) - before == set()


def test_the_worker_reads_the_settings_its_broker_was_built_with(settings: Settings) -> None:
    """One source of settings in a worker process: the holder's, not the environment's."""
    built_with = settings.model_copy(
        update={"callback_timeout_seconds": settings.callback_timeout_seconds + 1}
    )
    broker = build_broker(built_with)
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(broker)
    try:
        assert worker_settings() is built_with
    finally:
        dramatiq.broker.global_broker = previous
        broker.client.connection_pool.disconnect()
