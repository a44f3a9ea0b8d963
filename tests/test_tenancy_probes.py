"""What the probes tell a stranger (issue 10, item 15): `/metrics` behind an optional bearer
token, and `/readyz` without the LiveKit host or error text unless the caller holds the
metrics or admin token. Real API, real Redis, a LiveKit URL nobody listens on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.settings import Settings
from tests.support import ADMIN_TOKEN, ApiServer, free_port

METRICS_TOKEN = "test-metrics-token"


@pytest.fixture
async def probed(settings: Settings, lk: Any) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """An API whose LiveKit is down (so readiness has an error to tell) and that has a
    metrics token; yields a client and the dead LiveKit URL's host:port."""
    port = free_port()
    dead = settings.model_copy(
        update={"livekit_url": f"http://127.0.0.1:{port}", "metrics_token": METRICS_TOKEN}
    )
    server = ApiServer(dead, free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
            yield http, f"127.0.0.1:{port}"
    finally:
        server.stop()


async def test_readiness_details_need_a_token(probed: tuple[httpx.AsyncClient, str]) -> None:
    http, livekit_host = probed
    public = await http.get("/readyz")
    assert public.status_code == 200
    assert public.json() == {
        "status": "degraded",
        "checks": {"redis": "ok", "livekit": "error", "livekitWebhooks": "none received yet"},
    }
    assert livekit_host not in public.text
    for token in ("wrong", "t\u00e9st"):
        guessed = await http.get("/readyz", headers={"Authorization": f"Bearer {token}".encode()})
        assert guessed.json()["checks"]["livekit"] == "error"
    for token in (METRICS_TOKEN, ADMIN_TOKEN):
        detailed = await http.get("/readyz", headers={"Authorization": f"Bearer {token}"})
        assert detailed.json()["checks"]["livekit"].startswith("error: ")
        assert detailed.json()["checks"]["redis"] == "ok"


async def test_metrics_need_the_metrics_token_when_one_is_set(
    probed: tuple[httpx.AsyncClient, str],
) -> None:
    http, _ = probed
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": b"Bearer \xc3\xa9"}):
        refused = await http.get("/metrics", headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "UNAUTHORIZED"
    # The admin token opens readiness details, but metrics take their own token only.
    admin = await http.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.status_code == 401
    served = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert served.status_code == 200
    assert "outdial_queue_depth" in served.text


async def test_metrics_stay_open_without_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200
