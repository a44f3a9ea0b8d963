"""An ended call's room goes (`api.services.call_end.drop_room`), and its end never fails
with the room: the one helper every end path uses (dispatcher, reconciler, webhooks, the
agent's events, the API's cancel), against the LiveKit test server with its failures made
where LiveKit answers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from livekit.protocol.room import CreateRoomRequest

from api.resources import Resources
from api.services.call_end import drop_room
from api.settings import Settings

ROOM = "call-room"


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    """The clients the app and the worker hold, with a 1 s timeout."""
    held = Resources(settings.model_copy(update={"livekit_timeout_seconds": 1.0}))
    yield held
    await held.aclose()


async def _room(resources: Resources) -> None:
    await resources.livekit.room.create_room(CreateRoomRequest(name=ROOM))


def _deletes(lk: Any) -> list[int | None]:
    return [r.status for r in lk.requests("RoomService", "DeleteRoom")]


async def test_a_live_room_is_deleted(lk: Any, resources: Resources) -> None:
    await _room(resources)
    await drop_room(resources.livekit, ROOM, "c1")
    assert lk.room(ROOM) is None
    assert _deletes(lk) == [200]


async def test_a_room_already_gone_is_fine(
    lk: Any, resources: Resources, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="outdial.api"):
        await drop_room(resources.livekit, "never-created", "c1")
    assert _deletes(lk) == [404]
    assert "could not delete room" not in caplog.text


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503, "after_apply": True},
        {"drop": True, "after_apply": True},
        {"delay_after": 60},  # held past the client's timeout
    ],
    ids=["503", "dropped", "timed_out"],
)
async def test_a_delete_that_took_effect_but_failed_is_retried_into_not_found(
    lk: Any, resources: Resources, caplog: pytest.LogCaptureFixture, fault: dict[str, Any]
) -> None:
    await _room(resources)
    lk.inject("RoomService", "DeleteRoom", **fault)
    with caplog.at_level(logging.WARNING, logger="outdial.api"):
        await drop_room(resources.livekit, ROOM, "c1")
    assert lk.room(ROOM) is None
    # the first one applied (held, or answered with the failure), the retry found nothing
    assert _deletes(lk)[-1] == 404
    assert "could not delete room" not in caplog.text


@pytest.mark.parametrize(
    "fault", [{"status": 503}, {"drop": True}], ids=["unavailable", "connection_dropped"]
)
async def test_livekit_failing_every_delete_is_logged_not_raised(
    lk: Any, resources: Resources, caplog: pytest.LogCaptureFixture, fault: dict[str, Any]
) -> None:
    await _room(resources)
    lk.inject("RoomService", "DeleteRoom", times=None, after_apply=False, **fault)
    with caplog.at_level(logging.WARNING, logger="outdial.api"):
        await drop_room(resources.livekit, ROOM, "c1")
    assert f"could not delete room {ROOM}" in caplog.text
    assert lk.room(ROOM) is not None  # an empty room closes by itself
    assert len(_deletes(lk)) == 5  # sip.delete_room's attempts, none of them applied
