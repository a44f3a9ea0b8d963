"""The Redis handle every store module works through, with the store's scripts registered
on it (`api.store.scripts`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from api.settings import Settings
from api.store.connect import async_client, lean_client
from api.store.keys import Keys
from api.store.lean_redis import LeanRedis, LeanScript, always
from api.store.messages import DIAL_QUEUE, RELAY_QUEUE, QueueKeys
from api.store.scripts import SCRIPTS, ScriptCall

# Longer than the longest block of a feed read (`api.store.feed.MAX_BLOCK_MS`).
FEED_SOCKET_TIMEOUT_SECONDS = 30


@dataclass
class Store:
    redis: Redis
    settings: Settings
    # Script calls and the accept path's reads (see lean_redis); the rest uses redis-py.
    lean: LeanRedis = field(init=False)
    # The writes that wait for OUTDIAL_REDIS_WAIT_REPLICAS replicas (`run_replicated`, the
    # accept): a connection of their own, since a WAIT holds its connection until answered
    # (`lean` itself when there are no replicas to wait for).
    replicated: LeanRedis = field(init=False)
    # Blocking reads of the event feed (`api.store.feed`): a pool of their own, with a socket
    # timeout longer than a read's block, so no XREAD BLOCK holds a shared connection.
    feed_redis: Redis = field(init=False)
    keys: Keys = field(init=False)
    dial_queue: QueueKeys = field(init=False)
    relay_queue: QueueKeys = field(init=False)
    # Every script of `api.store.scripts`: run alone through `lean` (redis-py's script call
    # costs several times its CPU), queued on a redis-py pipeline where a caller batches.
    # Both call EVALSHA and load the script on NOSCRIPT.
    lean_scripts: dict[str, LeanScript] = field(init=False)
    scripts: dict[str, AsyncScript] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.redis_prefix)
        self.dial_queue = QueueKeys.of(self.settings.broker_namespace, DIAL_QUEUE)
        self.relay_queue = QueueKeys.of(self.settings.broker_namespace, RELAY_QUEUE)
        self.lean = lean_client(
            self.settings, connect_timeout=2, reply_timeout=5, wait_for_replicas=False
        )
        self.replicated = (
            lean_client(self.settings, connect_timeout=2, reply_timeout=5)
            if self.settings.redis_wait_replicas
            else self.lean
        )
        self.feed_redis = async_client(
            self.settings,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=FEED_SOCKET_TIMEOUT_SECONDS,
            protocol=2,
        )
        self.lean_scripts = {name: LeanScript(src) for name, src in SCRIPTS.items()}
        self.scripts = {name: self.redis.register_script(src) for name, src in SCRIPTS.items()}

    async def run(self, call: ScriptCall, client: Pipeline | None = None) -> Any:
        """Run `call`'s script, or queue it on `client` (a redis-py pipeline)."""
        if client is not None:
            return await self.scripts[call.NAME](keys=call.keys(), args=call.args(), client=client)
        script = self.lean_scripts[call.NAME]
        return await self.lean.evalsha(script, call.keys(), call.args())

    async def run_replicated(self, call: ScriptCall, wrote: Callable[[Any], bool] = always) -> Any:
        """`run`, then, with OUTDIAL_REDIS_WAIT_REPLICAS, wait on the same connection until
        that many replicas have the write; `NotReplicated` when they do not in time and
        `wrote(reply)` (a step whose reply says it only read needs no replica)."""
        script = self.lean_scripts[call.NAME]
        return await self.replicated.evalsha(script, call.keys(), call.args(), wrote=wrote)

    async def run_replicated_many(
        self, calls: Sequence[ScriptCall], wrote: Callable[[Any], bool] = always
    ) -> list[Any]:
        """`run_replicated` for several calls in one round trip, each its own atomic script:
        their replies in order, an error reply as its `ResponseError` (not raised)."""
        scripts = self.lean_scripts
        return await self.replicated.evalsha_many(
            [(scripts[call.NAME], call.keys(), call.args()) for call in calls], wrote=wrote
        )

    @property
    def retention_seconds(self) -> int:
        return self.settings.call_retention_days * 86_400

    async def aclose(self) -> None:
        if self.replicated is not self.lean:
            await self.replicated.aclose()
        await self.lean.aclose()
        await self.feed_redis.aclose()
        await self.redis.aclose()


def open_store(settings: Settings) -> Store:
    client = async_client(
        settings,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        # RESP2: under RESP3, redis-py 8.1 hands out pooled connections the server already
        # closed (idle timeout, failover, CLIENT KILL), failing one command per connection
        # (redis/redis-py#4252); RESP2 connections are checked and replaced.
        protocol=2,
    )
    return Store(client, settings)
