"""OUTDIAL_REDIS_WAIT_REPLICAS: the writes a failover must not lose wait for a replica.

Redis replicates asynchronously: a write the primary answered may be missing on the
replica that a failover promotes. Two writes carry a guarantee, so with the setting they
count only once a replica has them (Redis WAIT on the write's own connection):
1. an accepted call (the lean accept client): answered 503 while no replica confirms it,
   and the client's retry with the same Idempotency-Key gets the one call;
2. a call's `dialing` mark, taken before CreateSIPParticipant: a mark no replica confirmed
   is not dialed on (a promoted replica without it would let a redelivery dial again).
Against a real primary and a real replica, the replica frozen with SIGSTOP.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from api.settings import Settings
from api.store.connect import lean_client
from api.store.keys import Keys
from api.store.lean_redis import LeanScript
from tests.conftest import create_tenant
from tests.sentinel_cluster import RedisNode
from tests.support import (
    ApiServer,
    WorkerProcess,
    async_wait_until,
    free_port,
    report_agent,
    wait_until,
)


class PrimaryAndReplica:
    def __init__(self, folder: Path) -> None:
        self.primary = RedisNode(folder / "primary", [])
        self.replica = RedisNode(folder / "replica", [f"replicaof 127.0.0.1 {self.primary.port}"])

    def start(self) -> PrimaryAndReplica:
        self.primary.start(None)
        self.replica.start(None)
        wait_until(self._in_sync, timeout=20, what="the replica to sync")
        return self

    def _in_sync(self) -> bool:
        client = self.replica.client(None, decode_responses=True)
        try:
            return client.info("replication").get("master_link_status") == "up"
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    def freeze_replica(self) -> None:
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGSTOP)

    def thaw_replica(self) -> None:
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw_replica()
        self.replica.stop()
        self.primary.stop()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[PrimaryAndReplica]:
    started = PrimaryAndReplica(tmp_path).start()
    yield started
    started.stop()


def _waiting_for_replicas(settings: Settings, pair: PrimaryAndReplica) -> Settings:
    return settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{pair.primary.port}/0",
            "redis_wait_replicas": 1,
        }
    )


async def test_an_accept_no_replica_confirmed_is_a_503_and_its_retry_gets_the_one_call(
    pair: PrimaryAndReplica, settings: Settings, lk: Any
) -> None:
    on_pair = _waiting_for_replicas(settings, pair)
    server = ApiServer(on_pair, free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            tenant = await create_tenant(http, "replicas")
            agent = await tenant.create_agent()
            await tenant.register_number("+15105550100")
            body = {"to": "+14155552671", "call_agent_id": agent["id"]}
            headers = {"Idempotency-Key": "replicated-once"}

            pair.freeze_replica()
            unconfirmed = await tenant.place_call(**body, headers=headers)
            assert unconfirmed.status_code == 503, unconfirmed.text
            assert unconfirmed.json()["code"] == "SERVICE_UNAVAILABLE"

            pair.thaw_replica()
            retried = await tenant.place_call(**body, headers=headers)
            assert retried.status_code == 200, retried.text
    finally:
        server.stop()
    replica = pair.replica.client(None)
    try:
        calls = Keys(on_pair.redis_prefix).calls(tenant.id)
        # The one call the retry answered with, on the replica too (no second call).
        assert wait_until(lambda: replica.zcard(calls) == 1, timeout=10, what="the replica")
        assert replica.zscore(calls, retried.json()["callId"]) is not None
    finally:
        replica.close()


async def test_a_batch_no_replica_confirmed_is_a_503_and_its_retry_gets_one_call_per_item(
    pair: PrimaryAndReplica, settings: Settings, lk: Any
) -> None:
    """A batch's scripts wait for the replica behind one WAIT: unconfirmed, the whole batch
    is a 503, and the retry with its key answers each item with the call it placed."""
    on_pair = _waiting_for_replicas(settings, pair)
    server = ApiServer(on_pair, free_port()).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            tenant = await create_tenant(http, "replicas")
            agent = await tenant.create_agent()
            await tenant.register_number("+15105550100")
            items = [{"to": f"+1415555267{n}", "call_agent_id": agent["id"]} for n in range(3)]
            headers = {"Idempotency-Key": "replicated-batch"}

            pair.freeze_replica()
            unconfirmed = await tenant.request(
                "POST", "/v1/api/calls/batch", json=items, headers=headers
            )
            assert unconfirmed.status_code == 503, unconfirmed.text
            assert unconfirmed.json()["code"] == "SERVICE_UNAVAILABLE"

            pair.thaw_replica()
            retried = await tenant.request(
                "POST", "/v1/api/calls/batch", json=items, headers=headers
            )
            assert retried.status_code == 200, retried.text
    finally:
        server.stop()
    call_ids = [result["callId"] for result in retried.json()["results"]]
    replica = pair.replica.client(None)
    try:
        calls = Keys(on_pair.redis_prefix).calls(tenant.id)
        # The three calls the retry answered with, on the replica too (none twice).
        assert wait_until(lambda: replica.zcard(calls) == 3, timeout=10, what="the replica")
        assert all(replica.zscore(calls, call_id) is not None for call_id in call_ids)
    finally:
        replica.close()


async def test_a_dialing_mark_no_replica_confirmed_is_never_dialed_on(
    pair: PrimaryAndReplica, settings: Settings, lk: Any
) -> None:
    on_pair = _waiting_for_replicas(settings, pair)
    server = ApiServer(on_pair, free_port()).start()
    worker = WorkerProcess(on_pair).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            tenant = await create_tenant(http, "replicas")
            agent = await tenant.create_agent()
            await tenant.register_number("+15105550100")
            placed = await tenant.place_call(to="+14155552671", call_agent_id=agent["id"])
            assert placed.status_code == 200, placed.text
            call_id, room = placed.json()["callId"], placed.json()["roomName"]

            async def status() -> str:
                response = await tenant.request("GET", f"/v1/api/call/{call_id}")
                return str(response.json()["status"])

            await async_wait_until(
                lambda: _is(status, "waiting_for_agent"), timeout=20, what="the agent wait"
            )
            pair.freeze_replica()
            # The agent is ready: the dial step marks the call `dialing`, no replica confirms.
            await report_agent(http, on_pair, call_id)
            # The step fails and its retry (the mark's owner) looks at the room instead.
            await async_wait_until(
                lambda: _looked_into(lk, room), timeout=30, what="the retry to look at the room"
            )
            assert await status() == "dialing"
    finally:
        worker.stop()
        server.stop()
    assert lk.requests("SIP", "CreateSIPParticipant") == []


async def _is(status: Any, wanted: str) -> bool:
    return bool(await status() == wanted)


def _looked_into(lk: Any, room: str) -> bool:
    return any(
        request.request.room == room for request in lk.requests("RoomService", "ListParticipants")
    )


async def test_a_wait_on_a_demoted_primary_drops_the_connection_like_readonly(
    pair: PrimaryAndReplica, settings: Settings
) -> None:
    """A script that only read, on a server that is now a replica: its WAIT is refused, and
    the client takes that as the demotion it is (a connection error, the link dropped so
    the next batch asks where the primary is), not as a count."""
    on_replica = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{pair.replica.port}/0", "redis_wait_replicas": 1}
    )
    client = lean_client(on_replica)
    reader = LeanScript(f"-- {uuid.uuid4()}\nreturn redis.call('GET', KEYS[1])")
    try:
        (before,) = await client.execute(["CLIENT", "ID"])
        with pytest.raises(redis.ConnectionError, match="no longer the primary"):
            await client.evalsha(reader, ["absent"], [])
        (after,) = await client.execute(["CLIENT", "ID"])
        assert after != before  # the refused link was dropped; the next batch opened another
    finally:
        await client.aclose()
