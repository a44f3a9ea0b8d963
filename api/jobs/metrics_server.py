"""Serves the worker's Prometheus metrics on its own port: every worker process's, summed.

Invariant: a scrape of the worker's port counts the work of all of its processes.
`outdial worker --processes N` runs prometheus_client's multiprocess mode: the CLI points
`PROMETHEUS_MULTIPROC_DIR` at a directory of its own before any process starts (api/cli/main.py),
each process writes its values there, and one Dramatiq fork process (`forks` below, started
by Dramatiq's CLI once the workers are up) serves them through a `MultiProcessCollector`. A
process that stops marks itself dead, so live gauges drop its values; counters keep its
counts. Without the directory (e.g. `dramatiq api.worker` run by hand) each process serves
its own registry and only the first to bind the port is seen, as before.

Why the client library's mode rather than Dramatiq's Prometheus middleware: that middleware
switches the mode on only after the process has booted, but Outdial's metrics are made when
their modules are imported (api/metrics.py), before that, so they would stay in-process and
never reach its server; it also takes its directory and port from variables of its own
(`dramatiq_prom_*`), beside `OUTDIAL_WORKER_METRICS_PORT`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import dramatiq
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from api.settings import METRICS_DIR_VARIABLE, get_settings

logger = logging.getLogger("outdial.worker")

MESSAGES = Counter(
    "outdial_worker_messages_total", "Messages processed by actor and result", ["actor", "result"]
)


def multiprocess_dir() -> str | None:
    """The directory every worker process writes its metrics to (None: single-process)."""
    return os.environ.get(METRICS_DIR_VARIABLE) or None


def serve_worker_metrics() -> int:
    """A Dramatiq fork process: serves all worker processes' metrics until it is stopped."""
    port = get_settings().worker_metrics_port
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    try:
        _, server_thread = start_http_server(port, registry=registry)
    except OSError as error:
        logger.error("worker metrics not served on port %d: %s", port, error)
        return 1
    server_thread.join()  # Dramatiq's SIGTERM handler ends the fork process from here
    return 0


class WorkerMetrics(Middleware):
    def __init__(self, port: int) -> None:
        self.port = port

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve_worker_metrics] if self.port and multiprocess_dir() else []

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not self.port or multiprocess_dir():
            return
        try:
            start_http_server(self.port)
        except OSError as error:  # e.g. several worker processes on one host
            logger.warning("worker metrics not served on port %d: %s", self.port, error)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if multiprocess_dir():
            mark_process_dead(os.getpid())

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        MESSAGES.labels(message.actor_name, "error" if exception else "ok").inc()

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        MESSAGES.labels(message.actor_name, "skipped").inc()
