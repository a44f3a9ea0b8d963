"""Shared fixtures. Every test gets its own Redis key prefix and deletes only those keys."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis

from api.settings import Settings
from api.store.base import Store, open_store
from tests.redis_proxy import RedisProxy
from tests.support import (
    ADMIN_TOKEN,
    TEST_API_KEY,
    TEST_API_SECRET,
    ApiServer,
    SpareRedis,
    WorkerProcess,
    free_port,
)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# One per pytest process: each xdist worker imports this module, so each has its own.
RUN_ID = uuid.uuid4().hex[:8]
# Processes the whole suite runs on (`-n auto` in pyproject.toml): most of a test's time is
# spent waiting on a subprocess, a server or a deadline, so more processes than cores pay.
SUITE_PROCESSES = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """The suite (or a folder of it) runs on SUITE_PROCESSES processes; named modules or
    tests run in this one, which starts at once. PYTEST_XDIST_AUTO_NUM_WORKERS overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    here = config.invocation_params.dir
    folders = all((here / arg.split("::")[0]).is_dir() for arg in config.args)
    return SUITE_PROCESSES if folders else 0


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.exit(f"Redis is not reachable at {REDIS_URL}: {exc}", returncode=3)
    yield client
    delete_prefix(client, f"odtest-{RUN_ID}-")
    client.close()


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[Any]:
    from tests.livekit_server import LiveKitTestServer

    server = LiveKitTestServer(api_key=TEST_API_KEY, api_secret=TEST_API_SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def lk(livekit_server: Any) -> Iterator[Any]:
    """The LiveKit test server, reset for this test."""
    livekit_server.reset()
    yield livekit_server
    livekit_server.reset()


@pytest.fixture
def api_port() -> int:
    return free_port()


@pytest.fixture
def redis_only_settings(redis_client: redis.Redis) -> Iterator[Settings]:
    """Defaults on a fresh key prefix, for tests of the store alone (no LiveKit, no API)."""
    prefix = f"odtest-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    yield Settings(REDIS_URL=REDIS_URL, OUTDIAL_REDIS_PREFIX=prefix)
    delete_prefix(redis_client, prefix)


@pytest.fixture
async def store(redis_only_settings: Settings) -> AsyncIterator[Store]:
    """The store on `redis_only_settings`' prefix."""
    opened = open_store(redis_only_settings)
    yield opened
    await opened.aclose()


@pytest.fixture
def settings(
    redis_client: redis.Redis, livekit_server: Any, api_port: int, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    """Production defaults on a fresh key prefix. Tests whose subject is not the call's
    order (the relay, Redis failures) mark themselves `dial_immediately`: their calls are
    dialed right after CreateRoom, without waiting for an agent."""
    prefix = f"odtest-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    immediate = request.node.get_closest_marker("dial_immediately") is not None
    yield Settings(
        REDIS_URL=REDIS_URL,
        LIVEKIT_URL=livekit_server.url,
        LIVEKIT_API_KEY=TEST_API_KEY,
        LIVEKIT_API_SECRET=TEST_API_SECRET,
        OUTDIAL_ADMIN_TOKEN=ADMIN_TOKEN,
        OUTDIAL_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
        OUTDIAL_REDIS_PREFIX=prefix,
        OUTDIAL_CALLBACK_ALLOW_PRIVATE=True,
        OUTDIAL_SECRET_KEY="test-event-token-key",
        OUTDIAL_LOG_JSON=False,
        OUTDIAL_LOG_LEVEL="WARNING",
        OUTDIAL_WORKER_METRICS_PORT=0,
        OUTDIAL_DIAL_MODE="immediate" if immediate else "agent_ready",
    )
    delete_prefix(redis_client, prefix)


@pytest.fixture
def api_server(settings: Settings, api_port: int, lk: Any) -> Iterator[ApiServer]:
    server = ApiServer(settings, api_port).start()
    yield server
    server.stop()


@pytest.fixture
async def client(api_server: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_server.url, timeout=15) as http:
        yield http


@pytest.fixture
def worker(settings: Settings, api_server: ApiServer) -> Iterator[WorkerProcess]:
    process = WorkerProcess(settings).start()
    yield process
    process.stop()


class Tenant:
    """A workspace created through the admin API, with helpers to call as it."""

    def __init__(self, http: httpx.AsyncClient, created: dict[str, Any]) -> None:
        self.http = http
        self.id: str = created["workspaceId"]
        self.api_key: str = created["apiKey"]
        self.webhook_secret: str = created["webhookSecret"]
        self.integration_url: str = created["integrationBaseUrl"]

    @property
    def headers(self) -> dict[str, str]:
        return {"x-workspace-id": self.id, "x-api-key": self.api_key}

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self.headers | kwargs.pop("headers", {})
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def create_agent(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "Reminder", "instructions": "Remind {{firstName}} of the appointment."}
        response = await self.request("POST", "/v1/api/agents", json=body | fields)
        assert response.status_code == 201, response.text
        return response.json()

    async def assign_trunk(self, sip_trunk_id: str) -> None:
        """The operator assigns a raw trunk id to this workspace (admin API)."""
        response = await self.http.post(
            f"/v1/admin/workspaces/{self.id}/trunks",
            json={"sip_trunk_id": sip_trunk_id},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert response.status_code == 201, response.text

    async def register_number(self, number: str = "+15105550100", **fields: Any) -> dict[str, Any]:
        """Registers `number`; without `sip_trunk_id`, Outdial creates its trunk at LiveKit.
        With one, the operator assigns that trunk to the workspace first."""
        body = {"number": number} | fields
        if "sip_trunk_id" in fields:
            await self.assign_trunk(fields["sip_trunk_id"])
        else:
            body["trunk"] = {"address": "sip.example.net"}
        response = await self.request("POST", "/v1/api/numbers", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def place_call(self, **fields: Any) -> httpx.Response:
        headers = fields.pop("headers", {})
        return await self.request("POST", "/v1/api/call", json=fields, headers=headers)


async def create_tenant(http: httpx.AsyncClient, name: str = "acme") -> Tenant:
    response = await http.post(
        "/v1/admin/workspaces",
        json={"name": name},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    return Tenant(http, response.json())


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> Tenant:
    return await create_tenant(client)


@pytest.fixture
def spare_redis() -> Iterator[SpareRedis]:
    if shutil.which("redis-server") is None:
        # Not a skip: a CI image without it would pass while hiding every Redis-failure test.
        pytest.fail(
            "redis-server is not on PATH: the Redis-failure tests start a throwaway Redis "
            "with it (install the redis-server package, or put the binary on PATH)",
            pytrace=False,
        )
    server = SpareRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_proxy(spare_redis: SpareRedis) -> Iterator[RedisProxy]:
    """A reply-losing proxy (`tests.redis_proxy`) in front of `spare_redis`."""
    proxy = RedisProxy(spare_redis.port).start()
    yield proxy
    proxy.stop()
