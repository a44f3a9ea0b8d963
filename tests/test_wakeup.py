"""Wake-ups (api/jobs/wakeup.py): an idle worker runs a new message at once although it
polls Redis only every worker timeout; a dead worker's message is requeued and announced
(api/jobs/dead_workers.py) soon after the heartbeat timeout.

The workers here poll every 60 s unless a test says otherwise, so a message run within the
tests' bounds (10 s) was found by a wake-up: without one it would wait for the poll. The
one test of the fallback poll uses a short poll and a message written without a wake-up.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dramatiq
import pytest
import redis
from dramatiq.broker import MessageProxy
from dramatiq.common import current_millis
from dramatiq.middleware import CurrentMessage

from api.jobs.dead_workers import DeadWorkerSweep, DeadWorkerSweeps
from api.jobs.wakeup import (
    WakeableConsumer,
    WakeableRedisBroker,
    wakeup_client,
    wakeup_client_name,
)
from api.settings import Settings
from api.store.base import open_store
from api.store.deadlines import queue_dial
from api.store.messages import (
    DIAL_ACTOR,
    DIAL_QUEUE,
    QueueKeys,
    encode_message,
    heartbeats_key,
)
from tests.conftest import REDIS_URL, RUN_ID, delete_prefix
from tests.support import WorkerProcess, dies_holding, wait_until, wakeable_broker

LONG_POLL_MS = 60_000
QUEUE = "wake.test"
RECORD_ACTOR = "record"


@dataclass(frozen=True, slots=True)
class Run:
    args: tuple[str, ...]
    at_ms: int
    message_id: str


def _listener(namespace: str) -> redis.Redis:
    """The wake-up listener's client, as `build_broker` makes it for this namespace."""
    prefix = namespace.removesuffix("-dramatiq")
    return wakeup_client(Settings(REDIS_URL=REDIS_URL, OUTDIAL_REDIS_PREFIX=prefix))


class InProcessWorker:
    """A real Dramatiq worker of the wake-up broker, in this process, with one recording actor
    on `QUEUE` and one on the store's dial queue."""

    def __init__(
        self,
        namespace: str,
        poll_ms: int,
        threads: int = 1,
        hold: float = 0.0,
        heartbeat_timeout_ms: int = LONG_POLL_MS * 10,
    ) -> None:
        self.broker = WakeableRedisBroker(
            url=REDIS_URL,
            listener_client=_listener(namespace),
            namespace=namespace,
            heartbeat_timeout=heartbeat_timeout_ms,
        )
        self.broker.add_middleware(CurrentMessage())
        self.broker.add_middleware(DeadWorkerSweeps(self.broker))  # as api.jobs.broker does
        self.runs: list[Run] = []
        self._lock = threading.Lock()
        self.actor = dramatiq.actor(
            self._recorder(hold),
            broker=self.broker,
            queue_name=QUEUE,
            actor_name=RECORD_ACTOR,
            max_retries=0,
        )
        dramatiq.actor(
            self._recorder(0.0),
            broker=self.broker,
            queue_name=DIAL_QUEUE,
            actor_name=DIAL_ACTOR,
            max_retries=0,
        )
        self.worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=poll_ms)

    def _recorder(self, hold: float) -> Callable[..., None]:
        def record(*args: str) -> None:
            message = CurrentMessage.get_current_message()
            assert message is not None
            if hold:
                time.sleep(hold)  # a job that keeps its thread: the prefetch fills up
            with self._lock:
                self.runs.append(Run(args, current_millis(), message.message_id))

        return record

    def start(self) -> InProcessWorker:
        self.worker.start()
        heartbeats = heartbeats_key(self.broker.namespace)
        # Its consumers made their first fetch: from here on they wait.
        wait_until(
            lambda: self.broker.client.zscore(heartbeats, self.broker.broker_id),
            what="the worker's first fetch",
        )
        return self

    def stop(self) -> None:
        # Its threads wait up to the poll for work: stopping gives them a second (they are
        # daemons, and the broker's close wakes its consumers), not the whole poll.
        self.worker.stop(timeout=1000)
        self.broker.close()

    def ran(self, count: int) -> list[Run]:
        wait_until(lambda: len(self.runs) >= count, timeout=10, what=f"{count} runs")
        return list(self.runs)


@pytest.fixture
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    prefix = f"odtest-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    yield f"{prefix}-dramatiq"
    delete_prefix(redis_client, prefix)


@pytest.fixture
def idle_worker(namespace: str) -> Iterator[InProcessWorker]:
    worker = InProcessWorker(namespace, poll_ms=LONG_POLL_MS).start()
    yield worker
    worker.stop()


def test_an_idle_worker_runs_a_sent_message_at_once(idle_worker: InProcessWorker) -> None:
    time.sleep(2)  # idle long enough for Dramatiq's own backoff to reach its cap
    message = idle_worker.actor.send("first")
    [run] = idle_worker.ran(1)
    assert run.args == ("first",) and run.message_id == message.message_id


def test_an_idle_worker_runs_a_message_the_store_wrote_at_once(
    idle_worker: InProcessWorker, namespace: str
) -> None:
    settings = Settings(
        REDIS_URL=REDIS_URL, OUTDIAL_REDIS_PREFIX=namespace.removesuffix("-dramatiq")
    )
    assert settings.broker_namespace == namespace

    async def queue() -> None:
        store = open_store(settings)
        try:
            await queue_dial(store, "call-1")
        finally:
            await store.aclose()

    time.sleep(2)
    asyncio.run(queue())
    [run] = idle_worker.ran(1)
    assert run.args[0] == "call-1"


def test_a_delayed_message_runs_when_due_not_at_the_next_poll(
    idle_worker: InProcessWorker,
) -> None:
    sent = idle_worker.actor.send_with_options(args=("later",), delay=500)
    [run] = idle_worker.ran(1)
    assert run.args == ("later",)
    assert run.at_ms >= sent.options["eta"]


def test_a_full_prefetch_takes_more_when_a_job_ends(namespace: str) -> None:
    # One thread, prefetch 2: the first fetch takes two, the rest wait for acks to free room.
    worker = InProcessWorker(namespace, poll_ms=LONG_POLL_MS, hold=0.2).start()
    try:
        sent = [worker.actor.send(str(index)) for index in range(6)]
        runs = worker.ran(6)
        assert sorted(run.message_id for run in runs) == sorted(m.message_id for m in sent)
    finally:
        worker.stop()


def test_a_message_written_without_a_wake_up_is_run_by_the_fallback_poll(
    namespace: str, redis_client: redis.Redis
) -> None:
    worker = InProcessWorker(namespace, poll_ms=300).start()
    try:
        # What Dramatiq's maintenance does with a dead worker's messages: no publish.
        queue = QueueKeys.of(namespace, DIAL_QUEUE)
        message = encode_message(DIAL_QUEUE, DIAL_ACTOR, "call-2", "token")
        redis_client.hset(queue.messages, message.message_id, message.body)
        redis_client.rpush(queue.ids, message.message_id)
        [run] = worker.ran(1)
        assert run.message_id == message.message_id
    finally:
        worker.stop()


def test_a_worker_whose_subscription_dropped_subscribes_again(
    idle_worker: InProcessWorker, redis_client: redis.Redis
) -> None:
    name = wakeup_client_name(idle_worker.broker.namespace)

    def listener_ids() -> list[int]:
        return [int(c["id"]) for c in redis_client.client_list() if c.get("name") == name]

    [first] = wait_until(listener_ids, what="the listener's subscription")
    redis_client.client_kill_filter(_id=str(first))
    wait_until(lambda: listener_ids() not in ([], [first]), what="a new subscription")
    time.sleep(1)  # the wake-up that followed the new subscription has been looked at
    idle_worker.actor.send("after")
    [run] = idle_worker.ran(1)
    assert run.args == ("after",)


def test_every_worker_process_wakes(settings: Settings, redis_client: redis.Redis) -> None:
    """Two `dramatiq api.worker` processes polling every 60 s both fetch after one publish:
    each fetch refreshes the process's heartbeat, which is how it is seen from here."""
    slow = settings.model_copy(
        update={"worker_timeout_ms": LONG_POLL_MS, "heartbeat_timeout_ms": LONG_POLL_MS * 10}
    )
    heartbeats = f"{slow.broker_namespace}:__heartbeats__"
    workers = [WorkerProcess(slow, threads=1).start() for _ in range(2)]
    try:
        wait_until(lambda: redis_client.zcard(heartbeats) == 2, timeout=30, what="two workers")
        channel = QueueKeys.of(slow.broker_namespace, DIAL_QUEUE).ids
        # Both listeners are subscribed (a pattern each; other tests' workers may listen too,
        # on their own namespaces) and both processes made their first fetch: both wait.
        wait_until(lambda: redis_client.publish(channel, "") == 2, timeout=30, what="two listeners")
        time.sleep(1)
        published_at = current_millis()
        assert redis_client.publish(channel, "") == 2  # one listener per process

        def all_fetched() -> bool:
            scores = [score for _, score in redis_client.zrange(heartbeats, 0, -1, withscores=True)]
            return len(scores) == 2 and min(scores) >= published_at

        wait_until(all_fetched, timeout=10, what="both workers to fetch")
    finally:
        for worker in workers:
            worker.kill()  # a graceful stop would wait for the 60 s poll


class _SlowAckBroker(WakeableRedisBroker):
    """Holds one ack between its Redis call and its return, as a slow link would: the
    window in which the acked message still counts against the consumer's prefetch."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self.hold_acks = False
        self.ack_sent = threading.Event()
        self.release_ack = threading.Event()

    def do_ack(self, queue_name: str, message_id: str) -> object:
        result = self._dispatch("ack")(queue_name, message_id)
        if self.hold_acks:
            self.ack_sent.set()
            self.release_ack.wait(10)
        return result


class _WatchedEvent(threading.Event):
    """The consumer's wake-up event, telling when the consumer started waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_a_slot_freed_while_the_prefetch_refills_wakes_the_consumer(namespace: str) -> None:
    # Prefetch 2. The second ack is slow: it starts while one slot is free, the consumer
    # takes that slot during the ack's round trip (full again) and waits; the ack then frees
    # a slot. Deciding the wake-up when the ack started (not full: no wake-up) left the
    # consumer on its fallback poll with a backlog queued: a drain at one poll's pace.
    broker = _SlowAckBroker(
        url=REDIS_URL, listener_client=_listener(namespace), namespace=namespace
    )
    actor = dramatiq.actor(lambda _: None, broker=broker, queue_name=QUEUE, actor_name="noop")
    sent = [actor.send(str(index)) for index in range(4)]
    wake = _WatchedEvent()
    consumer = WakeableConsumer(broker, QUEUE, prefetch=2, timeout=LONG_POLL_MS, wake=wake)
    try:
        first, second = next(consumer), next(consumer)  # the prefetch is full
        consumer.ack(first)  # one free slot
        broker.hold_acks = True
        slow_ack = threading.Thread(target=consumer.ack, args=(second,))
        slow_ack.start()
        assert broker.ack_sent.wait(5)
        third = next(consumer)  # takes the free slot: full again while the ack is in flight
        broker.hold_acks = False

        taken: list[MessageProxy | None] = []
        looking = threading.Thread(target=lambda: taken.append(next(consumer)))
        looking.start()
        assert wake.waiting.wait(5), "the consumer did not wait for a slot"
        broker.release_ack.set()  # the slow ack frees its slot now
        slow_ack.join(5)
        looking.join(5)
        assert not looking.is_alive(), "the freed slot did not wake the consumer"
        fourth = next(consumer) if taken == [None] else taken[0]
        assert fourth is not None
        ids = [m.message_id for m in (first, second, third, fourth)]
        assert ids == [m.message_id for m in sent]
    finally:
        broker.release_ack.set()
        broker.close()


# A heartbeat timeout far shorter than the workers' 60 s poll (more than Settings allows):
# a dead worker's message run before the poll was requeued by a sweep and announced.
SHORT_HEARTBEAT_MS = 2_000


def test_a_dead_workers_message_is_requeued_and_announced_soon_after_the_heartbeat_timeout(
    namespace: str, redis_client: redis.Redis
) -> None:
    dead, held = dies_holding(REDIS_URL, namespace, QUEUE, RECORD_ACTOR)
    died_at = redis_client.zscore(heartbeats_key(namespace), dead.broker_id)
    assert died_at is not None
    live = InProcessWorker(
        namespace, poll_ms=LONG_POLL_MS, heartbeat_timeout_ms=SHORT_HEARTBEAT_MS
    ).start()
    up_at = current_millis()  # a loaded machine may start it after the holder's timeout
    try:
        [run] = live.ran(1)
    finally:
        live.stop()
        dead.close()
    assert run.message_id == held.message_id
    # Not before the holder is dead (a live worker's message is never taken); then within a
    # sweep interval (0.2 s here) and a fetch, with room for a busy machine: far from 60 s.
    assert died_at + SHORT_HEARTBEAT_MS <= run.at_ms
    assert run.at_ms <= max(died_at + SHORT_HEARTBEAT_MS, up_at) + 3_000


def test_processes_sweeping_at_once_requeue_a_dead_workers_message_once(
    namespace: str, redis_client: redis.Redis
) -> None:
    dead, held = dies_holding(REDIS_URL, namespace, QUEUE, RECORD_ACTOR)
    sweepers = [
        wakeable_broker(REDIS_URL, namespace=namespace, heartbeat_timeout=1_000) for _ in range(4)
    ]
    try:
        died_at = redis_client.zscore(heartbeats_key(namespace), dead.broker_id)
        assert died_at is not None
        wait_until(lambda: current_millis() > died_at + 1_000, what="the heartbeat timeout")
        for broker in sweepers:
            broker.declare_queue(QUEUE)
        threads = [threading.Thread(target=DeadWorkerSweep(b).sweep) for b in sweepers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        redis_id = held.options["redis_message_id"]
        assert redis_client.lrange(QueueKeys.of(namespace, QUEUE).ids, 0, -1) == [redis_id.encode()]
    finally:
        for broker in [dead, *sweepers]:
            broker.close()


def test_a_sweep_runs_once_per_worker_that_dies_and_only_reads_otherwise(
    namespace: str, redis_client: redis.Redis
) -> None:
    """A sweep's maintenance is a command of the sweeper, which refreshes its heartbeat: an
    unchanged heartbeat shows a step that swept nothing. The first dead worker holds a message
    of a queue the sweeper does not know, so it stays in the heartbeats, dead, after the
    sweep: a sweep at every step would cost one script per queue each time. The sweeper's
    own heartbeat goes past the timeout too (it has no consumers to poll): no reason to
    sweep, so the last sweep is the second dead worker's."""
    heartbeats = heartbeats_key(namespace)
    sweeper = wakeable_broker(REDIS_URL, namespace=namespace, heartbeat_timeout=1_000)
    sweeper.declare_queue(QUEUE)
    sweep = DeadWorkerSweep(sweeper)
    first, _ = dies_holding(REDIS_URL, namespace, "wake.unknown", RECORD_ACTOR)
    second: WakeableRedisBroker | None = None

    def past_timeout(broker: WakeableRedisBroker) -> bool:
        score = redis_client.zscore(heartbeats, broker.broker_id)
        return score is not None and current_millis() > score + 1_000

    def swept() -> float | None:
        before = current_millis()
        wait_until(lambda: current_millis() > before, what="the next ms")  # a new score
        sweep.step()
        return redis_client.zscore(heartbeats, sweeper.broker_id)

    try:
        wait_until(lambda: past_timeout(first), what="the first worker's heartbeat timeout")
        first_sweep = swept()
        assert first_sweep is not None
        assert redis_client.zscore(heartbeats, first.broker_id) is not None  # still dead there
        assert swept() == first_sweep  # nothing died since: one read, no sweep

        wait_until(lambda: past_timeout(sweeper), what="the sweeper's own heartbeat timeout")
        assert swept() == first_sweep  # its own heartbeat crossed: still no sweep

        second, held = dies_holding(REDIS_URL, namespace, QUEUE, RECORD_ACTOR)
        wait_until(lambda: past_timeout(second), what="the second worker's heartbeat timeout")
        assert (swept() or 0) > first_sweep
        redis_id = held.options["redis_message_id"].encode()
        assert redis_client.lrange(QueueKeys.of(namespace, QUEUE).ids, 0, -1) == [redis_id]
    finally:
        for broker in [sweeper, first, *([second] if second else [])]:
            broker.close()
