"""The layout pin: every message the store writes is consumed by a real Dramatiq worker of
the installed version.

The store's Lua scripts write Dramatiq messages straight into Redis (HSET
`<ns>:<queue>.msgs` + RPUSH `<ns>:<queue>`, see `api/store/messages.py`) so that a call and
its message appear together or not at all. That layout is Dramatiq's private one, so
`dramatiq` is pinned to the minor series checked here (pyproject.toml), and this module has
the installed version's own `RedisBroker` and `Worker` take each kind of message the store
writes: the accept (`dispatch_call`), an applied event (`relay_call`), the agent's
readiness and `queue_dial` (`dial_call`), the schedules' claims (`relay_call`,
`reconcile_call` with its lease score) and a redelivery (`relay_redeliver`). Each reaches its
actor with the arguments and message id the store wrote, and is acknowledged: nothing stays
in the broker's queues. A Dramatiq release that changes the layout fails here, not in
production.
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from packaging.requirements import Requirement

from api.settings import Settings
from api.store.base import Store, open_store
from api.store.calls import accept_call
from api.store.deadlines import queue_dial
from api.store.due_claims import DueClaims, Schedule
from api.store.events import EventSpec, apply_event, mark_agent_ready
from api.store.messages import (
    DIAL_ACTOR,
    DIAL_QUEUE,
    DISPATCH_ACTOR,
    RECONCILE_ACTOR,
    RECONCILE_QUEUE,
    REDELIVER_ACTOR,
    RELAY_ACTOR,
    RELAY_QUEUE,
    QueueKeys,
)
from api.store.redelivery import enqueue_redelivery
from tests.conftest import REDIS_URL, RUN_ID, delete_prefix
from tests.support import async_wait_until
from tests.test_store import draft

ROOT = Path(__file__).resolve().parent.parent
_ACTORS = (
    (DIAL_QUEUE, DISPATCH_ACTOR),
    (DIAL_QUEUE, DIAL_ACTOR),
    (RELAY_QUEUE, RELAY_ACTOR),
    (RELAY_QUEUE, REDELIVER_ACTOR),
    (RECONCILE_QUEUE, RECONCILE_ACTOR),
)


@dataclass(frozen=True, slots=True)
class Consumed:
    actor: str
    args: tuple[str, ...]
    message_id: str


@pytest.fixture
def settings() -> Settings:
    prefix = f"odtest-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    return Settings(REDIS_URL=REDIS_URL, OUTDIAL_REDIS_PREFIX=prefix)


@pytest.fixture
async def store(settings: Settings, redis_client: redis.Redis) -> AsyncIterator[Store]:
    opened = open_store(settings)
    yield opened
    await opened.aclose()
    # The broker's namespace (`<prefix>-dramatiq`) starts with the prefix too.
    delete_prefix(redis_client, settings.redis_prefix)


@pytest.fixture
def consumed(settings: Settings) -> Iterator[list[Consumed]]:
    """A real worker on the store's broker namespace, with one recording actor per name the
    store writes messages for."""
    broker = RedisBroker(url=REDIS_URL, namespace=settings.broker_namespace)
    broker.add_middleware(CurrentMessage())
    seen: list[Consumed] = []

    def recorder(actor_name: str) -> Callable[..., None]:
        def record(*args: str) -> None:
            message = CurrentMessage.get_current_message()
            assert message is not None
            seen.append(Consumed(actor_name, args, message.message_id))

        return record

    for queue_name, actor_name in _ACTORS:
        dramatiq.actor(
            recorder(actor_name),
            broker=broker,
            queue_name=queue_name,
            actor_name=actor_name,
            max_retries=0,
        )
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        yield seen
    finally:
        worker.stop()
        broker.close()


async def _taken(seen: list[Consumed], actor: str, count: int = 1) -> list[Consumed]:
    def of_actor() -> list[Consumed]:
        return [entry for entry in seen if entry.actor == actor]

    await async_wait_until(lambda: len(of_actor()) >= count, 15, what=f"{count} x {actor}")
    return of_actor()


async def test_every_message_the_store_writes_is_consumed_by_the_installed_dramatiq(
    store: Store, settings: Settings, consumed: list[Consumed]
) -> None:
    call = draft(callback_url="https://example.com/hook")
    accepted = await accept_call(store, call, {"callId": call.id}, None)
    assert accepted.previous is not None
    job_id = accepted.previous["response"]["jobId"]
    [dispatched] = await _taken(consumed, DISPATCH_ACTOR)
    assert dispatched == Consumed(DISPATCH_ACTOR, (call.id,), job_id)
    # `call.queued` has a callback to deliver: the accept queued its relay message too.
    [relayed] = await _taken(consumed, RELAY_ACTOR)
    assert relayed.args == (call.id,)

    # The drain that took it would drop the call's relay flag: the next event queues again.
    await store.redis.delete(store.keys.relay_active(call.id))
    moved = await apply_event(
        store, call.id, EventSpec("call.dispatching", expected_status="queued")
    )
    assert moved.applied
    assert (await _taken(consumed, RELAY_ACTOR, 2))[1].args == (call.id,)

    await apply_event(store, call.id, EventSpec("call.waiting_for_agent"))
    assert (await mark_agent_ready(store, call.id, EventSpec("agent.ready"))).dial
    await queue_dial(store, call.id)
    for dialed in await _taken(consumed, DIAL_ACTOR, 2):
        call_id, token = dialed.args
        assert call_id == call.id and len(token) == 32

    await store.redis.zadd(store.keys.relay_due(), {call.id: 1})
    relay_claims = DueClaims(settings, Schedule.relay_retries(settings))
    try:
        assert relay_claims.claim(10) == 1
    finally:
        relay_claims.close()
    assert (await _taken(consumed, RELAY_ACTOR, 3))[2].args == (call.id,)

    await store.redis.zadd(store.keys.deadlines(), {call.id: 1})
    deadline_claims = DueClaims(settings, Schedule.call_deadlines(settings))
    try:
        assert deadline_claims.claim(10) == 1
    finally:
        deadline_claims.close()
    [reconciled] = await _taken(consumed, RECONCILE_ACTOR)
    lease_score = await store.redis.zscore(store.keys.deadlines(), call.id)
    assert reconciled.args == (call.id, str(int(lease_score)))

    queued = await enqueue_redelivery(store, call.workspace_id, call.id, 1, per_minute=5)
    assert queued.outcome == "queued"
    [redelivered] = await _taken(consumed, REDELIVER_ACTOR)
    assert redelivered == Consumed(REDELIVER_ACTOR, (call.id, "1"), queued.job_id)

    # Each message was acknowledged: no queue, message body or ack set is left behind.
    for queue_name in (DIAL_QUEUE, RELAY_QUEUE, RECONCILE_QUEUE):
        queue = QueueKeys.of(settings.broker_namespace, queue_name)
        assert await store.redis.llen(queue.ids) == 0
        assert await store.redis.hlen(queue.messages) == 0
    acks = [key async for key in store.redis.scan_iter(f"{settings.broker_namespace}:__acks__*")]
    assert acks == []
    assert len(consumed) == 8


def test_dramatiq_is_pinned_to_the_minor_series_this_module_checks() -> None:
    """The pin in pyproject.toml admits the installed Dramatiq and no other minor series."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [pin] = [
        Requirement(spec)
        for spec in pyproject["project"]["dependencies"]
        if Requirement(spec).name == "dramatiq"
    ]
    installed = dramatiq.__version__
    major, minor = (int(part) for part in installed.split(".")[:2])
    assert pin.specifier.contains(installed), f"{pin} does not admit the installed {installed}"
    assert not pin.specifier.contains(f"{major}.{minor + 1}.0"), f"{pin} admits the next minor"
    previous = f"{major}.{minor - 1}.0" if minor else f"{major - 1}.0.0"
    assert not pin.specifier.contains(previous), f"{pin} admits the minor before"
