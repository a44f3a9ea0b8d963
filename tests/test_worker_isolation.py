"""Slow callback receivers must not hold back dialing: the relay may use only part of a
worker process's threads, the rest stay free for the dial queue."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiohttp import web

from api.settings import Settings
from tests.callback_receiver import Receiver
from tests.conftest import Tenant, create_tenant
from tests.support import ApiServer, WorkerProcess, async_wait_until, free_port, has_sip_leg

# The call's order is not this module's subject: calls dial right after CreateRoom.
pytestmark = pytest.mark.dial_immediately

THREADS = 4


async def _turned_away(port: int) -> float:
    """The worker's `outdial_relay_turned_away_total` (0 until its metrics are served)."""
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.TransportError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("outdial_relay_turned_away_total "):
            return float(line.split()[1])
    return 0.0


async def test_hanging_receivers_leave_a_thread_for_dialing(
    tenant: Tenant, client: httpx.AsyncClient, lk: Any, settings: Settings, api_server: ApiServer
) -> None:
    receiver = await Receiver().start()
    released = asyncio.Event()
    holding = 0

    async def hang(_: web.Request) -> web.StreamResponse:
        nonlocal holding
        holding += 1
        await released.wait()
        return web.json_response({"ok": True})

    receiver.behaviours["/hang"] = hang
    # Attempts that outlast the test: a thread held by the relay is not given back meanwhile.
    metrics_port = free_port()
    worker = WorkerProcess(
        settings.model_copy(
            update={"callback_timeout_seconds": 60.0, "worker_metrics_port": metrics_port}
        ),
        threads=THREADS,
    )
    try:
        await tenant.register_number()
        agent = await tenant.create_agent()
        for _ in range(2 * THREADS):
            placed = await tenant.place_call(
                to="+14155552671", call_agent_id=agent["id"], callback_url=f"{receiver.url}/hang"
            )
            assert placed.status_code == 200, placed.text
        # Started with the work already queued: the share applies from the first message.
        worker.start()
        await async_wait_until(lambda: holding >= THREADS - 1, timeout=20, what="held requests")
        # More relay work than the share came to the free thread, which turned it away
        # instead of holding it: the share is full, and stays so.
        await async_wait_until(
            lambda: _turned_away(metrics_port), timeout=20, what="relay work turned away"
        )
        assert holding == THREADS - 1  # one thread of four is kept for dialing

        other = await create_tenant(client, "other")
        await other.register_number("+15105550199")  # a number belongs to one workspace
        other_agent = await other.create_agent()
        call = (await other.place_call(to="+14155552671", call_agent_id=other_agent["id"])).json()

        await async_wait_until(
            lambda: has_sip_leg(lk, call["roomName"], call["callId"]),
            timeout=10,
            what="the other workspace's dial",
        )
        assert holding == THREADS - 1
    finally:
        released.set()
        # Stopped from a thread: the held requests are answered by this loop meanwhile.
        await asyncio.to_thread(worker.stop)
        await receiver.stop()
