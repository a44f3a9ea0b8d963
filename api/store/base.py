"""The Redis handle every store module works through."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from api.settings import Settings
from api.store import lua, lua_billing, lua_pacing, lua_relay, lua_schedule
from api.store.keys import Keys
from api.store.lean_redis import LeanRedis, LeanScript
from api.store.messages import DIAL_QUEUE, RELAY_QUEUE, QueueKeys

# Longer than the longest block of a feed read (`api.store.feed.MAX_BLOCK_MS`).
FEED_SOCKET_TIMEOUT_SECONDS = 30


@dataclass
class Store:
    redis: Redis
    settings: Settings
    # The accept path's client (see lean_redis); everything else uses redis-py.
    lean: LeanRedis = field(init=False)
    # Blocking reads of the event feed (`api.store.feed`): a pool of their own, with a socket
    # timeout longer than a read's block, so no XREAD BLOCK holds a shared connection.
    feed_redis: Redis = field(init=False)
    keys: Keys = field(init=False)
    dial_queue: QueueKeys = field(init=False)
    relay_queue: QueueKeys = field(init=False)
    accept_call_script: LeanScript = field(init=False)
    apply_event_script: AsyncScript = field(init=False)
    relay_begin_script: AsyncScript = field(init=False)
    relay_record_script: AsyncScript = field(init=False)
    relay_release_script: AsyncScript = field(init=False)
    agent_ready_script: AsyncScript = field(init=False)
    save_number_script: AsyncScript = field(init=False)
    call_with_workspace_script: AsyncScript = field(init=False)
    admit_script: AsyncScript = field(init=False)
    dial_paced_script: AsyncScript = field(init=False)
    accept_scheduled_script: AsyncScript = field(init=False)
    move_scheduled_script: AsyncScript = field(init=False)
    cancel_call_script: AsyncScript = field(init=False)
    reschedule_queued_script: AsyncScript = field(init=False)
    extend_reservation_script: AsyncScript = field(init=False)

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.redis_prefix)
        self.dial_queue = QueueKeys.of(self.settings.broker_namespace, DIAL_QUEUE)
        self.relay_queue = QueueKeys.of(self.settings.broker_namespace, RELAY_QUEUE)
        self.lean = LeanRedis(self.settings.redis_url, connect_timeout=2, reply_timeout=5)
        self.feed_redis = Redis.from_url(
            self.settings.redis_url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=FEED_SOCKET_TIMEOUT_SECONDS,
            protocol=2,
        )
        self.accept_call_script = LeanScript(lua.ACCEPT_CALL)
        self.apply_event_script = self.redis.register_script(lua.APPLY_EVENT)
        self.relay_begin_script = self.redis.register_script(lua_relay.RELAY_BEGIN)
        self.relay_record_script = self.redis.register_script(lua_relay.RELAY_RECORD)
        self.relay_release_script = self.redis.register_script(lua_relay.RELAY_RELEASE)
        self.agent_ready_script = self.redis.register_script(lua.AGENT_READY)
        self.save_number_script = self.redis.register_script(lua.SAVE_NUMBER)
        self.call_with_workspace_script = self.redis.register_script(lua.CALL_WITH_WORKSPACE)
        self.admit_script = self.redis.register_script(lua_pacing.ADMIT)
        self.dial_paced_script = self.redis.register_script(lua_pacing.DIAL_PACED)
        self.accept_scheduled_script = self.redis.register_script(lua_schedule.ACCEPT_SCHEDULED)
        self.move_scheduled_script = self.redis.register_script(lua_schedule.MOVE_SCHEDULED)
        self.cancel_call_script = self.redis.register_script(lua_schedule.CANCEL_CALL)
        self.reschedule_queued_script = self.redis.register_script(lua_schedule.RESCHEDULE_QUEUED)
        self.extend_reservation_script = self.redis.register_script(lua_billing.EXTEND_RESERVATION)

    @property
    def retention_seconds(self) -> int:
        return self.settings.call_retention_days * 86_400

    async def aclose(self) -> None:
        await self.lean.aclose()
        await self.feed_redis.aclose()
        await self.redis.aclose()


def open_store(settings: Settings) -> Store:
    client = Redis.from_url(
        settings.redis_url,
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
