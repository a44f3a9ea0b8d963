"""The Redis broker, tuned for a dialer (see docs/operations.md for the numbers)."""

from __future__ import annotations

from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

from api.jobs.dead_workers import DeadWorkerSweeps
from api.jobs.due_claimer import ScheduledWork
from api.jobs.metrics_server import WorkerMetrics
from api.jobs.pacer import Pacing
from api.jobs.resources import WorkerResources
from api.jobs.thread_share import SizeRelayShare
from api.jobs.wakeup import WakeableRedisBroker, wakeup_client
from api.settings import Settings
from api.store.connect import sync_client


def build_broker(settings: Settings) -> RedisBroker:
    # With wake-ups an idle worker waits for a publish instead of polling Redis every
    # OUTDIAL_WORKER_TIMEOUT_MS (api/jobs/wakeup.py); without, Dramatiq's own poll.
    broker_class: type[RedisBroker] = (
        WakeableRedisBroker if settings.worker_wakeups else RedisBroker
    )
    # Dramatiq's own client (bytes replies, as its scripts expect), through the sentinels
    # when they are set (api/store/connect.py). Timeouts, unlike Dramatiq's default: a
    # primary gone without a reset (its host down) would hold a worker thread forever.
    client = sync_client(settings, socket_connect_timeout=2, socket_timeout=10)
    wakeups = {"listener_client": wakeup_client(settings)} if settings.worker_wakeups else {}
    broker: RedisBroker = broker_class(
        client=client,
        **wakeups,
        namespace=settings.broker_namespace,
        # A SIGKILLed worker's messages come back after ~heartbeat_timeout instead of
        # minutes: maintenance runs on 10% of broker calls instead of 0.1%.
        heartbeat_timeout=settings.heartbeat_timeout_ms,
        maintenance_chance=settings.maintenance_chance,
    )
    broker.add_middleware(AsyncIO())
    # After AsyncIO: Dramatiq runs `after_*` hooks last-added first, so the resources are
    # closed before the event loop stops.
    broker.add_middleware(WorkerResources(settings), after=AsyncIO)
    broker.add_middleware(ScheduledWork(settings))
    broker.add_middleware(Pacing(settings))
    broker.add_middleware(SizeRelayShare())
    broker.add_middleware(WorkerMetrics(settings.worker_metrics_port))
    if isinstance(broker, WakeableRedisBroker):
        # A dead worker's messages back within ~1.1 heartbeat timeouts, and announced.
        # Without wake-ups the idle consumers' polls keep Dramatiq's own maintenance going.
        broker.add_middleware(DeadWorkerSweeps(broker))
    return broker
