"""Placing calls and following them through the API, for end-to-end tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.settings import Settings
from tests.conftest import Tenant
from tests.support import async_wait_until, report_agent


async def call_status(tenant: Tenant, call_id: str) -> dict[str, Any]:
    return (await tenant.request("GET", f"/v1/api/call/{call_id}")).json()


async def wait_status(
    tenant: Tenant, call_id: str, statuses: set[str], timeout: float = 20
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        view = await call_status(tenant, call_id)
        return view if view["status"] in statuses else None

    return await async_wait_until(reached, timeout=timeout, what=f"call {call_id} in {statuses}")


async def wait_dialed(tenant: Tenant, call_id: str, timeout: float = 20) -> dict[str, Any]:
    """`dialing` is set before CreateSIPParticipant is sent; its answer (the SIP call id)
    is recorded after. Wait for that, so the dial request is known to have been made."""

    async def dialed() -> dict[str, Any] | None:
        view = await call_status(tenant, call_id)
        return view if view["status"] == "dialing" and view.get("sipCallId") else None

    return await async_wait_until(dialed, timeout=timeout, what=f"call {call_id} dialed")


async def report_ready(tenant: Tenant, settings: Settings, call_id: str) -> dict[str, Any]:
    """Once the call waits for its agent, report the agent ready (as the runtime does)."""
    await wait_status(tenant, call_id, {"waiting_for_agent"})
    return await report_agent(tenant.http, settings, call_id)


async def place_ready_call(tenant: Tenant, settings: Settings, **body: Any) -> dict[str, Any]:
    accepted = (await tenant.place_call(**body)).json()
    await report_ready(tenant, settings, accepted["callId"])
    return accepted


def ms_from_iso(iso: str) -> int:
    """An ISO 8601 time of the API's answers, in ms."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def dial_times(lk: Any, room_name: str) -> list[float]:
    """When each CreateSIPParticipant for the room reached the test server (epoch s)."""
    return [
        r.received_at
        for r in lk.requests("SIP", "CreateSIPParticipant")
        if r.request.room_name == room_name
    ]


def most_in_one_second(times: list[float]) -> int:
    """The largest number of `times` (s) inside any half-open one-second window."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def most_at_once(intervals: list[tuple[int, int]]) -> int:
    """The most (start, end) intervals open at one moment; an end counts before a start
    at the same ms."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak
