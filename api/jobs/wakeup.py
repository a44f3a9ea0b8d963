"""Wake-ups instead of polling: an idle consumer waits for a publish, not a timer.

Invariant: every write of a Dramatiq message into a queue is followed, in the same step,
by a PUBLISH on that queue's wake-up channel, named like the queue's list (`<ns>:<queue>`,
`api.store.messages.QueueKeys.ids`). The store's Lua scripts publish inside the script that
writes the message; the broker's own enqueue (`actor.send`, retries, a delayed message the
worker moves once due) publishes right after Dramatiq's enqueue script.

Each worker process runs one listener thread, subscribed to its namespace's channels: a
publish sets the event of that queue's consumer in every process. An idle consumer waits
on its event instead of Dramatiq's sleep-and-poll backoff, for at most the worker timeout
(`OUTDIAL_WORKER_TIMEOUT_MS`, the fallback poll): a lost wake-up (the listener
reconnecting, a publish that failed) costs at most that latency, never a message. A
consumer whose prefetch is full waits for one of its own acks instead (woken once the ack
has freed the slot); a delay queue's consumer also wakes when the earliest eta it holds
is due.
Every fallback poll is a broker command, so it refreshes the worker's heartbeat (hence
the timeout is kept well under the heartbeat timeout, see `api.settings`).

A dead worker's unacked messages go back to their queue only in Dramatiq's maintenance,
which announces nothing and runs on a random share of broker commands, for the queue each
names. `requeue_from_dead_workers` runs it on purpose and then publishes the queue's
wake-up; `api.jobs.dead_workers` calls it for every queue once a worker's heartbeat is
older than the heartbeat timeout. Dramatiq's random maintenance still runs too: what it
moves back inside a fetch is taken by that consumer as far as its prefetch allows, inside
an enqueue is announced by the enqueue's publish, and otherwise waits for a fallback poll.

Private parts of dramatiq 2.2 relied on (the minor series is pinned, pyproject.toml):
`dramatiq.brokers.redis._RedisConsumer`, whose `__next__` is replaced here and whose
`message_cache`, `queued_message_ids`, `outstanding_message_count`, `prefetch`, `timeout`
and `broker.do_fetch` it uses as Dramatiq's own `__next__` does; and the worker's
`ConsumerThread` loop, which calls `handle_delayed_messages` (and checks for a stop or a
pause) after every `__next__`, a `None` included. For the requeue: `RedisBroker._dispatch`,
which runs `dispatch.lua` with the maintenance flag `_should_do_maintenance(command)` gives
(overridden here); that script's order (the caller's heartbeat, then maintenance of the
named queue when flagged, then the command, and nothing for a command it does not know);
the broker's `broker_id`, `heartbeat_timeout` and `delay_queues`; and the heartbeats'
layout, a sorted set `<ns>:__heartbeats__` of broker ids scored by the ms of their last
command (`api.store.messages.heartbeats_key`).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from typing import Any

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from api.settings import Settings
from api.store.connect import sync_client
from api.store.messages import QueueKeys

logger = logging.getLogger("outdial.wakeup")

# How long one read of the subscription blocks before the listener checks for a stop.
_LISTEN_SLICE_SECONDS = 1.0
_RECONNECT_PAUSE_SECONDS = 1.0
# A message the broker could not write is lost for good when its sender moves on (Dramatiq's
# Retries acks a failed message after enqueueing its retry), so a link that dropped is
# tried again on a new connection. A write whose reply was lost is then written twice: two
# copies of one message, which every actor already tolerates (Dramatiq delivers at least
# once, and each step checks the call's state before it acts). The attempts go on for as
# long as a Sentinel failover leaves no primary (`down-after-milliseconds`, 30 s by Redis's
# default, plus the election), pausing longer each time up to a second.
ENQUEUE_PATIENCE_SECONDS = 60.0
_ENQUEUE_PAUSE_SECONDS = 0.1
_ENQUEUE_MAX_PAUSE_SECONDS = 1.0
# Not a command of Dramatiq's dispatch script: dispatched, it is maintenance alone.
MAINTENANCE_COMMAND = "outdial_maintenance"


def wakeup_client_name(namespace: str) -> str:
    return f"{namespace}:wakeup"


def wakeup_client(settings: Settings) -> redis.Redis:
    """The listener's client: a connection of its own, named (`CLIENT LIST` shows whose it
    is), with a read timeout longer than one listening slice."""
    return sync_client(
        settings,
        client_name=wakeup_client_name(settings.broker_namespace),
        socket_connect_timeout=2,
        socket_timeout=_LISTEN_SLICE_SECONDS + 10,
    )


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class WakeupListener:
    """One per process: a thread on the namespace's wake-up channels, setting one event per
    queue. Started by the first consumer that asks for an event (in the worker process)."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._client = client
        # The channel of queue `q` is `<ns>:q`: the namespace's prefix, then the queue.
        prefix = QueueKeys.of(namespace, "").ids
        self._pattern = _glob_escape(prefix) + "*"
        self._channel_prefix = len(prefix)
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def event_for(self, queue_name: str) -> threading.Event:
        with self._lock:
            event = self._events.setdefault(queue_name, threading.Event())
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="outdial-wakeup", daemon=True
                )
                self._thread.start()
        return event

    def stop(self) -> None:
        self._stop.set()
        self._wake_all()  # a consumer still waiting returns, and sees its own stop
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=_LISTEN_SLICE_SECONDS + 1)
        self._client.close()

    def _wake_all(self) -> None:
        for event in list(self._events.values()):
            event.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(self._pattern)
                # Whatever was published before the subscription took effect is missed:
                # every consumer looks once now.
                self._wake_all()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_LISTEN_SLICE_SECONDS)
                    if message is not None:
                        self._deliver(message)
            except redis.RedisError as exc:
                logger.warning("wake-up subscription lost, consumers poll meanwhile: %s", exc)
                self._wake_all()
                self._stop.wait(_RECONNECT_PAUSE_SECONDS)
            except Exception:  # never let the thread die silently: consumers would only poll
                logger.exception("wake-up listener failed")
                self._wake_all()
                self._stop.wait(_RECONNECT_PAUSE_SECONDS)
            finally:
                pubsub.close()

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        event = self._events.get(name[self._channel_prefix :])
        if event is not None:
            event.set()


class WakeableConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer with its idle sleep replaced by a wait on `wake`."""

    def __init__(
        self,
        broker: RedisBroker,
        queue_name: str,
        prefetch: int,
        timeout: int,
        wake: threading.Event,
    ) -> None:
        # The base named, not super(): mypy's untyped_calls_exclude (pyproject.toml) covers
        # calls into Dramatiq's unannotated methods only when they name Dramatiq's class.
        _RedisConsumer.__init__(self, broker, queue_name, prefetch, timeout)
        self._wake = wake
        # Etas of the delayed messages handed out (a heap): the worker moves them when due.
        self._etas: list[float] = []
        # Whether the consumer waits for a prefetch slot (set by it, read by acking threads).
        self._wants_slot = False

    def ack(self, message: MessageProxy) -> None:
        try:
            _RedisConsumer.ack(self, message)
        finally:
            self._slot_freed()

    def nack(self, message: MessageProxy) -> None:
        try:
            _RedisConsumer.nack(self, message)
        finally:
            self._slot_freed()

    def _slot_freed(self) -> None:
        # Called by a worker thread after Dramatiq's ack/nack dropped the message from
        # `queued_message_ids`, i.e. after the slot is free: deciding before (and before the
        # ack's Redis round trip) lost the wake-up whenever the consumer filled its prefetch
        # during that round trip, and a draining backlog then moved one fallback poll at a
        # time (issue 24).
        if self._wants_slot:
            self._wake.set()

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:  # Dramatiq's own guard (its issue #266)
                        continue
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    eta = message.options.get("eta")
                    if isinstance(eta, int | float):
                        heapq.heappush(self._etas, eta)
                    return MessageProxy(message)
                # Cleared before looking: a wake-up from here on is kept for the wait below.
                self._wake.clear()
                # Raised before counting: a slot freed after the count wakes the wait below.
                self._wants_slot = True
                free = self.prefetch - self.outstanding_message_count
                if free > 0:
                    # Slots are free: only a publish (new messages) is worth waking for.
                    self._wants_slot = False
                    self.message_cache = self.broker.do_fetch(self.queue_name, free)
                    if self.message_cache:
                        continue
                self._wake.wait(self._idle_wait_seconds())
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None

    def _idle_wait_seconds(self) -> float:
        now = current_millis()
        due = False
        while self._etas and self._etas[0] <= now:
            heapq.heappop(self._etas)
            due = True
        if due:  # returning lets the worker move the due messages at once
            return 0.0
        wait_ms = float(self.timeout)
        if self._etas:
            wait_ms = min(wait_ms, self._etas[0] - now)
        return wait_ms / 1000


class WakeableRedisBroker(RedisBroker):
    """Dramatiq's Redis broker whose consumers wait for wake-ups and whose enqueue sends one."""

    def __init__(
        self,
        *,
        listener_client: redis.Redis,
        enqueue_patience_seconds: float = ENQUEUE_PATIENCE_SECONDS,
        **options: Any,
    ) -> None:
        RedisBroker.__init__(self, **options)  # named for mypy, as in WakeableConsumer
        self.wakeups = WakeupListener(listener_client, self.namespace)
        self.enqueue_patience_seconds = enqueue_patience_seconds

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> WakeableConsumer:
        return WakeableConsumer(
            self, queue_name, prefetch, timeout, self.wakeups.event_for(queue_name)
        )

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        give_up_at = time.monotonic() + self.enqueue_patience_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                enqueued: Message[Any] = super().enqueue(message, delay=delay)
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                pause = min(_ENQUEUE_PAUSE_SECONDS * attempt, _ENQUEUE_MAX_PAUSE_SECONDS)
                if time.monotonic() + pause > give_up_at:
                    raise
                logger.warning("enqueue failed (%s), trying again", exc)
                time.sleep(pause)
        self._announce(enqueued.queue_name)
        return enqueued

    def requeue_from_dead_workers(self, queue_name: str) -> None:
        """Dramatiq's maintenance of the queue, now: what workers whose heartbeat is older
        than the heartbeat timeout held of it goes back to it; then its wake-up. One atomic
        script, so processes doing it at once requeue each message once."""
        RedisBroker._dispatch(self, MAINTENANCE_COMMAND)(queue_name)
        self._announce(queue_name)

    def _should_do_maintenance(self, command: str) -> int:
        if command == MAINTENANCE_COMMAND:
            return 1
        return int(RedisBroker._should_do_maintenance(self, command))

    def _announce(self, queue_name: str) -> None:
        try:
            self.client.publish(QueueKeys.of(self.namespace, queue_name).ids, b"")
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # The messages are written: without their wake-up they wait for a fallback poll.
            logger.warning("wake-up not published (%s)", exc)

    def close(self) -> None:
        self.wakeups.stop()
        super().close()
