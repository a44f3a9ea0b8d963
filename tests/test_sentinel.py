"""Redis Sentinel and TLS for every Redis client (`api.store.connect`), against real
`redis-server` processes: a primary, a replica and sentinels on free ports
(`tests.sentinel_cluster`), TLS with a CA made at test time. REDIS_URL names a closed
port in the sentinel tests, so a client that ignored the sentinels would fail, not pass.

1. Each client kind (redis-py blocking and asyncio, the lean accept client, Dramatiq's
   broker and its wake-up listener) reaches the primary through the sentinels, in clear,
   and on TLS with passwords on the data nodes and on the sentinels, and follows a
   failover to the new primary.
2. A rediss:// URL reaches a TLS Redis with the CA it names, and no client connects
   without it.
3. The lean client asks its locator again after a READONLY reply (a demoted primary).
4. The whole stack (the API under uvicorn, a worker process) with its primary SIGKILLed
   while calls are posted: 503 SERVICE_UNAVAILABLE only between the kill and shortly after
   the sentinels name the new primary, 200 after; every accepted call dialed exactly once.
5. Bad sentinel settings stop the start with one clear line.
6. No module but `api.store.connect` makes a Redis client.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydantic import ValidationError

from agent_runtime.environment import environment_problems
from api.jobs.broker import build_broker
from api.jobs.wakeup import wakeup_client
from api.settings import Settings
from api.store.connect import async_client, lean_client, sync_client
from api.store.lean_redis import Endpoint, LeanRedis
from api.store.reachability import redis_unreachable
from tests.conftest import create_tenant
from tests.sentinel_cluster import SERVICE, RedisNode, SentinelCluster, TlsFiles
from tests.support import (
    ROOT,
    ApiServer,
    WorkerProcess,
    async_wait_until,
    free_port,
    has_sip_leg,
    wait_until,
)

# How long after the sentinels name the new primary a request may still meet the old one's
# absence: a connection already failing in redis-py's retry backoff (up to 1 s a step)
# finishes its step first.
AFTER_SWITCH_GRACE_SECONDS = 3.0


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return TlsFiles.make(tmp_path / "tls")


def _closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def on_sentinels(settings: Settings, cluster: SentinelCluster) -> Settings:
    """`settings` through the cluster's sentinels; REDIS_URL's own address is a closed port."""
    scheme, query = "redis", ""
    if cluster.tls is not None:
        scheme, query = "rediss", f"?ssl_ca_certs={cluster.tls.ca}"
    auth = f":{cluster.primary.password}@" if cluster.primary.password else ""
    return settings.model_copy(
        update={
            "redis_url": f"{scheme}://{auth}127.0.0.1:{_closed_port()}/0{query}",
            "redis_sentinels_text": cluster.sentinels_text,
            "redis_sentinel_service": SERVICE,
            "redis_sentinel_password": cluster.sentinels[0].password,
            "redis_sentinel_tls": cluster.tls is not None,
        }
    )


# In clear without passwords; on TLS with a password on the data nodes and another on the
# sentinels (REDIS_URL's and REDIS_SENTINEL_PASSWORD).
@pytest.fixture(params=["clear", "tls-and-passwords"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SentinelCluster]:
    secured = request.param == "tls-and-passwords"
    started = SentinelCluster(
        tmp_path / "cluster",
        sentinels=3,
        tls=TlsFiles.make(tmp_path / "tls") if secured else None,
        password="data-password" if secured else "",
        sentinel_password="sentinel-password" if secured else "",
    ).start()
    yield started
    started.stop()


@dataclass
class Clients:
    """One client of each kind, as the processes make them."""

    blocking: redis.Redis
    asyncio_: redis.asyncio.Redis
    lean: LeanRedis
    broker_client: redis.Redis
    wakeup_listener: redis.Redis

    @classmethod
    def of(cls, settings: Settings) -> Clients:
        return cls(
            blocking=sync_client(settings, decode_responses=True),
            asyncio_=async_client(settings, decode_responses=True),
            lean=lean_client(settings, connect_timeout=1, reply_timeout=2),
            broker_client=build_broker(settings).client,
            wakeup_listener=wakeup_client(settings),
        )

    async def write_each(self, key: str, value: str) -> None:
        """One write by each client; raises what the first failing one raised."""
        self.blocking.set(f"{key}:blocking", value)
        await self.asyncio_.set(f"{key}:asyncio", value)
        await self.lean.execute(["SET", f"{key}:lean", value])
        self.broker_client.set(f"{key}:broker", value)
        self.wakeup_listener.set(f"{key}:wakeup", value)

    async def close(self) -> None:
        self.blocking.close()
        await self.asyncio_.aclose()
        await self.lean.aclose()
        self.broker_client.close()
        self.wakeup_listener.close()


KINDS = ("blocking", "asyncio", "lean", "broker", "wakeup")


def _written_on(cluster: SentinelCluster, port: int, key: str) -> dict[str, str | None]:
    node = cluster.data_client(port, decode_responses=True)
    try:
        return {kind: node.get(f"{key}:{kind}") for kind in KINDS}
    finally:
        node.close()


async def test_every_client_kind_reaches_the_primary_through_the_sentinels_and_follows_a_failover(
    cluster: SentinelCluster, settings: Settings
) -> None:
    through = on_sentinels(settings, cluster)
    first = cluster.primary_port()
    assert first is not None
    clients = Clients.of(through)
    try:
        await clients.write_each("before", "1")
        # Only the primary takes writes: each client reached it (a replica answers READONLY).
        assert _written_on(cluster, first, "before") == dict.fromkeys(KINDS, "1")

        # The primary's host dies: every client's connection to it fails, and their next
        # connection goes wherever the sentinels then say.
        cluster.node_on(first).kill()
        second = await asyncio.to_thread(cluster.wait_for_primary_other_than, first)

        async def written_after() -> bool:
            try:
                await clients.write_each("after", "2")
            except redis.ConnectionError:
                return False  # the dead primary, or none named yet: asked again
            return True

        await async_wait_until(written_after, timeout=20, interval=0.2, what="writes after")
        assert _written_on(cluster, second, "after") == dict.fromkeys(KINDS, "2")
    finally:
        await clients.close()


async def test_a_rediss_url_reaches_a_tls_redis_with_its_ca_and_nothing_connects_without(
    tmp_path: Path, tls_files: TlsFiles, settings: Settings
) -> None:
    node = RedisNode(tmp_path / "tls-redis", [])
    node.start(tls_files)
    try:
        wait_until(lambda: _answers(node, tls_files), timeout=10, what="the TLS redis")
        base = f"rediss://127.0.0.1:{node.port}/0"
        trusted = settings.model_copy(update={"redis_url": f"{base}?ssl_ca_certs={tls_files.ca}"})
        clients = Clients.of(trusted)
        try:
            await clients.write_each("tls", "yes")
        finally:
            await clients.close()
        plain = node.client(tls_files, decode_responses=True)
        assert {kind: plain.get(f"tls:{kind}") for kind in KINDS} == dict.fromkeys(KINDS, "yes")
        plain.close()

        # Without the CA the server's certificate is not trusted: every kind refuses it.
        untrusted = Clients.of(settings.model_copy(update={"redis_url": base}))
        try:
            with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                untrusted.blocking.ping()
            with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusted.asyncio_.ping()
            with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusted.lean.execute(["PING"])
            with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                untrusted.broker_client.ping()
        finally:
            await untrusted.close()
    finally:
        node.stop()


def _answers(node: RedisNode, tls: TlsFiles) -> bool:
    client = node.client(tls)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


class _Sequence:
    """A locator naming each endpoint in turn, counting the times it was asked."""

    def __init__(self, *ports: int) -> None:
        self.ports = list(ports)
        self.asked = 0

    async def primary(self) -> Endpoint:
        port = self.ports[min(self.asked, len(self.ports) - 1)]
        self.asked += 1
        return Endpoint(host="127.0.0.1", port=port)

    async def aclose(self) -> None:
        return None


async def test_the_lean_client_asks_again_after_a_readonly_reply(tmp_path: Path) -> None:
    demoted, promoted = RedisNode(tmp_path / "a", []), RedisNode(tmp_path / "b", [])
    for node in (demoted, promoted):
        node.start(None)
    locator = _Sequence(demoted.port, promoted.port)
    lean = LeanRedis(locator, connect_timeout=1, reply_timeout=2)
    admin = demoted.client(None)
    try:
        wait_until(lambda: _answers(demoted, None) and _answers(promoted, None), timeout=10)
        assert await lean.execute(["SET", "k", "on-a"]) == ["OK"]
        # A failover whose CLIENT KILL missed this connection: it stays open to a replica.
        admin.replicaof("127.0.0.1", promoted.port)
        with pytest.raises(redis.ConnectionError, match=r"no longer the primary.*READONLY"):
            await lean.execute(["SET", "k", "still-a"])
        assert await lean.execute(["SET", "k", "on-b"]) == ["OK"]
        assert locator.asked == 2
        on_b = promoted.client(None)
        assert on_b.get("k") == b"on-b"
        on_b.close()
    finally:
        await lean.aclose()
        admin.close()
        for node in (demoted, promoted):
            node.stop()


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"REDIS_SENTINELS": "sentinel-1"}, "'sentinel-1' is not host:port"),
        ({"REDIS_SENTINELS": "a:26379,b:x"}, "'b:x': the port must be a number"),
        ({"REDIS_SENTINELS": "a:70000"}, "'a:70000': the port must be a number"),
        ({"REDIS_SENTINELS": "::1:26379"}, "'::1:26379' is not host:port"),
        ({"REDIS_SENTINELS": "a:1,a:1"}, "'a:1' is listed twice"),
        ({"REDIS_SENTINELS": "a:26379"}, "REDIS_SENTINELS and REDIS_SENTINEL_SERVICE go together"),
        ({"REDIS_SENTINEL_SERVICE": "main"}, "go together"),
        (
            {"REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_SERVICE": "m", "REDIS_URL": "unix:///r"},
            "REDIS_URL must be redis:// or rediss://",
        ),
    ],
)
def test_bad_sentinel_settings_are_one_clear_error(variables: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**variables)
    assert problem in environment_problems(refused.value)


def test_good_sentinel_lists_parse_in_order() -> None:
    settings = Settings(
        REDIS_SENTINELS=" s1:26379, [::1]:26380 ,10.0.0.3:5000,",
        REDIS_SENTINEL_SERVICE="main",
    )
    assert settings.redis_sentinels == (("s1", 26379), ("::1", 26380), ("10.0.0.3", 5000))


def test_sentinels_that_do_not_answer_are_reported_at_start(settings: Settings) -> None:
    silent = settings.model_copy(
        update={
            "redis_sentinels_text": f"127.0.0.1:{_closed_port()},127.0.0.1:{_closed_port()}",
            "redis_sentinel_service": SERVICE,
        }
    )
    assert f"No master found for '{SERVICE}'" in str(redis_unreachable(silent, timeout=1))


def test_no_module_but_connect_makes_a_redis_client() -> None:
    """A client made elsewhere would ignore the sentinels and REDIS_URL's TLS options."""
    made_here = ROOT / "api" / "store" / "connect.py"
    client_made = re.compile(r"\bfrom_url\(|\bRedis\(|\bSentinel\(|ConnectionPool\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("api", "agent_runtime", "sip")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != made_here
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if client_made.search(line)
    ]
    assert offenders == []


# -- the whole stack through a failover -------------------------------------------------


@dataclass(frozen=True)
class Answer:
    started: float
    status: int
    code: str | None


async def _place_until_accepted(tenant: Any, agent_id: str, key: str, answers: list[Answer]) -> str:
    """POST the call until it is accepted, again with the same Idempotency-Key after each
    503 (what a client is told to do: a write whose reply was lost is not made twice)."""
    while True:
        started = time.monotonic()
        response = await tenant.place_call(
            to="+14155552671", call_agent_id=agent_id, headers={"Idempotency-Key": key}
        )
        body = response.json()
        answers.append(Answer(started, response.status_code, body.get("code")))
        if response.status_code == 200:
            return str(body["callId"])
        assert response.status_code == 503, response.text
        await asyncio.sleep(0.05)


@pytest.mark.dial_immediately
async def test_a_primary_killed_mid_run_costs_503s_only_during_the_failover_and_no_call(
    tmp_path: Path, settings: Settings, lk: Any
) -> None:
    cluster = SentinelCluster(tmp_path / "cluster", sentinels=3).start()
    through = on_sentinels(settings, cluster).model_copy(
        update={"heartbeat_timeout_ms": 2_000, "worker_timeout_ms": 500}
    )
    server = ApiServer(through, free_port()).start()
    worker = WorkerProcess(through).start()
    answers: list[Answer] = []
    accepted: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            tenant = await create_tenant(http, "failover")
            agent = await tenant.create_agent()
            await tenant.register_number("+15105550100")
            # Every CreateRoom stalls a little, so dispatches are mid-flight at the kill.
            lk.inject("RoomService", "CreateRoom", delay_before=0.2, times=None)
            run = uuid.uuid4().hex[:8]
            stop_posting = asyncio.Event()

            async def post() -> None:
                index = 0
                while not stop_posting.is_set():
                    key = f"{run}-{index}"
                    accepted.append(await _place_until_accepted(tenant, agent["id"], key, answers))
                    index += 1
                    await asyncio.sleep(0.02)

            poster = asyncio.create_task(post())
            await async_wait_until(lambda: len(accepted) >= 10, timeout=20, what="10 calls")
            await lk.wait_for_async("SIP", "CreateSIPParticipant", count=3, timeout=20)
            old = cluster.primary_port()
            assert old is not None
            killed_at = time.monotonic()
            cluster.node_on(old).kill()
            await asyncio.to_thread(cluster.wait_for_primary_other_than, old)
            switched_at = time.monotonic()
            at_switch = len(accepted)
            await async_wait_until(
                lambda: (
                    len(accepted) >= at_switch + 10
                    and time.monotonic() > switched_at + AFTER_SWITCH_GRACE_SECONDS + 1
                ),
                timeout=30,
                what="10 more calls accepted after the failover",
            )
            stop_posting.set()
            await poster

            views = {}
            for call_id in accepted:
                views[call_id] = await async_wait_until(
                    lambda call_id=call_id: _dialed(tenant, lk, call_id),
                    timeout=30,
                    what=f"call {call_id} dialed",
                )
    finally:
        worker.stop()
        server.stop()
        cluster.stop()

    unavailable = [answer for answer in answers if answer.status == 503]
    assert unavailable, "no request met the failover: the test did not test it"
    assert {answer.code for answer in unavailable} == {"SERVICE_UNAVAILABLE"}
    assert all(answer.started >= killed_at for answer in unavailable), (killed_at, unavailable)
    last_refused = max(answer.started for answer in unavailable)
    assert last_refused <= switched_at + AFTER_SWITCH_GRACE_SECONDS, (
        f"a 503 {last_refused - switched_at:.2f} s after the new primary was named"
    )
    print(
        f"failover: new primary named {switched_at - killed_at:.2f} s after the kill; "
        f"503s from {min(a.started for a in unavailable) - killed_at:.2f} s to "
        f"{last_refused - killed_at:.2f} s after it ({len(unavailable)} of {len(answers)} "
        f"requests); {len(accepted)} calls accepted"
    )
    # None lost, none twice: each accepted call has exactly one dial, in its own room.
    dials = Counter(d.request.room_name for d in lk.requests("SIP", "CreateSIPParticipant"))
    assert sorted(dials[view["roomName"]] for view in views.values()) == [1] * len(accepted)
    assert sum(dials.values()) == len(accepted), dials


async def _dialed(tenant: Any, lk: Any, call_id: str) -> dict[str, Any] | None:
    response = await tenant.request("GET", f"/v1/api/call/{call_id}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    if view["status"] == "dialing" and has_sip_leg(lk, view["roomName"], call_id):
        return view
    assert view["status"] in ("queued", "dispatching", "dialing"), view
    return None
