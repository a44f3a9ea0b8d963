"""Brings a dead worker's messages back at once, and wakes their consumers, in every worker.

Invariant: once a worker's heartbeat is older than the heartbeat timeout, every running
worker process runs Dramatiq's maintenance on each declared queue and delay queue within
a sweep interval (a tenth of the heartbeat timeout), then publishes their wake-ups: the
messages the dead worker held are back in their queues and a waiting consumer fetches them
at once, whatever share of commands Dramatiq's own random maintenance runs on.

A step is one read: the heartbeats that went past the timeout since the previous step's
cutoff (ZRANGEBYSCORE, two at most), so a worker is seen dying once, not at every step,
and one seen dead that came back is seen again when it dies at its new score. The first
step looks at every heartbeat past the timeout: workers that died while none ran. A sweep
that failed (Redis unreachable, a reply lost) is done again at the next step, without
looking: its maintenance may have run, and dropped the dead worker from the heartbeats,
before its wake-ups were sent.
Every process sweeps: maintenance is one atomic script, so processes sweeping at once
requeue each message once and the others find nothing left.
A process's own heartbeat is kept fresh by its consumers' polls. One past the timeout (the
process stalled, and others may have requeued what it held) is no reason to sweep; and a
sweep's maintenance refreshes the caller's heartbeat before it looks for dead workers, so
a process never requeues what it holds itself.
"""

from __future__ import annotations

import dramatiq
from dramatiq.common import current_millis
from dramatiq.middleware import Middleware

from api.jobs.loops import BackgroundLoop
from api.jobs.wakeup import WakeableRedisBroker
from api.store.messages import heartbeats_key

# The sweep interval, as a share of the heartbeat timeout: a dead worker's messages are back
# by 1.1 heartbeat timeouts after its last command, for one read per interval and process.
SWEEP_SHARE_OF_HEARTBEAT_TIMEOUT = 0.1


class DeadWorkerSweep(BackgroundLoop):
    """The sweeping loop of one worker process, on its broker's client."""

    def __init__(self, broker: WakeableRedisBroker) -> None:
        super().__init__("dead-worker-sweep")
        self._broker = broker
        self._heartbeats = heartbeats_key(broker.namespace)
        self._own_id = broker.broker_id.encode()
        self._timeout_ms: int = broker.heartbeat_timeout
        self.interval_seconds: float = self._timeout_ms / 1000 * SWEEP_SHARE_OF_HEARTBEAT_TIMEOUT
        # Heartbeats scored at or below it were past the timeout at an earlier step (and
        # swept then): None before the first step.
        self._swept_until: int | None = None
        # A sweep that failed, owed at the next step whatever the heartbeats show then.
        self._sweep_owed = False

    def step(self) -> float:
        cutoff: int = current_millis() - self._timeout_ms
        if not self._sweep_owed:
            low = "-inf" if self._swept_until is None else f"({self._swept_until}"
            # Two at most: one may be this process's own, had it stalled past the timeout.
            crossed = self._broker.client.zrangebyscore(
                self._heartbeats, low, cutoff, start=0, num=2
            )
            self._sweep_owed = any(worker_id != self._own_id for worker_id in crossed)
        # A sweep covers every worker dead by the time it runs, so by this cutoff too.
        self._swept_until = cutoff
        if self._sweep_owed:
            self.sweep()
            self._sweep_owed = False
        return self.interval_seconds

    def sweep(self) -> None:
        queue_names = self._broker.get_declared_queues() | self._broker.delay_queues
        for queue_name in sorted(queue_names):
            self._broker.requeue_from_dead_workers(queue_name)

    def close(self) -> None:
        """Nothing of its own: the client is the broker's, closed with it."""


class DeadWorkerSweeps(Middleware):
    """Starts the process's sweep with the worker, stops it at shutdown."""

    def __init__(self, broker: WakeableRedisBroker) -> None:
        self._broker = broker
        self._sweep: DeadWorkerSweep | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._sweep = DeadWorkerSweep(self._broker)
        self._sweep.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self._sweep is not None:
            self._sweep.stop()
            self._sweep = None
